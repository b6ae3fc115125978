"""The schema's runner, and the one way a withdrawal's state changes."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from vexora_async import PayoutRequest


if TYPE_CHECKING:
    import datetime as dt

    import psycopg

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
#: Serialises migrators started at once (two deploys, say).
_MIGRATION_LOCK = 0x5749_5448_4452_4157  # "WITHDRAW"

#: The forward-only rule: each state, and the states a withdrawal may
#: leave for it. ``new`` again only from ``sending``, when the send reached
#: nothing (the version check ties that to the sender's own attempt).
#: Nothing leaves ``paid`` or ``failed``.
MAY_LEAVE: dict[str, tuple[str, ...]] = {
    "sending": ("new",),
    "new": ("sending",),
    "unknown": ("sending", "unknown"),
    "accepted": ("sending", "unknown", "escalated"),
    "paid": ("sending", "unknown", "accepted", "escalated"),
    "failed": ("sending", "unknown", "accepted", "escalated"),
    "escalated": ("sending", "unknown", "accepted"),
}
FINAL = ("paid", "failed")
#: What a withdrawal's row needs to rebuild its payout request.
REQUEST_COLUMNS = "trade_no, amount, bank_code, bank_number, account_name, notify_url"


async def migrate(conn: psycopg.AsyncConnection[Any]) -> list[str]:
    """Apply the migrations not applied yet, in name order; return their names."""
    applied: list[str] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations"
            " (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        cursor = await conn.execute("SELECT name FROM schema_migrations")
        done = {name for (name,) in await cursor.fetchall()}
        for path in sorted(MIGRATIONS.glob("*.sql")):
            if path.name in done:
                continue
            await conn.execute(path.read_text(encoding="utf-8").encode())
            await conn.execute(
                "INSERT INTO schema_migrations (name) VALUES (%s)", (path.name,)
            )
            applied.append(path.name)
    return applied


def request_of(row: tuple[Any, ...]) -> PayoutRequest:
    """Return the payout request of a row read with ``REQUEST_COLUMNS``."""
    trade_no, amount, bank_code, bank_number, name, notify_url = row
    return PayoutRequest(
        trade_no=trade_no,
        amount=amount,
        bank_code=bank_code,
        bank_number=bank_number,
        name=name,
        notify_url=notify_url,
    )


# The row's move and its event in one statement, so neither is ever alone.
_ADVANCE = """
WITH old AS (
    SELECT id, state FROM withdrawals WHERE id = %(id)s FOR UPDATE
), moved AS (
    UPDATE withdrawals AS w SET
        state = %(to)s,
        version = w.version + 1,
        updated_at = now(),
        attempts = w.attempts + %(attempt)s,
        next_attempt_at = now() + coalesce(%(retry_after)s, interval '0'),
        platform_trade_no = coalesce(%(platform_trade_no)s, w.platform_trade_no),
        failure_code = coalesce(%(failure_code)s, w.failure_code),
        failure_message = coalesce(%(failure_message)s, w.failure_message)
    FROM old
    WHERE w.id = old.id
      AND w.state = ANY(%(may_leave)s)
      AND (%(version)s::integer IS NULL OR w.version = %(version)s)
    RETURNING w.id, old.state AS from_state, w.version
)
INSERT INTO withdrawal_events (withdrawal_id, from_state, to_state, version, source,
                               detail)
SELECT id, from_state, %(to)s, version, %(source)s, %(detail)s FROM moved
RETURNING version
"""


async def advance(
    conn: psycopg.AsyncConnection[Any],
    withdrawal_id: int,
    to: str,
    *,
    source: str,
    version: int | None = None,
    detail: str | None = None,
    platform_trade_no: str | None = None,
    failure_code: str | None = None,
    failure_message: str | None = None,
    retry_after: dt.timedelta | None = None,
) -> int | None:
    """Move a withdrawal to *to*, forward only; return its new version.

    ``None``: it did not move (its state may not leave for *to*, or it is
    no longer at *version*: someone else moved it first).
    """
    cursor = await conn.execute(
        _ADVANCE,
        {
            "id": withdrawal_id,
            "to": to,
            "may_leave": list(MAY_LEAVE[to]),
            "version": version,
            "source": source,
            "detail": detail,
            "platform_trade_no": platform_trade_no,
            "failure_code": failure_code,
            "failure_message": failure_message,
            "retry_after": retry_after,
            "attempt": 1 if to == "sending" else 0,
        },
    )
    row = await cursor.fetchone()
    return None if row is None else int(row[0])
