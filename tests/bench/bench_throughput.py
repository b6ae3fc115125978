"""Throughput of the SDK and of raw HTTP clients against one loopback server.

Run as ``python tests/bench/bench_throughput.py CLIENT CONCURRENCY N REPEATS
URL [CPU]``; prints one JSON object (requests per second of each repeat).
Each repeat sends *N* requests from *CONCURRENCY* tasks gathered at once
(no limiter of the benchmark's own: what the caller's ``gather`` gives the
client is what it gets), after a warm-up that opens the connections.

The clients, each used as a user would, with default settings:

``sdk``
    ``VexoraClient.create_payout``, a unique tradeNo per call (validate,
    encode, idempotency, retry layer, sign, POST, decode, check).
``sdk-aiohttp``
    the same with ``transport="aiohttp"``.
``httpx``
    one shared ``httpx.AsyncClient()`` with default limits, POSTing the
    bytes of a signed payout: the naive way.
``aiohttp``
    one shared ``aiohttp.ClientSession()``, the same bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import sys
import time
from collections import Counter
from typing import TYPE_CHECKING

import aiohttp
import httpx
from vexora_async import BankCode, PayoutRequest, VexoraClient, sign


if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from vexora_async._transports import TransportName


MERCHANT_NO = "1000000001"
SECRET = "app-secret-0001"
PATH = "/v1/vexora/disbursements"
NOTIFY_URL = "http://127.0.0.1:8091/vexora/notify"
WARMUP_SECONDS = 0.5


def payout(number: int) -> PayoutRequest:
    """The benchmark's payout number *number* (a unique tradeNo)."""
    return PayoutRequest(
        trade_no=f"VXBENCH{number:012d}",
        amount=100,
        bank_code=BankCode.KBZPAY,
        bank_number="3560123456789012",
        name="Ko Min Thu",
        notify_url=NOTIFY_URL,
    )


def payout_bytes() -> bytes:
    """A signed payout body, as the SDK sends it (for the raw clients)."""
    fields = {
        "amount": "100",
        "bankCode": "KBZPAY",
        "bankNumber": "3560123456789012",
        "name": "Ko Min Thu",
        "notifyUrl": NOTIFY_URL,
        "tradeNo": "VXBENCH000000000000",
        # Now: the sandbox gateway refuses a timestamp five minutes off.
        "timestamp": str(time.time_ns() // 1_000_000),
    }
    fields["sign"] = sign(fields, SECRET)
    return json.dumps(fields, separators=(",", ":")).encode()


HEADERS = {"Content-Type": "application/json", "merchantNo": MERCHANT_NO}


async def run(
    send: Callable[[int], Awaitable[object]],
    concurrency: int,
    n: int,
    repeats: int,
) -> tuple[list[float], list[float], dict[str, int]]:
    """Return successful requests per second and CPU µs per request.

    One of each per repeat, and the failures of the measured repeats by kind.
    """
    counter = iter(range(10**12))

    errors: Counter[str] = Counter()

    async def one() -> None:
        try:
            await send(next(counter))
        # A failed call is counted (by kind) and not in the throughput.
        except Exception as exc:  # noqa: BLE001
            errors[type(exc).__name__] += 1

    async def worker(share: int) -> None:
        for _ in range(share):
            await one()

    cpu_us: list[float] = []

    async def batch(total: int) -> float:
        shares = [total // concurrency] * concurrency
        for i in range(total % concurrency):
            shares[i] += 1
        failed = errors.total()
        cpu = time.process_time()
        started = time.perf_counter()
        await asyncio.gather(*(worker(share) for share in shares))
        elapsed = time.perf_counter() - started
        cpu_us.append((time.process_time() - cpu) / total * 1e6)
        return (total - (errors.total() - failed)) / elapsed

    # Warm up: connections open, code paths hot, for about half a second.
    warm = min(n, max(concurrency, 200))
    deadline = time.perf_counter() + WARMUP_SECONDS
    while time.perf_counter() < deadline:
        await batch(warm)
    rates = []
    cpu_us.clear()
    errors.clear()
    for _ in range(repeats):
        gc.collect()
        rates.append(await batch(n))
    return rates, cpu_us, dict(errors)


async def measure(
    client: str, concurrency: int, n: int, repeats: int, base_url: str
) -> tuple[list[float], list[float], dict[str, int]]:
    """Measure *client*; see the module docstring."""
    url = base_url + PATH
    if client in {"sdk", "sdk-aiohttp"}:
        transport: TransportName = "aiohttp" if client == "sdk-aiohttp" else "httpx"
        async with VexoraClient(
            MERCHANT_NO, SECRET, base_url, transport=transport
        ) as sdk:
            return await run(
                lambda i: sdk.create_payout(payout(i)), concurrency, n, repeats
            )
    body = payout_bytes()
    if client == "httpx":
        async with httpx.AsyncClient() as http:

            async def post_httpx(_: int) -> object:
                response = await http.post(url, content=body, headers=HEADERS)
                return response.content

            return await run(post_httpx, concurrency, n, repeats)
    if client == "aiohttp":
        async with aiohttp.ClientSession() as session:

            async def post_aiohttp(_: int) -> object:
                async with session.post(url, data=body, headers=HEADERS) as response:
                    return await response.read()

            return await run(post_aiohttp, concurrency, n, repeats)
    msg = f"unknown client {client!r}"
    raise SystemExit(msg)


def main() -> None:
    """Run one cell of the throughput table and print it as JSON."""
    client, concurrency, n, repeats, base_url = sys.argv[1:6]
    if len(sys.argv) > 6 and hasattr(os, "sched_setaffinity"):
        with contextlib.suppress(OSError):  # not allowed here: run unpinned
            os.sched_setaffinity(0, {int(sys.argv[6])})
    rates, cpu_us, errors = asyncio.run(
        measure(client, int(concurrency), int(n), int(repeats), base_url)
    )
    print(  # noqa: T201 - the runner reads this line
        json.dumps(
            {
                "client": client,
                "concurrency": int(concurrency),
                "n": int(n),
                "rates": rates,
                "cpu_us": cpu_us,
                "errors": errors,
            }
        )
    )


if __name__ == "__main__":
    main()
