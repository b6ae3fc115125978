"""The withdrawals example under chaos: faults, SIGKILLs, dead connections.

1,000 withdrawals posted to the API while three sender processes send
them to the sandbox (duplicate protection off: only the service and its
ledger stand between a crash and a second payment), 20% of the gateway's
answers faulty. Two senders are SIGKILLed mid-run and restarted; every
connection of the service is killed once with ``pg_terminate_backend``.
After the reconciler: nothing executed twice, nothing lost, nothing
stuck, and every withdrawal's state is the sandbox's.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import psycopg
import psycopg_pool
import pytest
from vexora_async.testing import FakeGateway, SandboxConfig, serve_sandbox

from tests.withdrawals_service import (
    EXAMPLE,
    Settings,
    create_app,
    make_client,
    reconciler,
    service_database,
    states,
)


if TYPE_CHECKING:
    from vexora_async import VexoraClient

pytestmark = [pytest.mark.slow, pytest.mark.subprocess, pytest.mark.e2e]

COUNT = 1_000
ROOT = Path(__file__).resolve().parent.parent
#: Short enough that the killed senders' claims free up within the test:
#: the SDK's floor is the deadline plus 10 s.
DEADLINE, LEASE = 2.0, 12.0


def body(i: int) -> dict[str, Any]:
    """The *i*-th withdrawal: one in twenty to an account the sandbox fails."""
    return {
        "user_id": f"u{i % 50}",
        "amount": 1000 + i,
        "bank_code": "KBZPAY",
        "bank_number": f"0979{i:03d}0029" if i % 20 == 0 else f"09{i:07d}8",
        "name": "Ko Min Thu",
    }


async def post_all(http: httpx.AsyncClient) -> int:
    """Post every withdrawal, as a phone would: again, same key, until stored.

    Returns how many posts had to be repeated (their connection was killed).
    """
    repeated = 0

    async def post(i: int) -> None:
        nonlocal repeated
        while True:
            answer = await http.post(
                "/withdrawals", json=body(i), headers={"Idempotency-Key": f"k{i}"}
            )
            if answer.status_code in {200, 201}:
                return
            repeated += 1
            await asyncio.sleep(0.05)

    for start in range(0, COUNT, 50):
        await asyncio.gather(*(post(i) for i in range(start, start + 50)))
        await asyncio.sleep(0.02)  # a stream, not one burst
    return repeated


async def count(url: str, where: str) -> int:
    """Count the withdrawals matching *where* (a constant condition)."""
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cursor = await conn.execute(
            "SELECT count(*) FROM withdrawals WHERE " + where  # noqa: S608 - constant
        )
        row = await cursor.fetchone()
    assert row is not None
    return int(row[0])


async def until(url: str, where: str, at_least: int) -> None:
    """Wait until at least that many withdrawals match *where*."""
    while True:
        if await count(url, where) >= at_least:
            return
        await asyncio.sleep(0.05)


async def terminate(application_name: str) -> int:
    """Kill every connection of the service (its own application name)."""
    from tests.servers import postgres_dsn

    async with await psycopg.AsyncConnection.connect(
        postgres_dsn(), autocommit=True
    ) as conn:
        cursor = await conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = %s AND pid <> pg_backend_pid()",
            (application_name,),
        )
        row = await cursor.fetchone()
    assert row is not None
    return int(row[0])


async def open_rows(url: str) -> list[tuple[Any, ...]]:
    """Return the withdrawals not final, with their transitions."""
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cursor = await conn.execute(
            "SELECT w.trade_no, w.state, array_agg(e.to_state || ':' || e.source"
            " || ':' || coalesce(e.detail, '') ORDER BY e.id) FROM withdrawals w"
            " JOIN withdrawal_events e ON e.withdrawal_id = w.id"
            " WHERE w.state NOT IN ('paid', 'failed') GROUP BY w.id"
        )
        return await cursor.fetchall()


async def reconcile_all(settings: Settings, client: VexoraClient, url: str) -> None:
    """Run the reconciler until every withdrawal is final (40 s at most)."""
    pool: psycopg_pool.AsyncConnectionPool[Any] = psycopg_pool.AsyncConnectionPool(
        url, min_size=1, max_size=20, open=False
    )
    async with pool:
        end = time.monotonic() + 40
        while await count(url, "state NOT IN ('paid', 'failed')"):
            assert time.monotonic() < end, await open_rows(url)
            await reconciler.reconcile_round(pool, client, settings)
            await asyncio.sleep(0.2)


async def test_chaos(tmp_path: Path) -> None:
    """Faults, kills, dead connections: each paid once, none lost or stuck."""
    started = time.monotonic()
    gateway = FakeGateway(
        SandboxConfig(settle_delay=0.05, reject_duplicates=False, callbacks=False)
    )
    gateway.faults.at_rate(0.2, seed=22)
    async with (
        service_database() as (url, application_name),
        serve_sandbox(gateway) as base_url,
    ):
        config = gateway.config
        settings = Settings(
            database_url=url,
            base_url=base_url,
            merchant_no=config.merchant_no,
            app_secret=config.app_secret,
            notify_url="http://127.0.0.1:9/vexora/payouts/notify",
            deadline=DEADLINE,
            claim_lease=LEASE,
            batch=40,
            stale_after=0.0,  # the senders are stopped when it runs
        )
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(EXAMPLE), str(ROOT)]),
            "DATABASE_URL": url,
            "VEXORA_BASE_URL": base_url,
            "VEXORA_MERCHANT_NO": config.merchant_no,
            "VEXORA_APP_SECRET": config.app_secret,
            "WITHDRAWALS_DEADLINE": str(DEADLINE),
            "WITHDRAWALS_CLAIM_LEASE": str(LEASE),
            "WITHDRAWALS_RETRY_AFTER": "0.2",
            "WITHDRAWALS_POLL_INTERVAL": "0.1",
        }
        generation = 0

        async def spawn() -> asyncio.subprocess.Process:
            nonlocal generation
            generation += 1
            with (tmp_path / f"sender-{generation}.log").open("wb") as log:
                return await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "withdrawals",
                    "sender",
                    cwd=EXAMPLE,
                    env=env,
                    stdout=log,
                    stderr=log,
                )

        senders = [await spawn() for _ in range(3)]
        pool: psycopg_pool.AsyncConnectionPool[Any] = psycopg_pool.AsyncConnectionPool(
            url, min_size=1, max_size=20, open=False
        )
        async with pool, make_client(settings) as client:
            app = create_app(settings, pool=pool, client=client)
            async with (
                app.router.lifespan_context(app),
                httpx.AsyncClient(
                    # A query on a killed connection is a 500, as over a
                    # socket: the phone posts again, with the same key.
                    transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                    base_url="http://api",
                ) as http,
            ):
                posting = asyncio.create_task(post_all(http))
                # Mid-run: two senders die, at work; then every connection.
                await until(url, "state <> 'new'", COUNT // 4)
                for proc in senders[:2]:
                    proc.send_signal(signal.SIGKILL)
                    assert await proc.wait() == -signal.SIGKILL
                senders[:2] = [await spawn(), await spawn()]
                await until(url, "state <> 'new'", COUNT // 3)
                terminated = await terminate(application_name)
                repeated = await posting
                await until(url, "state <> 'new'", COUNT)
                for proc in senders:
                    proc.send_signal(signal.SIGTERM)
                    assert await proc.wait() == 0
            sent = time.monotonic() - started
            # Bigger rounds: nearly every row is accepted, its callback off.
            await reconcile_all(replace(settings, batch=200), client, url)
        rows = await states(url)

    assert len(rows) == COUNT  # a repeated post made no second withdrawal
    assert max(gateway.stats.executions.values()) == 1  # 0 executed twice
    for trade_no, (state, _) in rows.items():
        payout = gateway.payouts.get(trade_no)
        assert payout is not None, trade_no  # 0 lost
        assert payout.status.is_final
        assert state == ("paid" if payout.status.is_success else "failed"), trade_no
    assert [state for state, _ in rows.values()].count("failed") == COUNT // 20
    assert terminated
    print(  # noqa: T201 - the figures, with -s
        f"chaos: {COUNT} withdrawals in {time.monotonic() - started:.1f} s"
        f" ({sent:.1f} s to send),"
        f" {terminated} connections terminated, {repeated} posts repeated,"
        f" {sum(gateway.stats.rejections.values())} refusals"
    )
