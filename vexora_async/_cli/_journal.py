"""The journal of one spreadsheet: what each of its rows became, run after run.

It lives beside the file, ``FILE.csv.vexora.db`` (SQLite, readable by its
owner only). Two parts share it:

- the SDK's ledger (:class:`~vexora_async.SQLiteLedger`, table
  ``vexora_ledger``), the authority on each tradeNo: claimed, accepted,
  rejected or unknown. With ``--ledger URL`` that part lives in Redis or
  PostgreSQL instead;
- this module's table ``cli_rows``: each row's request as it was first sent
  (so ``resolve`` needs no spreadsheet), and what the report says of it.

A run owns the journal while it holds ``FILE.csv.vexora.lock`` (an
advisory ``flock``; the kernel drops it when the process dies, even by
SIGKILL). So whatever a new run finds in flight was left by a dead run:
:func:`take_over` turns each such claim into an unknown outcome at once,
instead of waiting out its claim lease, and the client then asks the
gateway (a status query under the same tradeNo) before any resend.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import sqlite3
import time
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import attrs

from vexora_async import PayoutRequest
from vexora_async.ledgers import EntryState, LedgerEntry, SQLiteLedger, new_token


if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator
    from pathlib import Path

    from vexora_async.ledgers import Ledger


try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

#: Whether a run holds its journal alone. Without flock (Windows), a rerun
#: does not take a dead run's claims over: it waits out their lease, as any
#: SDK worker would.
EXCLUSIVE = fcntl is not None


_SCHEMA = """
CREATE TABLE IF NOT EXISTS cli_rows (
    trade_no TEXT PRIMARY KEY,
    request TEXT NOT NULL,
    outcome TEXT NOT NULL,
    platform_trade_no TEXT,
    status TEXT,
    error_code TEXT,
    error_message TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    updated_at TEXT
)
"""

#: A row whose outcome the journal knows; "pending": handed over, no outcome.
OUTCOMES = ("accepted", "rejected", "unknown", "not_sent", "pending")


class JournalBusy(Exception):
    """Another run holds the journal."""


class UnknownLedgerUrl(Exception):
    """``--ledger`` names a store of no known kind."""


def journal_path(sheet: Path) -> Path:
    """Return the journal of *sheet*: ``FILE.csv.vexora.db`` beside it."""
    return sheet.with_name(sheet.name + ".vexora.db")


def lock_path(sheet: Path) -> Path:
    """Return the lock file of *sheet*'s journal."""
    return sheet.with_name(sheet.name + ".vexora.lock")


def now_iso() -> str:
    """Return the time now, UTC, to the second (as the report writes it)."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@attrs.define
class Record:
    """What the journal holds of one tradeNo."""

    trade_no: str
    request: PayoutRequest
    outcome: str
    platform_trade_no: str | None = None
    status: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    attempts: int = 0
    updated_at: str | None = None


def request_to_json(request: PayoutRequest) -> str:
    """Serialise *request* for the journal (amounts as strings: exact)."""
    return json.dumps(
        {
            "trade_no": request.trade_no,
            "amount": str(request.amount),
            "bank_code": str(request.bank_code),
            "bank_number": request.bank_number,
            "name": request.name,
            "notify_url": request.notify_url,
            "remark": request.remark,
        },
        ensure_ascii=False,
    )


def request_from_json(text: str) -> PayoutRequest:
    """Rebuild a request the journal stored."""
    data: dict[str, Any] = json.loads(text)
    data["amount"] = Decimal(data["amount"])
    return PayoutRequest(**data)


@contextlib.contextmanager
def locked(sheet: Path) -> Iterator[None]:
    """Hold *sheet*'s journal for this run, or raise :class:`JournalBusy`."""
    path = lock_path(sheet)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
                msg = (
                    f"another run (pid {holder or '?'}) is using the journal of "
                    f"{sheet.name}; wait for it to finish"
                )
                raise JournalBusy(msg) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        # Closing drops the flock; the file stays (removing it would race a
        # run that opened it meanwhile).
        os.close(fd)


class Journal:
    """The ``cli_rows`` table of one spreadsheet's journal."""

    def __init__(self, path: Path) -> None:
        self.path = path
        existed = path.exists()
        # Holds account numbers and names: its owner's only.
        if not existed:
            os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        self._db = sqlite3.connect(path, timeout=30.0, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # Survives a killed process (WAL); a power cut may lose the last
        # rows' report data, never the money's: the ledger, synced on each
        # commit, is what the next run trusts.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    def records(self) -> dict[str, Record]:
        """Return every record, by tradeNo."""
        cursor = self._db.execute(
            "SELECT trade_no, request, outcome, platform_trade_no, status, "
            "error_code, error_message, attempts, updated_at FROM cli_rows"
        )
        found = {}
        for row in cursor:
            found[row[0]] = Record(
                trade_no=row[0],
                request=request_from_json(row[1]),
                outcome=row[2],
                platform_trade_no=row[3],
                status=row[4],
                error_code=row[5],
                error_message=row[6],
                attempts=row[7],
                updated_at=row[8],
            )
        return found

    def add_pending(self, requests: list[PayoutRequest]) -> None:
        """Record the requests about to be sent (new ones only), in one go."""
        with self._transaction():
            self._db.executemany(
                "INSERT INTO cli_rows (trade_no, request, outcome, updated_at) "
                "VALUES (?, ?, 'pending', ?) ON CONFLICT (trade_no) DO NOTHING",
                [(r.trade_no, request_to_json(r), now_iso()) for r in requests],
            )

    def save(self, record: Record) -> None:
        """Write *record* (its request included)."""
        with self._transaction():
            self._db.execute(
                "INSERT INTO cli_rows (trade_no, request, outcome, "
                "platform_trade_no, status, error_code, error_message, attempts, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (trade_no) DO UPDATE SET request=excluded.request, "
                "outcome=excluded.outcome, "
                "platform_trade_no=excluded.platform_trade_no, "
                "status=excluded.status, error_code=excluded.error_code, "
                "error_message=excluded.error_message, "
                "attempts=excluded.attempts, updated_at=excluded.updated_at",
                (
                    record.trade_no,
                    request_to_json(record.request),
                    record.outcome,
                    record.platform_trade_no,
                    record.status,
                    record.error_code,
                    record.error_message,
                    record.attempts,
                    record.updated_at or now_iso(),
                ),
            )

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")


@contextlib.asynccontextmanager
async def open_ledger(url: str | None, sheet: Path) -> AsyncIterator[Ledger]:
    """Open the ledger: the journal's SQLite file, or the store at *url*."""
    if url is None:
        async with SQLiteLedger(journal_path(sheet)) as ledger:
            yield ledger
        return
    if url.startswith(("redis://", "rediss://", "unix://")):
        from vexora_async.ledgers import RedisLedger

        redis_ledger = RedisLedger.from_url(url)
        try:
            yield redis_ledger
        finally:
            await redis_ledger.aclose()
        return
    if url.startswith(("postgresql://", "postgres://")):
        import psycopg_pool

        from vexora_async.ledgers import PostgresLedger

        pool: psycopg_pool.AsyncConnectionPool[Any] = psycopg_pool.AsyncConnectionPool(
            url, open=False, min_size=1, max_size=4
        )
        await pool.open()
        try:
            postgres_ledger = PostgresLedger(pool)
            await postgres_ledger.create_table()
            yield postgres_ledger
        finally:
            await pool.close()
        return
    msg = f"--ledger takes a redis:// or postgresql:// URL, not {url.split(':')[0]!r}"
    raise UnknownLedgerUrl(msg)


async def take_over(ledger: Ledger, key: str, entry: LedgerEntry) -> bool:
    """Turn a dead run's in-flight claim on *key* into an unknown outcome.

    Only while this run holds the journal's lock: then no live run of this
    file holds the claim. Through the public ledger protocol: a claim with
    a lease of 0 (granted on any in-flight entry with the same
    fingerprint), settled at once as ``UNKNOWN``, so that the next create
    reconciles (a status query) before it sends anything. Return whether
    it was taken.
    """
    claim = await ledger.claim(key, entry.fingerprint, lease=0, token=new_token())
    if not claim.granted or claim.token is None:
        return False
    return await ledger.settle(
        key,
        LedgerEntry(
            state=EntryState.UNKNOWN,
            fingerprint=entry.fingerprint,
            updated_at=time.time(),
        ),
        token=claim.token,
    )
