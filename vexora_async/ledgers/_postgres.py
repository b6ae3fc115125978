"""A ledger in PostgreSQL, shared by workers on many machines.

Its reason to exist: your payouts live in PostgreSQL already, and you can
claim a payout's tradeNo in the same transaction that stores (or locks)
the payout row (:meth:`PostgresLedger.claim_payout`). Leases are judged by
the server's clock (``now()``). Uses psycopg 3 and its pool (the
``postgres`` extra).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from psycopg import sql

from vexora_async._idempotency import fingerprint
from vexora_async._middleware import Call
from vexora_async._operations import Operation

from ._protocol import (
    Claim,
    EntryState,
    LedgerEntry,
    check_lease,
    check_settled,
    may_take_over,
    new_token,
)


if TYPE_CHECKING:
    import datetime as dt

    import psycopg
    import psycopg_pool

    from vexora_async._client import VexoraClient
    from vexora_async._models import PayoutRequest

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
    msg         text
);
CREATE INDEX IF NOT EXISTS {index} ON {table} (updated_at)
    WHERE state IN ('accepted', 'rejected');
"""

_COLUMNS = "state, fingerprint, extract(epoch FROM updated_at), data, code, msg"


def _entry(row: tuple[Any, ...]) -> LedgerEntry:
    state, fingerprint_, updated_at, data, code, msg = row[:6]
    return LedgerEntry(
        state=EntryState(state),
        fingerprint=fingerprint_,
        updated_at=float(updated_at),
        data=None if data is None else json.loads(data, parse_float=Decimal),
        code=code,
        msg=msg,
    )


def _identifier(name: str) -> sql.Identifier:
    return sql.Identifier(*name.split("."))


class PostgresLedger:
    """A :class:`~vexora_async.Ledger` in PostgreSQL (the ``postgres`` extra).

    *pool* is a ``psycopg_pool.AsyncConnectionPool`` you own (open it
    before use, close it after). *table* (optionally schema-qualified) is
    created by :meth:`create_table`; :meth:`prune` removes old settled
    entries. Each operation is one short transaction of its own, except
    :meth:`claim_payout`, which runs in yours.
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
            "SELECT " + _COLUMNS + ", extract(epoch FROM now()) "  # noqa: S608 - constant columns
            "FROM {} WHERE key = %s FOR UPDATE"
        ).format(name)
        self._take = sql.SQL(
            "UPDATE {} SET state = 'in_flight', token = %s, updated_at = now(), "
            "data = NULL, code = NULL, msg = NULL WHERE key = %s"
        ).format(name)
        self._handover = sql.SQL(
            "UPDATE {} SET updated_at = now() WHERE key = %s AND state = "
            "'in_flight' AND token = %s AND fingerprint = %s RETURNING key"
        ).format(name)
        self._settle = sql.SQL(
            "UPDATE {} SET state = %s, fingerprint = %s, token = NULL, "
            "updated_at = now(), data = %s, code = %s, msg = %s "
            "WHERE key = %s AND state = 'in_flight' AND token = %s"
        ).format(name)
        self._release = sql.SQL(
            "DELETE FROM {} WHERE key = %s AND state = 'in_flight' AND token = %s"
        ).format(name)
        self._get = sql.SQL(
            "SELECT " + _COLUMNS + " FROM {} WHERE key = %s"  # noqa: S608 - constant columns
        ).format(name)
        self._prune = sql.SQL(
            "DELETE FROM {} WHERE state IN ('accepted', 'rejected') "
            "AND updated_at < now() - make_interval(secs => %s)"
        ).format(name)
        # Claims made by claim_payout in a caller's transaction, handed to
        # this process's next claim of the same key: key -> (token, prior).
        self._handed: dict[str, tuple[str, LedgerEntry | None]] = {}

    def __repr__(self) -> str:
        return f"PostgresLedger(table={self.table!r})"

    def schema(self) -> str:
        """Return the SQL that :meth:`create_table` runs, for your migrations."""
        return self._schema.as_string(None)

    async def create_table(self) -> None:
        """Create the table and its index if they do not exist."""
        async with self.pool.connection() as conn:
            await conn.execute(self._schema)

    async def claim(self, key: str, fingerprint: str, *, lease: float) -> Claim:
        """See :meth:`~vexora_async.Ledger.claim`; judged by the server's clock."""
        check_lease(lease)
        async with self.pool.connection() as conn:
            handed = self._handed.pop(key, None)
            if handed is not None:
                token, prior = handed
                cursor = await conn.execute(self._handover, (key, token, fingerprint))
                if await cursor.fetchone() is not None:
                    return Claim(granted=True, prior=prior, token=token)
            return await self.claim_in(conn, key, fingerprint, lease=lease)

    async def claim_in(
        self,
        connection: psycopg.AsyncConnection[Any],
        key: str,
        fingerprint: str,
        *,
        lease: float,
    ) -> Claim:
        """Claim *key* on *connection*, inside its transaction if one is open.

        Nothing is committed here: the claim stands once your transaction
        commits, and vanishes if it rolls back. Most code wants
        :meth:`claim_payout`, which works out the key and fingerprint.
        """
        check_lease(lease)
        token = new_token()
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
                prior = _entry(row)
                if not may_take_over(prior, fingerprint, float(row[6]), lease):
                    return Claim(granted=False, prior=prior)
                await connection.execute(self._take, (token, key))
                return Claim(granted=True, prior=prior, token=token)

    async def claim_payout(
        self,
        connection: psycopg.AsyncConnection[Any],
        client: VexoraClient,
        request: PayoutRequest,
    ) -> Claim:
        """Claim *request*'s tradeNo for *client* in your transaction.

        Store the payout row and claim its tradeNo atomically; after your
        commit, ``client.create_payout(request)`` in this process takes
        the claim over instead of claiming anew. Not granted: *prior* says
        why (already settled, or in flight elsewhere). *client* must use
        this ledger.
        """
        if client.ledger is not self:
            msg = "the client does not use this ledger"
            raise ValueError(msg)
        idempotency = client._idempotency  # noqa: SLF001 - one package
        call = Call(Operation.CREATE_PAYOUT, {}, request.trade_no)
        key = idempotency.key(call)
        print_ = fingerprint(client._codec.encode(request))  # noqa: SLF001
        claim = await self.claim_in(connection, key, print_, lease=client.claim_lease)
        if claim.granted and claim.token is not None:
            self._handed[key] = (claim.token, claim.prior)
        return claim

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
        async with self.pool.connection() as conn:
            cursor = await conn.execute(self._settle, params)
            return bool(cursor.rowcount == 1)

    async def release(self, key: str, *, token: str) -> bool:
        """See :meth:`~vexora_async.Ledger.release`; fenced by *token*."""
        async with self.pool.connection() as conn:
            cursor = await conn.execute(self._release, (key, token))
            return bool(cursor.rowcount == 1)

    async def get(self, key: str) -> LedgerEntry | None:
        """See :meth:`~vexora_async.Ledger.get`."""
        async with self.pool.connection() as conn:
            cursor = await conn.execute(self._get, (key,))
            row = await cursor.fetchone()
        return None if row is None else _entry(row)

    async def prune(self, older_than: dt.timedelta) -> int:
        """Delete accepted and rejected entries older than *older_than*.

        ``UNKNOWN`` and ``IN_FLIGHT`` entries are kept: they still need
        reconciling. Returns how many entries were deleted.
        """
        async with self.pool.connection() as conn:
            cursor = await conn.execute(self._prune, (older_than.total_seconds(),))
            return int(cursor.rowcount)
