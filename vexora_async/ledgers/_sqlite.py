"""A durable ledger in SQLite, shared by the workers of one machine.

With it, "one payout, one tradeNo" survives a restart: a worker that
crashed mid-payout leaves the tradeNo ``IN_FLIGHT``; once its lease runs
out, the next call with that tradeNo reconciles it instead of paying again.
Every worker process on the machine may open the same file: a claim is one
``BEGIN IMMEDIATE`` transaction, which SQLite serialises across processes.

It uses only the standard library; each operation runs in a worker thread
so the event loop never blocks on the disk.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from vexora_async._validation import check_callable, check_delay, check_path
from vexora_async.exceptions import LedgerError

from ._protocol import (
    Claim,
    EntryState,
    LedgerEntry,
    check_lease,
    check_settled,
    check_token,
    may_take_over,
)


if TYPE_CHECKING:
    import os
    from collections.abc import Callable

_SCHEMA = """
CREATE TABLE IF NOT EXISTS vexora_ledger (
    key TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    updated_at REAL NOT NULL,
    data TEXT,
    code TEXT,
    msg TEXT,
    token TEXT,
    took_over INTEGER
)
"""


def _dump(data: object) -> str | None:
    # Amounts are Decimals; keep their exact text.
    return None if data is None else json.dumps(data, default=str)


def _row_to_entry(row: tuple[Any, ...]) -> LedgerEntry:
    state, fingerprint, updated_at, data, code, msg = row
    return LedgerEntry(
        state=EntryState(state),
        fingerprint=fingerprint,
        updated_at=updated_at,
        data=None if data is None else json.loads(data, parse_float=Decimal),
        code=code,
        msg=msg,
    )


class SQLiteLedger:
    """A :class:`~vexora_async.Ledger` kept in an SQLite file.

    For the processes of one machine. Close it with :meth:`aclose` (or
    ``async with``). Entries are kept for good, across restarts, until
    :meth:`prune` removes accepted and rejected ones older than a cut-off
    you choose (keep them longer than any retry of yours may come: 90
    days, say); ``UNKNOWN`` and ``IN_FLIGHT`` ones are never pruned. Each
    operation runs in a worker thread, one at a time per ledger.

    :param path: The database file, created if missing (in WAL mode).
        Required. Valid: a non-empty ``str`` or ``os.PathLike`` without
        NUL, else :class:`~vexora_async.InvalidRequestError`; a file SQLite
        cannot open is a :class:`~vexora_async.LedgerError`.
    :param clock: Returns epoch seconds; judges claim leases and
        :meth:`prune`'s cut-off. Default ``time.time``. Valid: a callable.
        Every process sharing the file must keep the same time.
    :param busy_timeout: Seconds an operation waits for another process's
        write lock before it fails (in a client's call: a
        :class:`~vexora_async.LedgerError`, nothing sent). Default
        ``30.0``. Valid: 0 to 86,400. Cost: a call may wait that long for
        the file, within its own deadline.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        clock: Callable[[], float] = time.time,
        busy_timeout: float = 30.0,
    ) -> None:
        check_path("path", path)
        check_callable("clock", clock)
        check_delay("busy_timeout", busy_timeout)
        self._clock = clock
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(
                path,
                timeout=busy_timeout,
                isolation_level=None,  # we issue BEGIN ourselves
                check_same_thread=False,
            )
        except sqlite3.Error as exc:
            msg = f"cannot open the SQLite ledger ({exc})"
            raise LedgerError(msg) from exc
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(_SCHEMA)
            columns = {
                row[1] for row in self._db.execute("PRAGMA table_info(vexora_ledger)")
            }
            if "token" not in columns:  # a file from before fencing tokens
                self._db.execute("ALTER TABLE vexora_ledger ADD COLUMN token TEXT")
            if "took_over" not in columns:  # before release could restore
                self._db.execute(
                    "ALTER TABLE vexora_ledger ADD COLUMN took_over INTEGER"
                )

    async def __aenter__(self) -> SQLiteLedger:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the database connection."""
        await asyncio.to_thread(self._close)

    def _close(self) -> None:
        with self._lock:
            self._db.close()

    async def claim(
        self, key: str, fingerprint: str, *, lease: float, token: str
    ) -> Claim:
        """See :meth:`vexora_async.Ledger.claim`; atomic across processes."""
        check_lease(lease)
        check_token(token)
        return await asyncio.to_thread(self._claim, key, fingerprint, lease, token)

    def _claim(self, key: str, fingerprint: str, lease: float, token: str) -> Claim:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute(
                    "SELECT state, fingerprint, updated_at, data, code, msg "
                    "FROM vexora_ledger WHERE key = ?",
                    (key,),
                ).fetchone()
                prior = None if row is None else _row_to_entry(row)
                # Read under the write lock: every process judges the lease
                # by the time its claim is serialised at.
                now = self._clock()
                if prior is not None and not may_take_over(
                    prior, fingerprint, now, lease
                ):
                    self._db.execute("ROLLBACK")
                    return Claim(granted=False, prior=prior)
                self._db.execute(
                    "INSERT OR REPLACE INTO vexora_ledger "
                    "(key, state, fingerprint, updated_at, token, took_over) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        key,
                        EntryState.IN_FLIGHT.value,
                        fingerprint,
                        now,
                        token,
                        int(prior is not None),
                    ),
                )
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        return Claim(granted=True, prior=prior, token=token)

    async def settle(self, key: str, entry: LedgerEntry, *, token: str) -> bool:
        """See :meth:`vexora_async.Ledger.settle`; fenced by *token*."""
        check_settled(entry)
        return await asyncio.to_thread(self._settle, key, entry, token)

    def _settle(self, key: str, entry: LedgerEntry, token: str) -> bool:
        with self._lock:
            cursor = self._db.execute(
                "UPDATE vexora_ledger SET state = ?, fingerprint = ?, "
                "updated_at = ?, data = ?, code = ?, msg = ? "
                "WHERE key = ? AND state = ? AND token = ?",
                (
                    entry.state.value,
                    entry.fingerprint,
                    self._clock(),
                    _dump(entry.data),
                    entry.code,
                    entry.msg,
                    key,
                    EntryState.IN_FLIGHT.value,
                    token,
                ),
            )
            return cursor.rowcount == 1

    async def release(self, key: str, *, token: str) -> bool:
        """See :meth:`vexora_async.Ledger.release`; fenced by *token*."""
        return await asyncio.to_thread(self._release, key, token)

    def _release(self, key: str, token: str) -> bool:
        # Each statement is fenced by the token: only this claim's owner
        # matches either, so no other process can slip in between them.
        with self._lock:
            cursor = self._db.execute(
                "UPDATE vexora_ledger SET state = ?, token = NULL, "
                "took_over = NULL, updated_at = ? "
                "WHERE key = ? AND state = ? AND token = ? AND took_over = 1",
                (
                    EntryState.UNKNOWN.value,
                    self._clock(),
                    key,
                    EntryState.IN_FLIGHT.value,
                    token,
                ),
            )
            if cursor.rowcount == 1:  # an earlier attempt may have been sent
                return True
            cursor = self._db.execute(
                "DELETE FROM vexora_ledger WHERE key = ? AND state = ? AND token = ?",
                (key, EntryState.IN_FLIGHT.value, token),
            )
            return cursor.rowcount == 1

    async def get(self, key: str) -> LedgerEntry | None:
        """See :meth:`vexora_async.Ledger.get`."""
        return await asyncio.to_thread(self._get, key)

    def _get(self, key: str) -> LedgerEntry | None:
        with self._lock:
            row = self._db.execute(
                "SELECT state, fingerprint, updated_at, data, code, msg "
                "FROM vexora_ledger WHERE key = ?",
                (key,),
            ).fetchone()
        return None if row is None else _row_to_entry(row)

    async def prune(self, older_than: float) -> int:
        """Delete settled entries last touched more than *older_than* s ago.

        ``UNKNOWN`` and ``IN_FLIGHT`` entries are kept: they still need
        reconciling.

        :param older_than: Seconds, by this ledger's clock: keep entries
            longer than any retry of yours may come (90 days is
            ``90 * 86400``). Not checked: 0 or less deletes every settled
            entry, and a repeated tradeNo is then sent again (a gateway
            that refuses duplicates refuses it, and a status query finds
            the original).
        :returns: How many entries were deleted.
        """
        cutoff = self._clock() - older_than
        return await asyncio.to_thread(self._prune, cutoff)

    def _prune(self, cutoff: float) -> int:
        with self._lock:
            cursor = self._db.execute(
                "DELETE FROM vexora_ledger WHERE updated_at < ? AND state IN (?, ?)",
                (cutoff, EntryState.ACCEPTED.value, EntryState.REJECTED.value),
            )
            return cursor.rowcount
