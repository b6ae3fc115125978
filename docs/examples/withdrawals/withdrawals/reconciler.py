"""The reconciler: asks the gateway about the withdrawals nobody is settling.

- ``unknown`` rows (an answer was lost): ``resolve_payout`` under the
  same tradeNo, which queries first and sends only if the gateway has
  never seen it ("query, don't resend");
- ``sending`` rows untouched for ``stale_after`` (their sender died, or
  lost the database, after its commit): the same;
- ``accepted`` rows untouched for ``stale_after`` (their callback is
  late or lost), and any row the gateway accepted: ``get_payout``;
- rows still open ``escalate_after`` after their creation become
  ``escalated`` (and ``withdrawals_escalated_total`` counts them); they
  are still resolved, so they close by themselves if they can.

Every update names the version it read, so a callback or a sender that
moved the row meanwhile wins and the reconciler's answer is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from vexora_async import RequestRejected, TradeNoCollision, VexoraError

from .db import REQUEST_COLUMNS, advance, request_of
from .sender import record
from .telemetry import ESCALATED, TRANSITIONS


if TYPE_CHECKING:
    import psycopg_pool
    from vexora_async import PayoutResult, PayoutStatus, VexoraClient

    from .settings import Settings

logger = logging.getLogger("withdrawals.reconciler")

_OPEN = (
    "SELECT id, version, state, platform_trade_no,"  # noqa: S608 - constant columns
    " created_at < now() - make_interval(secs => %(escalate)s), "
    + REQUEST_COLUMNS
    + " FROM withdrawals"
    " WHERE state IN ('unknown', 'escalated')"
    " OR (state IN ('sending', 'accepted')"
    "     AND updated_at < now() - make_interval(secs => %(stale)s))"
    " ORDER BY updated_at LIMIT %(limit)s"
)


async def reconcile_one(
    pool: psycopg_pool.AsyncConnectionPool[Any],
    client: VexoraClient,
    row: tuple[Any, ...],
) -> bool:
    """Resolve one open withdrawal; return whether its state moved."""
    withdrawal_id, version, state, platform_trade_no, overdue, *columns = row
    request = request_of(tuple(columns))
    # Accepted by the gateway (an escalated row may have been): only a
    # status query tells its fate. resolve_payout would answer the
    # acceptance the ledger holds, still processing.
    accepted = platform_trade_no is not None
    outcome: PayoutResult | PayoutStatus | VexoraError
    try:
        if accepted:
            outcome = await client.get_payout(request.trade_no)
        else:
            outcome = await client.resolve_payout(request)
    except VexoraError as exc:
        outcome = exc
    async with pool.connection() as conn:
        if _tells(outcome, state, accepted=accepted):
            moved = await record(conn, withdrawal_id, version, "reconciler", outcome)
        else:
            moved = None
        if moved is None and overdue and state != "escalated":
            # Still open: whatever it is, it has been too long.
            moved = await advance(
                conn,
                withdrawal_id,
                "escalated",
                source="reconciler",
                version=version,
                detail=f"open since creation past the limit; was {state}",
            )
            if moved is not None:
                TRANSITIONS.labels("escalated", "reconciler").inc()
                ESCALATED.inc()
                logger.error("withdrawal %s escalated (was %s)", withdrawal_id, state)
    return moved is not None


def _tells(
    outcome: PayoutResult | PayoutStatus | VexoraError, state: str, *, accepted: bool
) -> bool:
    """Tell whether *outcome* is worth recording for a row in *state*."""
    if not isinstance(outcome, VexoraError):
        return True
    if accepted:
        return False  # a failed status query says nothing about the payout
    if isinstance(outcome, RequestRejected):
        # The gateway never saw the tradeNo and refused it again.
        return outcome.confirmed
    if isinstance(outcome, TradeNoCollision):
        return True  # escalated: the gateway holds it for another payout
    # Still unknown: a sending row becomes unknown; nothing else changes
    # (never back to new: its first send may have gone out).
    return state == "sending" and outcome.may_have_executed


async def reconcile_round(
    pool: psycopg_pool.AsyncConnectionPool[Any],
    client: VexoraClient,
    settings: Settings,
) -> int:
    """Resolve up to ``batch`` open withdrawals; return how many moved."""
    async with pool.connection() as conn:
        cursor = await conn.execute(
            _OPEN,
            {
                "escalate": settings.escalate_after,
                "stale": settings.stale_after,
                "limit": settings.batch,
            },
        )
        rows = await cursor.fetchall()
    moved = await asyncio.gather(*(reconcile_one(pool, client, row) for row in rows))
    return sum(moved)


async def run(
    pool: psycopg_pool.AsyncConnectionPool[Any],
    client: VexoraClient,
    settings: Settings,
    stop: asyncio.Event,
    *,
    interval: float = 5.0,
) -> None:
    """Reconcile every *interval* seconds until *stop* is set."""
    while not stop.is_set():
        try:
            await reconcile_round(pool, client, settings)
        except Exception:
            logger.exception("reconcile round failed; trying again")
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
