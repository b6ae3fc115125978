"""What each ledger costs per payout, against the in-process MemoryLedger.

``nox -s bench_ledgers`` (with ``source .ci/services.sh`` first, for the
loopback Redis and PostgreSQL servers) writes ``docs/performance/ledgers.md``.
A benchmark, never a test: the numbers depend on the machine.

Per ledger, three measurements:

- *claim + settle*: what the idempotency layer adds to each new payout
  (one claim, one settle), one payout at a time;
- *repeat*: a repeated tradeNo answered from the ledger (one refused claim);
- *create_payout*: a whole call over an in-process mock gateway, so the
  ledger's share of a call shows;

and the claim + settle throughput with 64 payouts at once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx


if TYPE_CHECKING:
    from collections.abc import AsyncIterator

ROOT = Path(__file__).resolve().parent.parent.parent
OUT = ROOT / "docs" / "performance" / "ledgers.md"
MERCHANT = "1000000001"
DATA = {
    "tradeNo": "",
    "platFormTradeNo": "vx8f3k29d0qplm7x2",
    "status": "0015",
    "message": "Processing",
    "remark": "",
}


@contextlib.asynccontextmanager
async def open_ledger(kind: str, tmp: Path) -> AsyncIterator[Any]:
    """Open a fresh ledger of *kind*."""
    from vexora_async import (
        MemoryLedger,
        PostgresLedger,
        RedisLedger,
        SQLiteLedger,
    )

    if kind == "memory":
        yield MemoryLedger(max_entries=1_000_000)
    elif kind == "sqlite":
        async with SQLiteLedger(tmp / f"{uuid.uuid4().hex}.db") as sqlite:
            yield sqlite
    elif kind == "redis":
        url = os.environ["VEXORA_TEST_REDIS_URL"]
        async with RedisLedger.from_url(
            url, prefix=f"bench-{uuid.uuid4().hex}:"
        ) as ledger:
            yield ledger
    else:
        import psycopg_pool
        from psycopg import sql

        dsn = os.environ["VEXORA_TEST_POSTGRES_DSN"]
        table = f"bench_{uuid.uuid4().hex[:12]}"
        async with psycopg_pool.AsyncConnectionPool(
            dsn, min_size=4, max_size=16, open=False
        ) as pool:
            postgres = PostgresLedger(pool, table=table)
            await postgres.create_table()
            try:
                yield postgres
            finally:
                async with pool.connection() as conn:
                    await conn.execute(
                        sql.SQL("DROP TABLE {}").format(sql.Identifier(table))
                    )


async def claim_settle(ledger: Any, key: str) -> None:
    """One new payout's ledger work: claim, then settle accepted."""
    from vexora_async.ledgers import EntryState, LedgerEntry, new_token

    claim = await ledger.claim(key, "f" * 64, lease=180.0, token=new_token())
    entry = LedgerEntry(
        state=EntryState.ACCEPTED,
        fingerprint="f" * 64,
        updated_at=time.time(),
        data={**DATA, "tradeNo": key[-16:]},
    )
    await ledger.settle(key, entry, token=claim.token)


async def measure(kind: str, n: int, tmp: Path) -> dict[str, float]:
    """Return *kind*'s per-payout costs (microseconds) and throughput."""
    from vexora_async import VexoraClient
    from vexora_async.ledgers import new_token

    from tests.helpers import make_payout, payout_data

    async with open_ledger(kind, tmp) as ledger:
        keys = [f"{MERCHANT}:create_payout:B{i:015d}" for i in range(n)]
        started = time.perf_counter()
        for key in keys:
            await claim_settle(ledger, key)
        cycle = (time.perf_counter() - started) / n * 1e6

        started = time.perf_counter()
        for key in keys:
            await ledger.claim(key, "f" * 64, lease=180.0, token=new_token())  # refused
        repeat = (time.perf_counter() - started) / n * 1e6

        wide = [f"{MERCHANT}:create_payout:W{i:015d}" for i in range(n)]
        semaphore = asyncio.Semaphore(64)

        async def bounded(key: str) -> None:
            async with semaphore:
                await claim_settle(ledger, key)

        started = time.perf_counter()
        await asyncio.gather(*(bounded(k) for k in wide))
        per_second = n / (time.perf_counter() - started)

        def handler(request: httpx.Request) -> httpx.Response:
            trade_no = json.loads(request.content)["tradeNo"]
            envelope = {
                "code": "0000",
                "msg": "success",
                "success": True,
                "timestamp": 0,
                "data": payout_data(trade_no=trade_no),
            }
            return httpx.Response(200, json=envelope)

        http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
        client = VexoraClient(
            MERCHANT,
            "bench-secret",
            "http://127.0.0.1:9/myanmar",
            http_client=http,
            ledger=ledger,
        )
        requests = [make_payout(trade_no=f"C{i:015d}") for i in range(n)]
        async with http, client:
            started = time.perf_counter()
            for request in requests:
                await client.create_payout(request)
            call = (time.perf_counter() - started) / n * 1e6
    return {"cycle": cycle, "repeat": repeat, "per_second": per_second, "call": call}


async def run(kinds: list[str], n: int, repeats: int) -> dict[str, dict[str, float]]:
    """Measure every ledger *repeats* times; keep the median of each figure."""
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in kinds:
            runs = [await measure(kind, n, Path(tmp)) for _ in range(repeats)]
            results[kind] = {
                figure: statistics.median(r[figure] for r in runs) for figure in runs[0]
            }
            print(kind, {k: round(v, 1) for k, v in results[kind].items()})  # noqa: T201
    return results


def table(results: dict[str, dict[str, float]], n: int) -> str:
    """Return the results as a Markdown page."""
    memory = results["memory"]
    lines = [
        "# Ledger overhead",
        "",
        (
            "Written by `nox -s bench_ledgers` (`tests/bench/bench_ledgers.py`) "
            "on loopback Redis and PostgreSQL servers (`.ci/services.sh`: no "
            "persistence for Redis, `fsync` off for PostgreSQL), "
            f"{n:,} payouts per measurement, median of the runs. Microseconds "
            "per payout; *overhead* is against the in-process `MemoryLedger`."
        ),
        "",
        (
            "| ledger | claim + settle (µs) | overhead (µs) | repeat answered "
            "from the ledger (µs) | create_payout, mock gateway (µs) | claim + "
            "settle, 64 at once (payouts/s) |"
        ),
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for kind, r in results.items():
        lines.append(
            f"| {kind} | {r['cycle']:,.0f} | {r['cycle'] - memory['cycle']:+,.0f} "
            f"| {r['repeat']:,.0f} | {r['call']:,.0f} | {r['per_second']:,.0f} |"
        )
    lines += [
        "",
        (
            f"Python {sys.version.split()[0]}, {os.cpu_count()} cores shared "
            "with the servers. On a real network add one round trip per claim "
            "and one per settle (two for a new payout, one for a repeat)."
        ),
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    """Run the benchmark; write docs/performance/ledgers.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    parser.add_argument(
        "--ledger",
        action="append",
        choices=["memory", "sqlite", "redis", "postgres"],
    )
    args = parser.parse_args()
    if args.quick:
        args.n, args.repeats = 200, 1
    kinds = args.ledger or ["memory", "sqlite", "redis", "postgres"]
    if "memory" not in kinds:
        kinds.insert(0, "memory")
    sys.path.insert(0, str(ROOT))  # tests.helpers: the request factories
    results = asyncio.run(run(kinds, args.n, args.repeats))
    if not args.quick:
        OUT.write_text(table(results, args.n))
        print(f"wrote {OUT}")  # noqa: T201


if __name__ == "__main__":
    main()
