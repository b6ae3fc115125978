"""The PostgreSQL ledger where it meets the database's bad days.

Workers creating the table at once; claims in transactions that roll
back; backends terminated (``pg_terminate_backend``, as a failover does)
between calls, during a call, and a commit whose answer never arrives;
the table locked by a migration while a deadline runs out. All on the
real server.
"""

from __future__ import annotations

import asyncio
import contextlib
import tracemalloc
from typing import TYPE_CHECKING, Any

import psycopg
import psycopg_pool
import pytest
from psycopg import sql
from vexora_async import EntryState, LedgerEntry, PostgresLedger, VexoraClient
from vexora_async.ledgers import _postgres
from vexora_async.ledgers._protocol import new_token

from tests.helpers import BASE_URL, MERCHANT_NO, SECRET, make_payout
from tests.servers import postgres_dsn, unique


if TYPE_CHECKING:
    from collections.abc import AsyncIterator

LEASE = 60.0


def accepted(fingerprint: str = "f") -> LedgerEntry:
    """Return an accepted outcome to settle."""
    return LedgerEntry(
        state=EntryState.ACCEPTED,
        fingerprint=fingerprint,
        updated_at=0,
        data={"tradeNo": "T1", "amount": "1000"},
    )


def unknown(fingerprint: str = "f") -> LedgerEntry:
    """Return an unknown outcome to settle."""
    return LedgerEntry(state=EntryState.UNKNOWN, fingerprint=fingerprint, updated_at=0)


async def open_pool(
    name: str, size: int = 3, dsn: str | None = None, **options: Any
) -> psycopg_pool.AsyncConnectionPool[Any]:
    """Open a pool whose backends carry *name*, so a test can find them."""
    pool: psycopg_pool.AsyncConnectionPool[Any] = psycopg_pool.AsyncConnectionPool(
        dsn or postgres_dsn(),
        min_size=size,
        max_size=size,
        kwargs={"application_name": name},
        open=False,
        **options,
    )
    await pool.open(wait=True, timeout=10)
    return pool


@pytest.fixture
async def admin() -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """A connection of our own: the DBA, the migration, the failover."""
    conn = await psycopg.AsyncConnection.connect(postgres_dsn(), autocommit=True)
    yield conn
    await conn.close()


@pytest.fixture
async def ledger(
    admin: psycopg.AsyncConnection[Any],
) -> AsyncIterator[PostgresLedger]:
    """A ledger on a table of its own, over a pool whose backends are named."""
    name = unique("vexora_pg_")
    pool = await open_pool(name)
    made = PostgresLedger(pool, table=name)
    await made.create_table()
    yield made
    await pool.close()
    await admin.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))


def application(ledger: PostgresLedger) -> str:
    """Return the application name of *ledger*'s pool backends."""
    return str(ledger.pool.kwargs["application_name"])


async def terminate(admin: psycopg.AsyncConnection[Any], name: str) -> int:
    """Terminate every backend named *name*; return how many."""
    cursor = await admin.execute(
        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) "
        "FROM pg_stat_activity WHERE application_name = %s",
        (name,),
    )
    row = await cursor.fetchone()
    assert row is not None
    return int(row[0])


async def waiting_backend(admin: psycopg.AsyncConnection[Any], name: str) -> int:
    """Wait until a backend named *name* waits on a lock; return its pid."""
    for _ in range(500):
        cursor = await admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s "
            "AND wait_event_type = 'Lock'",
            (name,),
        )
        row = await cursor.fetchone()
        if row is not None:
            return int(row[0])
        await asyncio.sleep(0.01)
    pytest.fail("no backend came to wait on the lock")


async def in_flight(admin: psycopg.AsyncConnection[Any], table: str) -> int:
    """Count the entries left in flight."""
    cursor = await admin.execute(
        sql.SQL("SELECT count(*) FROM {} WHERE state = 'in_flight'").format(
            sql.Identifier(table)
        )
    )
    row = await cursor.fetchone()
    assert row is not None
    return int(row[0])


# Item 8: workers starting at once.


async def test_workers_creating_the_table_at_once_all_succeed(
    admin: psycopg.AsyncConnection[Any],
) -> None:
    """Eight workers run create_table on a fresh table at the same moment.

    Before, ``CREATE TABLE IF NOT EXISTS`` raced on the catalog and most
    of them crashed (``UniqueViolation``, ``DuplicateTable``).
    """
    for _ in range(5):
        table = unique("vexora_pg_create_")
        pools = [await open_pool(table, size=1) for _ in range(8)]
        try:
            ledgers = [PostgresLedger(pool, table=table) for pool in pools]
            results = await asyncio.gather(
                *(made.create_table() for made in ledgers), return_exceptions=True
            )
            assert [r for r in results if r is not None] == []
            claim = await ledgers[0].claim("k", "f", lease=LEASE, token=new_token())
            assert claim.granted
        finally:
            for pool in pools:
                await pool.close()
            await admin.execute(
                sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table))
            )


# Item 9: claims in the caller's transaction keep nothing in memory.


class Boom(Exception):
    """The caller's transaction fails after the claim."""


async def test_claims_in_rolled_back_transactions_keep_no_memory(
    ledger: PostgresLedger,
) -> None:
    """500 claim_payout calls whose transactions roll back leave nothing.

    Before, each left an entry in a map of the ledger (5,000 of them
    were +1.1 MiB), for the life of the process.
    """
    client = VexoraClient(MERCHANT_NO, SECRET, BASE_URL, ledger=ledger)
    requests = [make_payout(trade_no=f"VXLEAK{i:08d}") for i in range(500)]
    module = _postgres.__file__
    async with client, ledger.pool.connection() as conn:
        tracemalloc.start()
        try:
            before = tracemalloc.take_snapshot()
            for request in requests:
                with contextlib.suppress(Boom):
                    async with conn.transaction():
                        claim = await ledger.claim_payout(conn, client, request)
                        assert claim.granted
                        raise Boom
            after = tracemalloc.take_snapshot()
        finally:
            tracemalloc.stop()
    kept = sum(
        stat.size_diff
        for stat in after.compare_to(before, "filename")
        if stat.traceback[0].filename == module
    )
    assert kept < 20_000
    key = f"{MERCHANT_NO}:create_payout:{requests[0].trade_no}"
    assert await ledger.get(key) is None


async def test_a_claim_payout_is_handed_to_this_ledger_only(
    ledger: PostgresLedger,
) -> None:
    """After the commit, this ledger's next claim takes the claim over.

    Another ledger on the same table (another worker) is refused: the
    claim is in flight. The entry it took over still counts: a claim on
    an unknown entry hands that entry on, so the payout is reconciled.
    """
    other = PostgresLedger(ledger.pool, table=ledger.table)
    client = VexoraClient(MERCHANT_NO, SECRET, BASE_URL, ledger=ledger)
    fresh, seen = make_payout(trade_no="VXHAND1"), make_payout(trade_no="VXHAND2")
    async with client:
        key = f"{MERCHANT_NO}:create_payout:{seen.trade_no}"
        async with ledger.pool.connection() as conn:
            # An earlier attempt of *seen* ended unknown.
            made = await ledger.claim_in(
                conn, key, fingerprint_of(client, seen), lease=LEASE, token="t0"
            )
            assert made.granted
        print_ = fingerprint_of(client, seen)
        assert await ledger.settle(key, unknown(print_), token="t0")
        async with ledger.pool.connection() as conn, conn.transaction():
            for request in (fresh, seen):
                assert (await ledger.claim_payout(conn, client, request)).granted

    for request, prior in ((fresh, None), (seen, EntryState.UNKNOWN)):
        key = f"{MERCHANT_NO}:create_payout:{request.trade_no}"
        print_ = fingerprint_of(client, request)
        refused = await other.claim(key, print_, lease=LEASE, token=new_token())
        assert not refused.granted
        token = new_token()
        taken = await ledger.claim(key, print_, lease=LEASE, token=token)
        assert taken.granted
        assert taken.token == token
        assert (taken.prior and taken.prior.state) == prior
        again = await ledger.claim(key, print_, lease=LEASE, token=new_token())
        assert not again.granted  # handed over once
        assert await ledger.settle(key, accepted(print_), token=token)


def fingerprint_of(client: VexoraClient, request: Any) -> str:
    """Return the ledger fingerprint of *request*."""
    from vexora_async._idempotency import fingerprint

    return fingerprint(client._codec.encode(request))
