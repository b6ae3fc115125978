"""A tiny HTTP/1.1 gateway on a real loopback socket, with scripted faults.

The end-to-end tests of both transports (httpx's own and aiohttp's) need
real sockets: a refused port, a server that never answers, one that closes
the connection halfway through an answer. ``respx`` cannot show those.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import socket
from typing import TYPE_CHECKING, Any, Literal


if TYPE_CHECKING:
    import ssl
    from collections.abc import AsyncIterator, Callable


Mode = Literal["ok", "hang", "close_before", "close_mid", "gzip", "once"]


class LoopbackGateway:
    """Answers the gateway's calls on 127.0.0.1 as *mode* says.

    ``ok``: a signed ``0000`` envelope echoing the tradeNo. ``hang``: reads
    the request, never answers. ``close_before``: reads the request, closes.
    ``close_mid``: sends the headers and half the body, closes. ``gzip``: as
    ``ok``, gzip-encoded. ``once``: as ``ok``, then closes the connection
    (``Connection: close``), so every request needs a new one. Counts
    requests and the connections open now and at most.
    """

    def __init__(self) -> None:
        self.mode: Mode = "ok"
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.open_connections = 0
        self.max_open_connections = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0
        self.scheme = "http"
        self._changed = asyncio.Condition()

    async def until(self, predicate: Callable[[], bool]) -> None:
        """Wait until *predicate* holds (checked at each request and close)."""
        async with self._changed:
            await self._changed.wait_for(predicate)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    @property
    def base_url(self) -> str:
        """The base URL to give the client."""
        return f"{self.scheme}://127.0.0.1:{self.port}/myanmar"

    async def start(self, port: int = 0, tls: ssl.SSLContext | None = None) -> None:
        """Listen on 127.0.0.1, on *port* (0: an ephemeral one); HTTPS with *tls*."""
        self._server = await asyncio.start_server(
            self._serve, "127.0.0.1", port, ssl=tls
        )
        self.scheme = "http" if tls is None else "https"
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and drop every connection."""
        if self._server is not None:
            self._server.close()
            # Server.close_clients() is Python 3.13+; close them by hand.
            for writer in list(self._writers):
                writer.close()
            await self._server.wait_closed()

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self._writers.add(writer)
        self.open_connections += 1
        self.max_open_connections = max(
            self.max_open_connections, self.open_connections
        )
        try:
            while await self._one(reader, writer):
                pass
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.open_connections -= 1
            self._writers.discard(writer)
            await self._notify()
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _one(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in lines[1:] if line)
        }
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        fields = json.loads(body) if body else {}
        self.requests.append(fields)
        self.headers.append(headers)
        await self._notify()
        mode = self.mode
        if mode == "hang":
            # Never answer; notice when the client gives up and closes.
            await reader.read()
            return False
        if mode == "close_before":
            return False
        payload = json.dumps(_answer(fields)).encode()
        extra = b""
        if mode == "gzip":
            payload = gzip.compress(payload)
            extra = b"Content-Encoding: gzip\r\n"
        elif mode == "once":
            extra = b"Connection: close\r\n"
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            + extra
            + b"Content-Length: %d\r\n\r\n" % len(payload)
        )
        if mode == "close_mid":
            writer.write(payload[: len(payload) // 2])
            await writer.drain()
            return False
        writer.write(payload)
        await writer.drain()
        return mode != "once"


def _answer(fields: dict[str, Any]) -> dict[str, Any]:
    trade_no = fields.get("tradeNo")
    if trade_no is None:
        data: dict[str, Any] = {"availableAmount": 1000, "freezeAmount": 0}
    else:
        data = {
            "tradeNo": trade_no,
            "platFormTradeNo": "vx8f3k29d0qplm7x2",
            "status": "0015",
            "message": "Processing",
        }
    return {
        "msg": "success",
        "code": "0000",
        "timestamp": 1719876543210,
        "success": True,
        "data": data,
    }


@contextlib.asynccontextmanager
async def loopback_gateway(
    tls: ssl.SSLContext | None = None,
) -> AsyncIterator[LoopbackGateway]:
    """Run a :class:`LoopbackGateway` for the duration of the block."""
    gateway = LoopbackGateway()
    await gateway.start(tls=tls)
    try:
        yield gateway
    finally:
        await gateway.stop()


def refused_port() -> int:
    """Return a loopback port nothing listens on (connecting is refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
