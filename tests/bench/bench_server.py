"""The benchmark's gateway on 127.0.0.1, in its own process.

Run as ``python tests/bench/bench_server.py KIND PORT [CPU]``: pins itself
to *CPU* (where the OS allows), then serves until killed. Every kind
answers every call as the gateway does, with a ``0000`` envelope whose
``data`` echoes the request's tradeNo (the SDK checks that echo):

``raw``
    an asyncio protocol parsing HTTP/1.1 with httptools on uvloop (when
    installed): the fastest server Python has, so that it is not the
    bottleneck of the client comparison.
``asgi``
    the same answer from a minimal ASGI app under uvicorn.
``sandbox``
    the SDK's sandbox gateway (``vexora_async.testing``) under uvicorn:
    signature checks, transaction state; realistic, and slower.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from typing import Any

import uvicorn


_HEADERS = [(b"content-type", b"application/json")]
_PREFIX = b'{"msg":"success","code":"0000","timestamp":1719876543210,"success":true,'


def _answer(body: bytes) -> bytes:
    fields = json.loads(body) if body else {}
    trade_no = fields.get("tradeNo")
    if trade_no is None:
        data: dict[str, Any] = {"availableAmount": 1000}
    else:
        data = {
            "tradeNo": trade_no,
            "platFormTradeNo": "vx8f3k29d0qplm7x2",
            "status": "0015",
            "message": "Processing",
        }
    return _PREFIX + b'"data":' + json.dumps(data).encode() + b"}"


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A minimal ASGI gateway: echo the tradeNo in a ``0000`` envelope."""
    if scope["type"] != "http":
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    payload = _answer(body)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [*_HEADERS, (b"content-length", str(len(payload)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": payload})


def _available(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


class _RawProtocol(asyncio.Protocol):
    """One connection of the ``raw`` server: keep-alive HTTP/1.1, no ASGI."""

    def __init__(self) -> None:
        import httptools

        self._parser = httptools.HttpRequestParser(self)
        self._body: list[bytes] = []
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # a TCP transport

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except Exception:  # noqa: BLE001 - a broken client; drop it
            if self._transport is not None:
                self._transport.close()

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        payload = _answer(b"".join(self._body))
        self._body.clear()
        if self._transport is not None:
            self._transport.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(payload), payload)
            )


async def _serve_raw(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        _RawProtocol, "127.0.0.1", port, backlog=4096, reuse_address=True
    )
    async with server:
        await server.serve_forever()


def _sandbox_app() -> Any:
    # The benchmark's credentials; no settling, no callbacks, and repeated
    # tradeNos answered like new ones, so that the raw load generator's
    # identical bytes cost what a payout costs.
    from bench_throughput import MERCHANT_NO, SECRET
    from vexora_async.testing import (
        FakeGateway,
        SandboxApp,
        SandboxConfig,
    )

    config = SandboxConfig(
        merchant_no=MERCHANT_NO,
        app_secret=SECRET,
        settle_delay=None,
        reject_duplicates=False,
        callbacks=False,
    )
    return SandboxApp(FakeGateway(config))


def main() -> None:
    """Serve the kind given on the port given, pinned to the CPU given."""
    kind, port = sys.argv[1], int(sys.argv[2])
    if len(sys.argv) > 3 and hasattr(os, "sched_setaffinity"):
        with contextlib.suppress(OSError):  # not allowed here: run unpinned
            os.sched_setaffinity(0, {int(sys.argv[3])})
    if kind == "raw":
        if _available("uvloop"):
            import uvloop

            uvloop.run(_serve_raw(port))
        else:
            asyncio.run(_serve_raw(port))
        return
    uvicorn.run(
        app if kind == "asgi" else _sandbox_app(),
        host="127.0.0.1",
        port=port,
        loop="uvloop" if _available("uvloop") else "asyncio",
        http="httptools" if _available("httptools") else "h11",
        log_level="warning",
        access_log=False,
        lifespan="off",
        backlog=4096,
        timeout_keep_alive=120,
    )


if __name__ == "__main__":
    main()
