"""A ledger in PostgreSQL, shared by workers on many machines.

Its reason to exist: your payouts live in PostgreSQL already, and you can
claim a payout's tradeNo in the same transaction that stores (or locks)
the payout row (:meth:`PostgresLedger.claim_payout`). Leases are judged by
the server's clock (``now()``). Uses psycopg 3 and its pool (the
``postgres`` extra).

A row keeps the token of its last writer, and an ``IN_FLIGHT`` row keeps
the entry its claim took over (``prior``, a JSON array; ``NULL`` for a
claim on no entry). So a write whose connection died before its answer,
committed or not, can be sent again and recognise its own work, and a
released takeover becomes ``UNKNOWN`` again rather than forgotten.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import psycopg
from psycopg import sql

from ._protocol import (
    Claim,
    EntryState,
    LedgerEntry,
    check_lease,
    check_settled,
    check_token,
    may_take_over,
    new_token,
)


if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Awaitable, Callable, Sequence

    import psycopg_pool

    from vexora_async._models import PayoutRequest

_T = TypeVar("_T")

logger = logging.getLogger("vexora_async")

#: The table (``{table}`` is its name); :meth:`PostgresLedger.create_table`
#: runs it, or apply ``postgres_ledger.sql`` beside this module yourself.
SCHEMA = """\
CREATE TABLE IF NOT EXISTS {table} (
    key         text PRIMARY KEY,
    state       text NOT NULL
                CHECK (state IN ('in_flight', 'unknown', 'accepted', 'rejected')),
    fingerprint text NOT NULL,
    token       text,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    data        text,
    code        text,
    msg         text,
    prior       text
);
CREATE INDEX IF NOT EXISTS {index} ON {table} (updated_at)
    WHERE state IN ('accepted', 'rejected');
"""

_COLUMNS = "state, fingerprint, extract(epoch FROM updated_at), data, code, msg"


def _entry(row: Sequence[Any]) -> LedgerEntry:
    state, fingerprint_, updated_at, data, code, msg = row[:6]
    return LedgerEntry(
        state=EntryState(state),
        fingerprint=fingerprint_,
        updated_at=float(updated_at),
        data=None if data is None else json.loads(data, parse_float=Decimal),
        code=code,
        msg=msg,
    )


def _prior(stored: str | None) -> LedgerEntry | None:
    """Return the entry that an ``IN_FLIGHT`` row's claim took over, if any."""
    return None if stored is None else _entry(json.loads(stored))


def _identifier(name: str) -> sql.Identifier:
    return sql.Identifier(*name.split("."))


def _lock_id(table: str) -> int:
    """Return the advisory lock key that serialises creating *table*."""
    digest = hashlib.sha256(f"vexora-async ledger {table}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class PayoutClaimer(Protocol):
    """What :meth:`PostgresLedger.claim_payout` needs of a client.

    :class:`~vexora_async.VexoraClient` is one; this ledger names no more of
    it, so the client's module and this one do not import each other.
    """

    @property
    def ledger(self) -> object:
        """The ledger the client records its calls in."""

    @property
    def claim_lease(self) -> float:
        """Seconds a claim is respected by other workers."""

    def ledger_key(self, request: PayoutRequest) -> str:
        """Return the ledger key of *request*."""

    def ledger_fingerprint(self, request: PayoutRequest) -> str:
        """Return the fingerprint recorded with *request*'s key."""


class PostgresLedger:
    """A :class:`~vexora_async.Ledger` in PostgreSQL (the ``postgres`` extra).

    For workers on many machines, and claims inside your own transaction.
    Connections die under the pool (a failover, a restart,
    ``pg_terminate_backend``): a claim, settle or release whose
    connection turns out broken is sent again at once on another, up to
    the pool's ``max_size`` plus two times (a failover breaks every idle
    connection at once). A write that committed before its connection
    died is recognised by its token: a retried claim is granted, not
    refused as "in flight" by itself, and a retried settle or release
    reports done. The caller's deadline bounds it all; a cancelled
    operation's query is cancelled on the server.

    So the ledger needs no ``check=AsyncConnectionPool.check_connection``
    to survive dead idle connections. Pass it for your own queries if you
    like, knowing its cost: a round trip per checkout, and, after a
    failover, psycopg_pool waits 1 s, 2 s, 4 s... between failed checks
    (a pool of five dead connections: 15 s before the first checkout),
    which a short deadline does not survive.

    Each operation is one short transaction of its own, except
    :meth:`claim_in` and :meth:`claim_payout`, which run in yours.
    :meth:`prune` removes old settled entries.

    :param pool: A ``psycopg_pool.AsyncConnectionPool`` you own: open it
        before use, close it after. Required. Cost: each operation holds
        one of its connections for one short transaction; its ``max_size``
        bounds the ledger writes running at once.
    :param table: The table's name, optionally schema-qualified
        (``"payments.vexora_ledger"``), quoted as an identifier. Default
        ``"vexora_ledger"``. Create it with :meth:`schema` in a migration,
        or :meth:`create_table`.
    """

    def __init__(
        self,
        pool: psycopg_pool.AsyncConnectionPool[Any],
        *,
        table: str = "vexora_ledger",
    ) -> None:
        self.pool = pool
        self.table = table
        name = _identifier(table)
        self._lock_id = _lock_id(table)
        # Claims by claim_payout carry this prefix: this ledger's next
        # claim() of the key takes them over, and no other ledger does.
        # Kept in the row, so nothing is remembered here per claim.
        self._handed = f"handed-{secrets.token_hex(8)}-"
        self._schema = sql.SQL(SCHEMA).format(
            table=name,
            index=sql.Identifier(table.rsplit(".", 1)[-1] + "_settled_idx"),
        )
        self._insert = sql.SQL(
            "INSERT INTO {} (key, state, fingerprint, token, updated_at) "
            "VALUES (%s, 'in_flight', %s, %s, now()) "
            "ON CONFLICT (key) DO NOTHING RETURNING key"
        ).format(name)
        self._lock = sql.SQL(
            "SELECT " + _COLUMNS + ", token, prior, extract(epoch FROM now()) "  # noqa: S608 - constant columns
            "FROM {} WHERE key = %s FOR UPDATE"
        ).format(name)
        # The right-hand sides read the row as it was: the entry taken over.
        self._take = sql.SQL(
            "UPDATE {} SET state = 'in_flight', token = %s, updated_at = now(), "  # noqa: S608 - constant columns
            "prior = json_build_array(" + _COLUMNS + ")::text, "
            "data = NULL, code = NULL, msg = NULL WHERE key = %s"
        ).format(name)
        self._handover = sql.SQL(
            "UPDATE {} SET token = %s, updated_at = now() WHERE key = %s"
        ).format(name)
        # The token stays on a settled row: it names the write a retried
        # settle looks for.
        settle = (
            "UPDATE {} SET state = %s, fingerprint = %s, updated_at = now(), "
            "data = %s, code = %s, msg = %s, prior = NULL WHERE key = %s AND "
            "token = %s AND "
        )
        self._settle = sql.SQL(settle + "state = 'in_flight'").format(name)
        self._settle_again = sql.SQL(settle + "state IN ('in_flight', %s)").format(name)
        # A claim on no entry is forgotten; a takeover becomes unknown again
        # (the attempt it took over may have been sent), keeping the token.
        self._release = sql.SQL(
            "WITH forgotten AS ("
            "DELETE FROM {table} WHERE key = %(key)s AND state = 'in_flight' "
            "AND token = %(token)s AND prior IS NULL RETURNING key), "
            "unknown AS ("
            "UPDATE {table} SET state = 'unknown', updated_at = now(), "
            "prior = NULL WHERE key = %(key)s AND state = 'in_flight' "
            "AND token = %(token)s AND prior IS NOT NULL RETURNING key) "
            "SELECT count(*) FROM (SELECT key FROM forgotten "
            "UNION ALL SELECT key FROM unknown) AS released"
        ).format(table=name)
        self._released = sql.SQL(
            "SELECT count(*) FROM {} WHERE key = %s AND NOT "
            "(state = 'unknown' AND token = %s)"
        ).format(name)
        self._get = sql.SQL(
            "SELECT " + _COLUMNS + " FROM {} WHERE key = %s"  # noqa: S608 - constant columns
        ).format(name)
        self._prune = sql.SQL(
            "DELETE FROM {} WHERE state IN ('accepted', 'rejected') "
            "AND updated_at < now() - make_interval(secs => %s)"
        ).format(name)

    def __repr__(self) -> str:
        return f"PostgresLedger(table={self.table!r})"

    def schema(self) -> str:
        """Return the SQL that :meth:`create_table` runs, for your migrations."""
        return self._schema.as_string(None)

    async def create_table(self) -> None:
        """Create the table and its index if they do not exist.

        Safe when many workers start at once: they take turns (a
        transaction-scoped advisory lock), as ``CREATE TABLE IF NOT
        EXISTS`` alone is not. Better still, apply :meth:`schema` in a
        migration, before any worker starts: the workers then need no
        right to create tables.
        """

        async def create(conn: psycopg.AsyncConnection[Any], _: int) -> None:
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock_id,))
                await conn.execute(self._schema)

        await self._run(create)

    async def claim(
        self, key: str, fingerprint: str, *, lease: float, token: str
    ) -> Claim:
        """See :meth:`~vexora_async.Ledger.claim`; judged by the server's clock.

        A claim that :meth:`claim_payout` made through this ledger is
        taken over (same fingerprint), whatever its age.
        """
        check_lease(lease)
        check_token(token)

        async def claim(conn: psycopg.AsyncConnection[Any], _: int) -> Claim:
            return await self._claim(
                conn, key, fingerprint, lease=lease, token=token, handed=True
            )

        return await self._run(claim)

    async def claim_in(
        self,
        connection: psycopg.AsyncConnection[Any],
        key: str,
        fingerprint: str,
        *,
        lease: float,
        token: str,
    ) -> Claim:
        """Claim *key* under *token* on *connection*, in its open transaction.

        Nothing is committed here: the claim stands once your transaction
        commits, and vanishes if it rolls back. Most code wants
        :meth:`claim_payout`, which works out the key and fingerprint.
        """
        check_lease(lease)
        check_token(token)
        return await self._claim(
            connection, key, fingerprint, lease=lease, token=token, handed=False
        )

    async def _claim(
        self,
        connection: psycopg.AsyncConnection[Any],
        key: str,
        fingerprint: str,
        *,
        lease: float,
        token: str,
        handed: bool,
    ) -> Claim:
        async with connection.transaction():
            while True:
                cursor = await connection.execute(
                    self._insert, (key, fingerprint, token)
                )
                if await cursor.fetchone() is not None:
                    return Claim(granted=True, token=token)
                cursor = await connection.execute(self._lock, (key,))
                row = await cursor.fetchone()
                if row is None:  # released since the insert: try again
                    continue
                entry = _entry(row)
                held_by, prior, now = row[6], row[7], float(row[8])
                if (
                    entry.state is EntryState.IN_FLIGHT
                    and entry.fingerprint == fingerprint
                ):
                    if held_by == token:
                        # Our own claim, sent before and committed, its
                        # answer lost with its connection.
                        return Claim(granted=True, prior=_prior(prior), token=token)
                    if handed and held_by and held_by.startswith(self._handed):
                        await connection.execute(self._handover, (token, key))
                        return Claim(granted=True, prior=_prior(prior), token=token)
                if not may_take_over(entry, fingerprint, now, lease):
                    return Claim(granted=False, prior=entry)
                await connection.execute(self._take, (token, key))
                return Claim(granted=True, prior=entry, token=token)

    async def claim_payout(
        self,
        connection: psycopg.AsyncConnection[Any],
        client: PayoutClaimer,
        request: PayoutRequest,
    ) -> Claim:
        """Claim *request*'s tradeNo for *client* in your transaction.

        Store the payout row and claim its tradeNo atomically; after your
        commit, ``client.create_payout(request)`` in this process takes
        the claim over instead of claiming anew. Not granted: *prior* says
        why (already settled, or in flight elsewhere). Granted: *token*
        releases the claim if you do not send after all. *client*, a
        :class:`~vexora_async.VexoraClient`, must use this ledger; the
        claim is made under its
        :meth:`~vexora_async.VexoraClient.ledger_key` and
        :meth:`~vexora_async.VexoraClient.ledger_fingerprint`, for its
        ``claim_lease``. Nothing is kept in memory for the claim, whether
        your transaction commits or rolls back.

        :param connection: Your ``psycopg.AsyncConnection``, inside the
            transaction that stores (or locks) the payout row; the claim
            stands once it commits.
        :param client: The :class:`~vexora_async.VexoraClient` that will
            send the payout. Valid: one whose ``ledger`` is this ledger,
            else ``ValueError``.
        :param request: The payout to claim.
        :returns: The claim: granted with its token, or not, with the
            entry that stood in the way as *prior*.
        """
        if client.ledger is not self:
            msg = "the client does not use this ledger"
            raise ValueError(msg)
        return await self._claim(
            connection,
            client.ledger_key(request),
            client.ledger_fingerprint(request),
            lease=client.claim_lease,
            token=self._handed + new_token(),
            handed=False,
        )

    async def settle(self, key: str, entry: LedgerEntry, *, token: str) -> bool:
        """See :meth:`~vexora_async.Ledger.settle`; fenced by *token*."""
        check_settled(entry)
        data = None if entry.data is None else json.dumps(entry.data, default=str)
        params = (
            entry.state.value,
            entry.fingerprint,
            data,
            entry.code,
            entry.msg,
            key,
            token,
        )

        async def settle(conn: psycopg.AsyncConnection[Any], attempt: int) -> bool:
            if attempt:
                # The first try may have committed: its row, settled under
                # our token, is ours to write again.
                cursor = await conn.execute(
                    self._settle_again, (*params, entry.state.value)
                )
            else:
                cursor = await conn.execute(self._settle, params)
            return bool(cursor.rowcount == 1)

        return await self._run(settle)

    async def release(self, key: str, *, token: str) -> bool:
        """See :meth:`~vexora_async.Ledger.release`; fenced by *token*.

        A claim on no entry is deleted; one that took an entry over is
        ``UNKNOWN`` again.
        """

        async def release(conn: psycopg.AsyncConnection[Any], attempt: int) -> bool:
            cursor = await conn.execute(self._release, {"key": key, "token": token})
            row = await cursor.fetchone()
            if row is not None and row[0] == 1:
                return True
            if not attempt:
                return False
            # The first try may have committed: then nothing of ours is
            # left in flight, and no other claim stands in its place.
            cursor = await conn.execute(self._released, (key, token))
            row = await cursor.fetchone()
            return row is not None and row[0] == 0

        return await self._run(release)

    async def get(self, key: str) -> LedgerEntry | None:
        """See :meth:`~vexora_async.Ledger.get`."""

        async def get(conn: psycopg.AsyncConnection[Any], _: int) -> Any:
            cursor = await conn.execute(self._get, (key,))
            return await cursor.fetchone()

        row = await self._run(get)
        return None if row is None else _entry(row)

    async def prune(self, older_than: dt.timedelta) -> int:
        """Delete accepted and rejected entries older than *older_than*.

        ``UNKNOWN`` and ``IN_FLIGHT`` entries are kept: they still need
        reconciling.

        :param older_than: The age, by the server's clock, past which
            settled entries go: longer than any retry of yours may come
            (``timedelta(days=90)``, say). Not checked: zero or less
            deletes every settled entry.
        :returns: How many entries were deleted.
        """

        async def prune(conn: psycopg.AsyncConnection[Any], _: int) -> int:
            cursor = await conn.execute(self._prune, (older_than.total_seconds(),))
            return int(cursor.rowcount)

        return await self._run(prune)

    async def _run(
        self, work: Callable[[psycopg.AsyncConnection[Any], int], Awaitable[_T]]
    ) -> _T:
        """Run *work* on a pooled connection; again on another if it broke.

        *work* learns which try it is (0 the first): a try after the first
        must allow that an earlier one committed before its connection
        died.
        """
        # A failover breaks every idle connection at once: the pool hands
        # each out once more before making new ones.
        retries = self.pool.max_size + 2
        attempt = 0
        while True:
            conn: psycopg.AsyncConnection[Any] | None = None
            try:
                async with self.pool.connection() as conn:
                    return await work(conn, attempt)
            except psycopg.OperationalError as exc:
                if conn is None or not conn.broken or retries == 0:
                    raise
                logger.warning(
                    "the PostgreSQL ledger lost its connection (%s); "
                    "trying again on another",
                    type(exc).__name__,
                )
            retries -= 1
            attempt += 1
