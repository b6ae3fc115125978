"""A raw HTTP/1.1 load generator, for machines without ``wrk``.

Run as ``python tests/bench/bench_loadgen.py URL CONCURRENCY SECONDS
[CPU]``; prints ``{"rate": requests per second}``. Each connection sends
the same prepared bytes and reads each answer by its Content-Length: no
HTTP library, so it measures the server more than itself (``wrk`` still
measures it better; the runner prefers it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from urllib.parse import urlsplit

from bench_throughput import MERCHANT_NO, PATH, payout_bytes


async def connection(host: str, port: int, request: bytes, stop: float) -> int:
    """Send *request* back to back until *stop*; return the answers read."""
    reader, writer = await asyncio.open_connection(host, port)
    done = 0
    loop = asyncio.get_running_loop()
    while loop.time() < stop:
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        await reader.readexactly(length)
        done += 1
    writer.close()
    return done


async def main(url: str, concurrency: int, seconds: float) -> float:
    """Run the load; return requests per second."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    body = payout_bytes()
    request = (
        f"POST {PATH} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\nmerchantNo: {MERCHANT_NO}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    stop = asyncio.get_running_loop().time() + seconds
    started = time.perf_counter()
    counts = await asyncio.gather(
        *(connection(host, port, request, stop) for _ in range(concurrency))
    )
    return sum(counts) / (time.perf_counter() - started)


if __name__ == "__main__":
    if len(sys.argv) > 4 and sys.argv[4] and hasattr(os, "sched_setaffinity"):
        with contextlib.suppress(OSError):  # not allowed here: run unpinned
            os.sched_setaffinity(0, {int(sys.argv[4])})
    load = main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]))
    try:
        import uvloop
    except ImportError:
        rate = asyncio.run(load)
    else:
        rate = uvloop.run(load)
    print(json.dumps({"rate": rate}))  # noqa: T201 - the runner reads this line
