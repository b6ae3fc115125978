"""Latency of this service: from POST /withdrawals to accepted.

Runs the service in this process against the
sandbox: the API on loopback, two senders, the reconciler; posts
withdrawals at a steady rate and reads, from ``withdrawal_events``, the
time from each row's insert to the sender's record of the gateway's
answer (the database's clock for both). A measurement, never a test::

    export DATABASE_URL=postgresql://127.0.0.1/postgres
    python measure.py --count 500 --rate 50

It makes a schema of its own and drops it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import time
import uuid

import httpx
import psycopg
import psycopg_pool
from psycopg import sql
from psycopg.conninfo import make_conninfo
from vexora_async import PostgresLedger
from vexora_async.testing import FakeGateway, SandboxConfig, serve_app, serve_sandbox
from withdrawals import sender
from withdrawals.api import create_app
from withdrawals.db import migrate
from withdrawals.settings import Settings
from withdrawals.telemetry import make_client


_LATENCY = """
SELECT extract(epoch FROM min(e.created_at) - w.created_at)
  FROM withdrawals w JOIN withdrawal_events e ON e.withdrawal_id = w.id
 WHERE e.source = 'sender' AND e.to_state IN ('accepted', 'paid', 'failed')
 GROUP BY w.id
"""


async def measure(args: argparse.Namespace, url: str) -> list[float]:
    """Run the service, post the withdrawals; return each one's seconds."""
    gateway = FakeGateway(SandboxConfig(settle_delay=0.05))
    async with contextlib.AsyncExitStack() as stack:
        base_url = await stack.enter_async_context(serve_sandbox(gateway))
        settings = Settings(
            database_url=url,
            base_url=base_url,
            merchant_no=gateway.config.merchant_no,
            app_secret=gateway.config.app_secret,
            poll_interval=args.poll,
            notify_url="http://127.0.0.1:9/vexora/payouts/notify",  # no callbacks
        )
        pool = await stack.enter_async_context(
            psycopg_pool.AsyncConnectionPool(url, max_size=30, open=False)
        )
        ledger = PostgresLedger(pool)
        client = await stack.enter_async_context(make_client(settings, ledger))
        api = await stack.enter_async_context(
            serve_app(create_app(settings, pool=pool, client=client))
        )
        stop = asyncio.Event()
        workers = [
            asyncio.create_task(sender.run(pool, client, ledger, settings, stop))
            for _ in range(args.senders)
        ]
        async with httpx.AsyncClient(base_url=api) as http:

            async def post(i: int) -> None:
                answer = await http.post(
                    "/withdrawals",
                    json={
                        "user_id": "bench",
                        "amount": 5000,
                        "bank_code": "KBZPAY",
                        "bank_number": "09791234567",
                        "name": "Ko Min Thu",
                    },
                    headers={"Idempotency-Key": f"b{i}"},
                )
                answer.raise_for_status()

            posts = []
            started = time.monotonic()
            for i in range(args.count):
                await asyncio.sleep(
                    max(0.0, started + i / args.rate - time.monotonic())
                )
                posts.append(asyncio.create_task(post(i)))
            await asyncio.gather(*posts)
        while True:
            async with pool.connection() as conn:
                cursor = await conn.execute(_LATENCY)
                rows = await cursor.fetchall()
            if len(rows) == args.count:
                break
            await asyncio.sleep(0.1)
        stop.set()
        await asyncio.gather(*workers)

    return [float(row[0]) for row in rows]


async def main(args: argparse.Namespace) -> None:
    """Make a schema, measure, drop the schema, print the figures."""
    dsn = os.environ["DATABASE_URL"]
    schema = f"bench_wd_{uuid.uuid4().hex[:8]}"
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    url = make_conninfo(dsn, options=f"-c search_path={schema}")
    try:
        async with await psycopg.AsyncConnection.connect(url) as conn:
            await migrate(conn)
        seconds = sorted(await measure(args, url))
    finally:
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            await conn.execute(
                sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema))
            )
    p95 = seconds[int(len(seconds) * 0.95) - 1]
    print(  # noqa: T201 - the figures
        f"{args.count} withdrawals at {args.rate}/s, {args.senders} senders,"
        f" poll {args.poll} s: POST to accepted p50 {statistics.median(seconds):.3f} s,"
        f" p95 {p95:.3f} s, max {seconds[-1]:.3f} s"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--senders", type=int, default=2)
    parser.add_argument("--poll", type=float, default=0.2)
    asyncio.run(main(parser.parse_args()))
