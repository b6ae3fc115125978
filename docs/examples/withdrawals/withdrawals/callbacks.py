"""The gateway's callbacks: verified, stored, acknowledged, then applied.

The receiver (the SDK's ``NotificationReceiver``) refuses a body whose
sign does not verify (403) before any of this runs. The handler does one
durable thing, an insert into ``callback_inbox`` (its dedupe key unique, so
the gateway's redeliveries are stored once), and returns: the gateway
gets ``OK``. :func:`apply_inbox` then applies each stored callback
forward only, once it has checked that its tradeNo and amount are ours
(a valid sign proves the gateway signed it, not that it is ours).
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from vexora_async import TransactionStatus
from vexora_async.notifications import Notification, NotificationReceiver
from vexora_async.prometheus import PrometheusHook

from .db import advance
from .telemetry import ESCALATED, TRANSITIONS


if TYPE_CHECKING:
    import asyncio

    import psycopg_pool

logger = logging.getLogger("withdrawals.callbacks")

_STORE = (
    "INSERT INTO callback_inbox"
    " (dedupe_key, trade_no, status, amount, platform_trade_no, body)"
    " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (dedupe_key) DO NOTHING"
)
_PENDING = (
    "SELECT id, trade_no, status, amount, platform_trade_no FROM callback_inbox"
    " WHERE processed_at IS NULL ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED"
)


def receiver(
    pool: psycopg_pool.AsyncConnectionPool[Any],
    app_secret: str,
    stored: asyncio.Event | None = None,
) -> NotificationReceiver:
    """Return the ASGI app for ``POST /vexora/payouts/notify``.

    *stored* is set after each insert, to wake the inbox's applier.
    """

    async def handler(notification: Notification, *, already_handled: bool) -> None:
        if already_handled:  # stored before, by this process
            return
        async with pool.connection() as conn:
            await conn.execute(
                _STORE,
                (
                    notification.dedup_key,  # one per (kind, tradeNo, status)
                    notification.trade_no,
                    str(notification.status),
                    notification.amount,
                    notification.platform_trade_no,
                    json.dumps(dict(notification.raw), default=str),
                ),
            )
        # Committed: now the gateway may have its OK. If this raised, it
        # would deliver again.
        if stored is not None:
            stored.set()

    return NotificationReceiver(
        app_secret, handler, kind="payout", on_event=PrometheusHook()
    )


def state_of(status: str) -> str | None:
    """Return the state a callback's status puts the withdrawal in, if any."""
    code = TransactionStatus(status)
    if code.is_success:
        return "paid"
    if code.is_failed:
        return "failed"
    if code.is_processing:
        return "accepted"
    return None  # a code this service does not know: leave it to a human


async def apply_inbox(
    pool: psycopg_pool.AsyncConnectionPool[Any], limit: int = 100
) -> int:
    """Apply the stored callbacks not applied yet; return how many."""
    async with pool.connection() as conn, conn.transaction():
        cursor = await conn.execute(_PENDING, (limit,))
        rows = await cursor.fetchall()
        for inbox_id, trade_no, status, amount, platform_trade_no in rows:
            cursor = await conn.execute(
                "SELECT id, amount FROM withdrawals WHERE trade_no = %s", (trade_no,)
            )
            ours = await cursor.fetchone()
            to = state_of(status)
            if ours is None or ours[1] != amount or to is None:
                # Signed by the gateway, but not a withdrawal of ours (another
                # service or environment on the merchant number), or not its
                # amount: change nothing, keep it for a human.
                outcome = "not ours" if to is not None else "unknown status"
                ESCALATED.inc()
                logger.error("callback not applied (%s): %s", outcome, trade_no)
            else:
                moved = await advance(
                    conn,
                    ours[0],
                    to,
                    source="callback",
                    detail=f"callback {status}",
                    platform_trade_no=platform_trade_no,
                    failure_code=status if to == "failed" else None,
                )
                if moved is not None:
                    TRANSITIONS.labels(to, "callback").inc()
                outcome = "applied" if moved is not None else "no change"
            await conn.execute(
                "UPDATE callback_inbox SET processed_at = now(), outcome = %s"
                " WHERE id = %s",
                (outcome, inbox_id),
            )
    return len(rows)
