"""The hostile-answer campaign: a gateway that answers as badly as it can.

A raw asyncio server on loopback plays each hostile answer: a body that
trickles one byte at a time, one that never ends, one far over the cap, a
gzip bomb, a redirect, invalid UTF-8, nesting past the parser's limit,
duplicate keys. Every call, on both transports, must end by its deadline
plus a second with one of our errors; a create must never be reported as
a definite failure; Python's peak allocation during the call stays within a
few MB of the cap.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import time
import tracemalloc
from typing import TYPE_CHECKING

import pytest
from vexora_async import (
    DecodingError,
    HTTPStatusError,
    OutcomeUnknown,
    PayoutOutcomeUnknown,
    RequestRejected,
    RetryPolicy,
    VexoraClient,
    VexoraError,
)

from tests.helpers import MERCHANT_NO, SECRET, make_payout


if TYPE_CHECKING:
    from collections.abc import AsyncIterator

# Judged by the clock (every call by its deadline plus a second): run alone,
# not beside other tests on the same cores (noxfile: campaigns).
pytestmark = pytest.mark.campaign

DEADLINE = 1.5
CAP = 64 * 1024
#: One exchange per call: the hostile answer is what the call ends with.
RAW = RetryPolicy(
    max_retries=0, reconcile=False, verify_rejections=False, deadline=DEADLINE
)
#: Peak Python allocation allowed during one call, beyond the cap.
MEMORY_BOUND = CAP + 4 * 1024 * 1024
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"

GZIP_BOMB = gzip.compress(b"0" * (200 * 1024 * 1024), compresslevel=9)


async def _trickle(writer: asyncio.StreamWriter) -> None:
    writer.write(HEAD + b"Content-Length: 100000\r\n\r\n")
    for _ in range(100_000):
        writer.write(b" ")
        await writer.drain()
        await asyncio.sleep(0.05)


async def _endless(writer: asyncio.StreamWriter) -> None:
    writer.write(HEAD + b"Transfer-Encoding: chunked\r\n\r\n")
    chunk = b"%x\r\n%s\r\n" % (65536, b"x" * 65536)
    while True:
        writer.write(chunk)
        await writer.drain()


async def _oversized(writer: asyncio.StreamWriter) -> None:
    size = 200 * 1024 * 1024
    writer.write(HEAD + b"Content-Length: %d\r\n\r\n" % size)
    block = b"{" * 65536
    for _ in range(size // len(block)):
        writer.write(block)
        await writer.drain()


async def _gzip_bomb(writer: asyncio.StreamWriter) -> None:
    writer.write(
        HEAD
        + b"Content-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(GZIP_BOMB)
        + GZIP_BOMB
    )


def _fixed(status: bytes, body: bytes, extra: bytes = b"") -> object:
    async def answer(writer: asyncio.StreamWriter) -> None:
        writer.write(
            b"HTTP/1.1 "
            + status
            + b"\r\nContent-Type: application/json\r\n"
            + extra
            + b"Content-Length: %d\r\n\r\n" % len(body)
            + body
        )
        await writer.drain()

    return answer


DUPLICATE = b'{"code":"0000","msg":"ok","data":null,"code":"8000","msg":"no"}'
HOSTILE = {
    "slow trickle": _trickle,
    "endless stream": _endless,
    "oversized body": _oversized,
    "gzip bomb": _gzip_bomb,
    "redirect": _fixed(b"303 See Other", b"", b"Location: http://127.0.0.1:9/x\r\n"),
    "invalid UTF-8": _fixed(b"200 OK", b'{"code":"\xff\xfe","data":{}}'),
    "deep nesting": _fixed(b"200 OK", b'{"code":"0000","data":' + b"[" * 100_000),
    "duplicate keys": _fixed(b"200 OK", DUPLICATE),
}


@contextlib.asynccontextmanager
async def hostile_server(mode: str) -> AsyncIterator[str]:
    """Serve *mode*'s answer to every request on a loopback port."""
    play = HOSTILE[mode]
    handlers: set[asyncio.Task[None]] = set()

    async def handle(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        try:
            await reader.readuntil(b"\r\n\r\n")
            await play(writer)  # type: ignore[operator]
            await asyncio.sleep(30)  # hold the connection; the client must leave
        except (OSError, asyncio.IncompleteReadError):
            pass  # the client hung up: what it should do
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/myanmar"
    finally:
        server.close()
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 2)


@pytest.mark.parametrize("transport", ["httpx", "aiohttp"])
@pytest.mark.parametrize("mode", HOSTILE)
@pytest.mark.parametrize("call", ["create_payout", "get_payout"])
async def test_a_hostile_answer_ends_by_the_deadline(
    transport: str, mode: str, call: str
) -> None:
    """Ends by deadline + 1 s, with our error; a create is never 'failed'."""
    async with (
        hostile_server(mode) as url,
        VexoraClient(
            MERCHANT_NO,
            SECRET,
            url,
            retry=RAW,
            max_answer_bytes=CAP,
            transport=transport,  # type: ignore[arg-type]
        ) as client,
    ):
        tracemalloc.start()
        started = time.perf_counter()
        try:
            if call == "create_payout":
                await client.create_payout(make_payout())
            else:
                await client.get_payout("VX20260331004567")
        except BaseException as exc:  # noqa: BLE001 - classified just below
            error: BaseException | None = exc
        else:  # pragma: no cover - a hostile answer is never a result
            error = None
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()

    assert elapsed < DEADLINE + 1.0, f"{mode}: {elapsed:.2f} s"
    assert isinstance(error, VexoraError), repr(error)
    if call == "create_payout":
        # The request went out: only "unknown" is true. Never a refusal.
        assert isinstance(error, PayoutOutcomeUnknown), repr(error)
        assert not isinstance(error, (RequestRejected, HTTPStatusError))
    else:
        assert not isinstance(error, OutcomeUnknown)
    if mode in {"oversized body", "endless stream", "gzip bomb"}:
        assert "cap" in str(error) or "deadline" in str(error), str(error)
    if mode == "gzip bomb" and call == "get_payout":
        assert isinstance(error, DecodingError)
    assert peak < MEMORY_BOUND, f"{mode}: peak {peak / 1e6:.1f} MB"
