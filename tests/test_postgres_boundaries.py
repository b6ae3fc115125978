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
import datetime as dt
import time
import tracemalloc
from typing import TYPE_CHECKING, Any

import psycopg
import psycopg_pool
import pytest
from psycopg import sql
from vexora_async import PostgresLedger, VexoraClient
from vexora_async.ledgers import EntryState, LedgerEntry, _postgres
from vexora_async.ledgers._protocol import new_token

from tests.helpers import BASE_URL, MERCHANT_NO, SECRET, make_payout
from tests.servers import postgres_dsn, unique


if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

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
    """A ledger on a table of its own; its pool's backends carry the name."""
    name = unique("vexora_pg_")
    pool = await open_pool(name)
    made = PostgresLedger(pool, table=name)
    await made.create_table()
    yield made
    await pool.close()
    await admin.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))


def application(ledger: PostgresLedger) -> str:
    """Return the application name of *ledger*'s pool backends: its table's."""
    return ledger.table


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


# Item 14: connections killed (pg_terminate_backend, a failover).


async def test_backends_terminated_between_calls_cost_nothing(
    admin: psycopg.AsyncConnection[Any], ledger: PostgresLedger
) -> None:
    """Every connection of the pool dies before each operation: all succeed.

    The pool hands out each dead connection once more; the ledger tries
    again on the next at once, well within a deadline. Before, the first
    write after a failover raised, and a settle only logged: the payout
    stayed in flight for the whole lease.
    """
    name = application(ledger)
    token, other = new_token(), new_token()
    operations: list[Callable[[], Awaitable[Any]]] = [
        lambda: ledger.claim("paid", "f", lease=LEASE, token=token),
        lambda: ledger.settle("paid", accepted(), token=token),
        lambda: ledger.claim("unsent", "f", lease=LEASE, token=other),
        lambda: ledger.release("unsent", token=other),
        lambda: ledger.get("paid"),
    ]
    answers: list[Any] = []
    for operation in operations:
        assert await terminate(admin, name) >= 1
        answers.append(await asyncio.wait_for(operation(), 1))
    claimed, settled, claimed_too, released, entry = answers

    assert claimed.granted
    assert claimed_too.granted
    assert settled
    assert released
    assert entry is not None
    assert entry.state is EntryState.ACCEPTED
    assert await ledger.get("unsent") is None
    assert await in_flight(admin, ledger.table) == 0


async def test_a_backend_terminated_during_a_settle(
    admin: psycopg.AsyncConnection[Any], ledger: PostgresLedger
) -> None:
    """The settle's backend dies while it waits on a row lock: it lands anyway."""
    token = new_token()
    assert (await ledger.claim("k", "f", lease=LEASE, token=token)).granted
    async with admin.transaction():
        await admin.execute(
            sql.SQL("SELECT 1 FROM {} WHERE key = 'k' FOR UPDATE").format(
                sql.Identifier(ledger.table)
            )
        )
        settling = asyncio.create_task(ledger.settle("k", accepted(), token=token))
        pid = await waiting_backend(admin, application(ledger))
        await admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        await waiting_backend(admin, application(ledger))  # tried again
    assert await asyncio.wait_for(settling, 5)
    entry = await ledger.get("k")

    assert entry is not None
    assert entry.state is EntryState.ACCEPTED


async def test_a_backend_terminated_during_a_claim_is_not_a_refusal(
    admin: psycopg.AsyncConnection[Any], ledger: PostgresLedger
) -> None:
    """The claim's backend dies mid-claim: tried again, granted, prior kept."""
    first = new_token()
    assert (await ledger.claim("k", "f", lease=LEASE, token=first)).granted
    assert await ledger.settle("k", unknown(), token=first)
    token = new_token()
    async with admin.transaction():
        await admin.execute(
            sql.SQL("SELECT 1 FROM {} WHERE key = 'k' FOR UPDATE").format(
                sql.Identifier(ledger.table)
            )
        )
        claiming = asyncio.create_task(ledger.claim("k", "f", lease=LEASE, token=token))
        pid = await waiting_backend(admin, application(ledger))
        await admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    claim = await asyncio.wait_for(claiming, 5)

    assert claim.granted
    assert claim.token == token
    assert claim.prior is not None
    assert claim.prior.state is EntryState.UNKNOWN


class Proxy:
    """A TCP relay to the server that can lose the answer to one COMMIT.

    Armed, it forwards the client's COMMIT, so the server commits, then
    drops the connection instead of relaying the answer: the client
    cannot tell whether its write landed.
    """

    COMMITTED = b"C\x00\x00\x00\x0bCOMMIT\x00"

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.armed = False
        self.dropped = 0
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        """Listen on loopback; return the port."""
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        """Stop listening and cut every relay."""
        assert self.server is not None
        self.server.close()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.server.wait_closed()

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        up_reader, up_writer = await asyncio.open_connection(self.host, self.port)
        relays = [
            asyncio.create_task(self._relay(reader, up_writer, answers=False)),
            asyncio.create_task(self._relay(up_reader, writer, answers=True)),
        ]
        self.tasks.update(relays)
        await asyncio.wait(relays, return_when=asyncio.FIRST_COMPLETED)
        for relay in relays:
            relay.cancel()
        for stream in (writer, up_writer):
            stream.close()
        self.tasks.difference_update(relays)

    async def _relay(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        answers: bool,
    ) -> None:
        while data := await reader.read(65536):
            if answers and self.armed and self.COMMITTED in data:
                self.armed = False
                self.dropped += 1
                return
            writer.write(data)
            await writer.drain()


@pytest.fixture
async def lossy(
    admin: psycopg.AsyncConnection[Any],
) -> AsyncIterator[tuple[PostgresLedger, Proxy]]:
    """A ledger reached through a :class:`Proxy`."""
    info = psycopg.conninfo.conninfo_to_dict(postgres_dsn())
    port = int(str(info.get("port") or 5432))
    proxy = Proxy(str(info.get("host") or "127.0.0.1"), port)
    dsn = psycopg.conninfo.make_conninfo(
        postgres_dsn(), host="127.0.0.1", port=await proxy.start()
    )
    name = unique("vexora_pg_")
    pool = await open_pool(name, dsn=dsn)
    made = PostgresLedger(pool, table=name)
    await made.create_table()
    yield made, proxy
    await pool.close()
    await proxy.close()
    await admin.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(name)))


async def test_writes_whose_commit_answer_was_lost(
    lossy: tuple[PostgresLedger, Proxy],
) -> None:
    """Each write commits, its answer is lost, it is tried again: no false answer.

    A claim is granted (not refused as in flight by its own committed
    claim), with the entry it took over; a settle and a release report
    done, not fenced off.
    """
    ledger, proxy = lossy
    first, second, third = new_token(), new_token(), new_token()

    proxy.armed = True
    fresh = await ledger.claim("k", "f", lease=LEASE, token=first)
    assert (fresh.granted, fresh.prior, fresh.token) == (True, None, first)
    proxy.armed = True
    assert await ledger.settle("k", unknown(), token=first)
    proxy.armed = True
    taken = await ledger.claim("k", "f", lease=LEASE, token=second)
    assert (taken.granted, taken.token) == (True, second)
    assert taken.prior is not None
    assert taken.prior.state is EntryState.UNKNOWN
    proxy.armed = True
    assert await ledger.release("k", token=second)
    entry = await ledger.get("k")
    assert entry is not None
    assert entry.state is EntryState.UNKNOWN  # the earlier attempt is not forgotten
    proxy.armed = True
    assert (await ledger.claim("new", "f", lease=LEASE, token=third)).granted
    proxy.armed = True
    assert await ledger.release("new", token=third)
    assert await ledger.get("new") is None

    assert proxy.dropped == 6


async def test_a_failover_campaign_leaves_nothing_in_flight(
    admin: psycopg.AsyncConnection[Any], ledger: PostgresLedger
) -> None:
    """200 payouts claimed and settled while the pool's backends keep dying.

    Every 30 ms every connection of the pool is terminated. Each payout
    is claimed, then settled accepted, within a 10 s deadline. Every
    claim is granted, every settle lands: 0 left in flight. Before, 6 of
    200 accepted payouts stayed in flight for the lease.
    """
    name = application(ledger)
    stop = asyncio.Event()
    kills = 0

    async def killer() -> None:
        nonlocal kills
        while not stop.is_set():
            kills += await terminate(admin, name)
            await asyncio.sleep(0.1)

    async def pay(i: int, gate: asyncio.Semaphore) -> tuple[bool, bool]:
        async with gate:
            token = new_token()
            claim = await asyncio.wait_for(
                ledger.claim(f"p{i}", "f", lease=LEASE, token=token), 10
            )
            settled = await asyncio.wait_for(
                ledger.settle(f"p{i}", accepted(), token=token), 10
            )
            return claim.granted, settled

    gate = asyncio.Semaphore(8)
    killing = asyncio.create_task(killer())
    results: list[tuple[bool, bool]] = []
    try:
        # Rounds of 200 until the backends died often enough: on a quick
        # machine one round can finish between two kills.
        for start in range(0, 2000, 200):
            results += await asyncio.gather(
                *(pay(i, gate) for i in range(start, start + 200))
            )
            if kills > 10:
                break
    finally:
        stop.set()
        await killing

    assert kills > 10
    assert results == [(True, True)] * len(results)
    assert await in_flight(admin, ledger.table) == 0


# Item 4: the table locked (a migration, VACUUM FULL) past the deadline.


@pytest.mark.slow
async def test_a_deadline_cancels_an_operation_on_a_locked_table(
    admin: psycopg.AsyncConnection[Any], ledger: PostgresLedger
) -> None:
    """Each operation returns at its 1 s deadline; the pool stays whole.

    The query is cancelled on the server (no backend of ours still waits
    on the lock), and the connection goes back to the pool idle, not
    mid-transaction: once the lock is gone, every connection serves.
    """
    name = application(ledger)
    token = new_token()
    assert (await ledger.claim("held", "f", lease=LEASE, token=token)).granted
    operations: dict[str, Callable[[], Awaitable[Any]]] = {
        "claim": lambda: ledger.claim("k", "f", lease=LEASE, token=new_token()),
        "settle": lambda: ledger.settle("held", accepted(), token=token),
        "release": lambda: ledger.release("held", token=token),
        "get": lambda: ledger.get("held"),
        "prune": lambda: ledger.prune(dt.timedelta(0)),
    }
    async with admin.transaction():
        await admin.execute(
            sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(
                sql.Identifier(ledger.table)
            )
        )
        for label, operation in operations.items():
            started = time.monotonic()
            # asyncio.TimeoutError: wait_for's on 3.10 too (an alias from 3.11).
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(operation(), 1)
            assert time.monotonic() - started < 1.5, label
            cursor = await admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s "
                "AND state <> 'idle'",
                (name,),
            )
            assert await cursor.fetchone() == (0,), label

    stats = ledger.pool.get_stats()
    assert stats.get("returns_bad", 0) == 0
    assert stats.get("connections_lost", 0) == 0
    results = await asyncio.gather(
        *(
            ledger.claim(f"after{i}", "f", lease=LEASE, token=new_token())
            for i in range(3)
        )
    )
    assert all(claim.granted for claim in results)
    assert await ledger.settle("held", accepted(), token=token)
