"""Throughput of the SDK and of raw HTTP clients against one loopback server.

Run as ``python tests/bench/bench_throughput.py CLIENT CONCURRENCY N REPEATS
URL [CPU] [--loop uvloop]``; prints one JSON object (requests per second
and CPU µs per request of each repeat, and where ``vexora_async`` was
imported from: ``run.py --baseline`` puts another checkout first on the
path). Each repeat sends *N* requests from
*CONCURRENCY* tasks gathered at once (no limiter of the benchmark's own:
what the caller's ``gather`` gives the client is what it gets), after a
warm-up that opens the connections. ``--loop uvloop`` runs the client on
uvloop's event loop instead of asyncio's (the user's opt-in; the SDK never
installs it).

The clients, each used as a user would, with default settings:

``sdk``
    ``VexoraClient.create_payout``, a unique tradeNo per call (validate,
    encode, idempotency, retry layer, sign, POST, decode, check).
``sdk-aiohttp``
    the same with ``transport="aiohttp"``.
``httpx``
    one shared ``httpx.AsyncClient()`` with default limits, POSTing the
    bytes of a signed payout: the naive way.
``httpx-limits``
    one shared ``httpx.AsyncClient`` with the limits the SDK gives its own
    by default (all of its connections kept alive), the same bytes and
    the same limiter-free gather: the exchange the SDK's default makes,
    without the SDK. The SDK default's CPU per request minus this one's is
    the SDK's own work in place.
``aiohttp``
    one shared ``aiohttp.ClientSession()``, the same bytes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import sys
import time
from collections import Counter
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import aiohttp
import httpx
import vexora_async
from vexora_async import BankCode, PayoutRequest, VexoraClient, sign
from vexora_async._transports._httpx import default_limits


if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine


T = TypeVar("T")
#: The SDK's ``transport`` argument (spelled here, not imported: the
#: transports are moving between private modules).
TransportName = Literal["httpx", "aiohttp"]
CLIENTS = ["sdk", "httpx", "httpx-limits", "sdk-aiohttp", "aiohttp"]
LOOPS = ["asyncio", "uvloop"]
#: The pool limits the SDK gives the httpx client it makes, by default (read
#: from the SDK under test: they change from version to version).
SDK_LIMITS = default_limits()
SDK_MAX_CONNECTIONS = SDK_LIMITS.max_connections or 0

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
    if client in {"httpx", "httpx-limits"}:
        http = (
            httpx.AsyncClient(limits=SDK_LIMITS)
            if client == "httpx-limits"
            else httpx.AsyncClient()  # the naive way: httpx's default limits
        )
        async with http:

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


def run_on(loop: str, main: Coroutine[Any, Any, T]) -> T:
    """Run *main* on asyncio's event loop or on uvloop's."""
    if loop == "asyncio":
        return asyncio.run(main)
    import uvloop

    if sys.version_info >= (3, 11):
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(main)
    else:  # 3.10: no Runner; install() is not yet deprecated there
        uvloop.install()
        return asyncio.run(main)


async def _loop_of(
    main: Awaitable[tuple[list[float], list[float], dict[str, int]]],
) -> tuple[str, tuple[list[float], list[float], dict[str, int]]]:
    """Await *main*; also name the class of the loop that ran it."""
    running = type(asyncio.get_running_loop())
    return f"{running.__module__}.{running.__qualname__}", await main


def main() -> None:
    """Run one cell of the throughput table and print it as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("client", choices=CLIENTS)
    parser.add_argument("concurrency", type=int)
    parser.add_argument("n", type=int)
    parser.add_argument("repeats", type=int)
    parser.add_argument("base_url")
    parser.add_argument("cpu", type=int, nargs="?")
    parser.add_argument("--loop", choices=LOOPS, default="asyncio")
    options = parser.parse_args()
    if options.cpu is not None and hasattr(os, "sched_setaffinity"):
        with contextlib.suppress(OSError):  # not allowed here: run unpinned
            os.sched_setaffinity(0, {options.cpu})
    loop_class, (rates, cpu_us, errors) = run_on(
        options.loop,
        _loop_of(
            measure(
                options.client,
                options.concurrency,
                options.n,
                options.repeats,
                options.base_url,
            )
        ),
    )
    print(  # noqa: T201 - the runner reads this line
        json.dumps(
            {
                "client": options.client,
                "concurrency": options.concurrency,
                "n": options.n,
                "loop": options.loop,
                "loop_class": loop_class,
                "rates": rates,
                "cpu_us": cpu_us,
                "errors": errors,
                "sdk_path": vexora_async.__file__,
            }
        )
    )


if __name__ == "__main__":
    main()
