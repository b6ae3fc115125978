"""Peak memory of a payout batch and a big gather; RSS of idle clients.

Run as ``python tests/bench/bench_memory.py SCENARIO N URL [CPU]``; prints
one JSON object. Memory is the process's peak RSS growth (``ru_maxrss``,
which only grows) over its RSS once the client is warm, so the numbers are
what the batch itself added.

``batch``
    *N* payouts from a generator, through ``client.create_payouts`` when the
    client has it, else through a fixed pool of workers (the same shape:
    no task per request made up front).
``ledger``
    *N* accepted payouts settled in a default ``MemoryLedger``, without
    I/O: what the batch's ledger alone holds.
``gather``
    *N* ``create_payout`` calls in one ``asyncio.gather``, the way users
    write it; counts the calls that failed, and those that failed on a
    ``PoolTimeout`` (there must be none: the SDK's limiter queues them).
``idle-httpx``, ``idle-aiohttp``
    what an idle client costs beyond the first in a process: one
    ``VexoraClient`` with that transport constructed (never used) inside a
    running loop, RSS read, *N* more constructed, ``gc``, RSS read again;
    reports the growth divided by *N*. Here RSS is the current resident
    memory (``/proc/self/statm``), not the peak.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import resource
import sys
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

import httpx
import vexora_async
from bench_throughput import MERCHANT_NO, SECRET, TransportName, payout
from vexora_async import MemoryLedger, VexoraClient
from vexora_async.ledgers import EntryState, LedgerEntry, new_token


if TYPE_CHECKING:
    from collections.abc import Iterator


WORKERS = 100


def rss_mb() -> float:
    """The process's resident memory now, in MB."""
    with open("/proc/self/statm", encoding="ascii") as statm:  # noqa: PTH123 - Linux only, like the benchmark
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    """The process's peak resident memory so far, in MB (Linux: KiB units)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, kind):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


async def batch(client: VexoraClient, n: int, start: int) -> dict[str, Any]:
    """Send *n* payouts as a batch; count outcomes."""
    requests: Iterator[Any] = (payout(start + i) for i in range(n))
    kinds: Counter[str] = Counter()
    create_payouts = getattr(client, "create_payouts", None)
    if create_payouts is not None:
        async for outcome in create_payouts(requests, concurrency=WORKERS):
            kind = getattr(outcome, "kind", "done")
            kinds[str(getattr(kind, "value", kind))] += 1
        return {"api": "client.create_payouts", "outcomes": dict(kinds)}

    async def send(request: Any) -> None:
        try:
            await client.create_payout(request)
        except Exception as exc:  # noqa: BLE001 - counted, not hidden
            kinds[type(exc).__name__] += 1
        else:
            kinds["accepted"] += 1

    async def worker() -> None:
        for request in requests:
            await send(request)

    await asyncio.gather(*(worker() for _ in range(WORKERS)))
    return {
        "api": f"{WORKERS} workers over create_payout (no batch API in this build)",
        "outcomes": dict(kinds),
    }


async def gather(client: VexoraClient, n: int, start: int) -> dict[str, Any]:
    """Send *n* payouts in one unbounded gather; count failures."""
    results = await asyncio.gather(
        *(client.create_payout(payout(start + i)) for i in range(n)),
        return_exceptions=True,
    )
    errors = [r for r in results if isinstance(r, BaseException)]
    return {
        "api": "asyncio.gather(create_payout x N)",
        "ok": n - len(errors),
        "errors": len(errors),
        "pool_timeouts": sum(_caused_by(e, httpx.PoolTimeout) for e in errors),
    }


async def ledger(n: int) -> dict[str, Any]:
    """Settle *n* accepted payouts in a default MemoryLedger, no I/O."""
    store = MemoryLedger()
    data = {
        "tradeNo": "",
        "platFormTradeNo": "vx8f3k29d0qplm7x2",
        "status": "0015",
        "message": "Processing",
    }
    baseline = rss_mb()
    for i in range(n):
        key = f"{MERCHANT_NO}:create_payout:VXBENCH{i:012d}"
        print_ = f"{i:064x}"
        claim = await store.claim(key, print_, lease=180.0, token=new_token())
        entry = LedgerEntry(
            state=EntryState.ACCEPTED,
            fingerprint=print_,
            updated_at=time.time(),
            data={**data, "tradeNo": key[-19:]},
        )
        await store.settle(key, entry, token=claim.token or "")
    peak = peak_rss_mb()
    return {
        "scenario": "ledger",
        "n": n,
        "entries_kept": len(store),
        "peak_growth_mb": peak - baseline,
        "bytes_per_entry": (peak - baseline) * 2**20 / max(len(store), 1),
    }


async def idle(n: int, base_url: str, transport: TransportName) -> dict[str, Any]:
    """RSS of *n* idle clients beyond the first: constructed, never used."""
    gc.collect()
    before = rss_mb()

    def construct() -> VexoraClient:
        return VexoraClient(
            merchant_no=MERCHANT_NO,
            app_secret=SECRET,
            base_url=base_url,
            transport=transport,
        )

    # The first pays for the imports and whatever is made once per process.
    clients = [construct()]
    gc.collect()
    first = rss_mb()
    clients += [construct() for _ in range(n)]
    gc.collect()
    after = rss_mb()
    for client in clients:
        await client.aclose()
    return {
        "scenario": f"idle-{transport}",
        "transport": transport,
        "n": n,
        "rss_before_mb": before,
        "first_client_mb": first - before,
        "rss_after_first_mb": first,
        "rss_after_all_mb": after,
        "per_extra_client_mb": (after - first) / n,
    }


async def main(scenario: str, n: int, base_url: str) -> dict[str, Any]:
    """Warm a default client up, then run *scenario*, measuring memory."""
    if scenario == "ledger":
        return await ledger(n)
    if scenario == "idle-httpx":
        return await idle(n, base_url, "httpx")
    if scenario == "idle-aiohttp":
        return await idle(n, base_url, "aiohttp")
    async with VexoraClient(MERCHANT_NO, SECRET, base_url) as client:
        await gather(client, 1000, 10**9)  # connections open, code warm
        baseline = rss_mb()
        started = time.perf_counter()
        run = batch if scenario == "batch" else gather
        result = await run(client, n, 0)
        elapsed = time.perf_counter() - started
        peak = peak_rss_mb()
    return {
        "scenario": scenario,
        "n": n,
        "seconds": elapsed,
        "rate": n / elapsed,
        "baseline_rss_mb": baseline,
        "peak_rss_mb": peak,
        "peak_growth_mb": peak - baseline,
        **result,
    }


if __name__ == "__main__":
    if len(sys.argv) > 4 and hasattr(os, "sched_setaffinity"):
        with contextlib.suppress(OSError):  # not allowed here: run unpinned
            os.sched_setaffinity(0, {int(sys.argv[4])})
    print(  # noqa: T201 - the runner reads this line
        json.dumps(
            {
                **asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3])),
                "sdk_path": vexora_async.__file__,
            }
        )
    )
