"""The sender: sends the ``new`` withdrawals; run as many processes as you like.

Each round, in one transaction: take up to ``batch`` rows ``new`` that
no other sender holds (``FOR UPDATE SKIP LOCKED``), move each to
``sending`` and claim its tradeNo in the ledger (``claim_payout``). The
commit makes both stand together; a crash before it leaves the rows
``new`` and no claim. Then send them, and record each answer forward
only, at the version the move to ``sending`` made.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from typing import TYPE_CHECKING, Any

from vexora_async import (
    ClientClosedError,
    ConnectError,
    LedgerError,
    PayoutResult,
    RequestRejected,
    VexoraError,
)

from .db import REQUEST_COLUMNS, advance, request_of
from .telemetry import ESCALATED, SEND_SECONDS, TRANSITIONS


if TYPE_CHECKING:
    import psycopg
    import psycopg_pool
    from vexora_async import PayoutRequest, PayoutStatus, PostgresLedger, VexoraClient

    from .settings import Settings

logger = logging.getLogger("withdrawals.sender")

#: Errors after which nothing was sent: the row goes back to ``new``.
NOTHING_SENT = (ConnectError, LedgerError, ClientClosedError)

_TAKE = (
    "SELECT id, version, " + REQUEST_COLUMNS + " FROM withdrawals"  # noqa: S608 - constant columns
    " WHERE state = 'new' AND next_attempt_at <= now()"
    " ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED"
)


def state_of(result: PayoutResult | PayoutStatus) -> str:
    """Return the state a gateway's answer puts the withdrawal in."""
    if result.status.is_success:
        return "paid"
    if result.status.is_failed:
        return "failed"
    return "accepted"  # processing: the callback (or the reconciler) settles it


async def record(
    conn: psycopg.AsyncConnection[Any],
    withdrawal_id: int,
    version: int | None,
    source: str,
    outcome: PayoutResult | PayoutStatus | VexoraError,
    *,
    retry_after: dt.timedelta | None = None,
) -> int | None:
    """Record a call's answer (or error), forward only; return the new version.

    The decision table of docs/errors.md, as states.
    """
    if isinstance(outcome, VexoraError):
        to, detail = _state_of_error(outcome)
        moved = await advance(
            conn,
            withdrawal_id,
            to,
            source=source,
            version=version,
            detail=detail,
            failure_code=outcome.code if isinstance(outcome, RequestRejected) else None,
            failure_message=outcome.msg
            if isinstance(outcome, RequestRejected)
            else None,
            retry_after=retry_after if to == "new" else None,
        )
    else:
        to = state_of(outcome)
        moved = await advance(
            conn,
            withdrawal_id,
            to,
            source=source,
            version=version,
            platform_trade_no=outcome.platform_trade_no,
            failure_code=str(outcome.status) if to == "failed" else None,
            failure_message=outcome.message if to == "failed" else None,
        )
    if moved is not None:
        TRANSITIONS.labels(to, source).inc()
        if to == "escalated":
            ESCALATED.inc()
    return moved


def _state_of_error(error: VexoraError) -> tuple[str, str]:
    name = type(error).__name__
    if isinstance(error, NOTHING_SENT):
        return "new", f"{name}: nothing sent"
    if isinstance(error, RequestRejected) and error.confirmed:
        return "failed", f"{name}: refused, not paid"
    if error.may_have_executed:  # unknown, an unconfirmed refusal, anything else
        return "unknown", f"{name}: may have executed"
    # Nothing sent, and sending again would not help (a bad request, a
    # tradeNo the gateway holds for another payout): a human must look.
    return "escalated", f"{name}: {error}"


async def take(
    pool: psycopg_pool.AsyncConnectionPool[Any],
    client: VexoraClient,
    ledger: PostgresLedger,
    batch: int,
) -> list[tuple[int, int, PayoutRequest]]:
    """Move up to *batch* ``new`` rows to ``sending`` and claim their tradeNos.

    Returns ``(id, version, request)`` of each row to send, committed.
    """
    granted: list[tuple[int, int, PayoutRequest]] = []
    async with pool.connection() as conn, conn.transaction():
        cursor = await conn.execute(_TAKE, (batch,))
        for withdrawal_id, version, *columns in await cursor.fetchall():
            request = request_of(tuple(columns))
            moved = await advance(
                conn, withdrawal_id, "sending", source="sender", version=version
            )
            if moved is None:  # cannot happen while we hold the row's lock
                continue
            claim = await ledger.claim_payout(conn, client, request)
            if claim.granted:
                granted.append((withdrawal_id, moved, request))
            else:
                # Settled or in flight elsewhere already (a restored backup,
                # a row copied by hand): the reconciler asks the gateway.
                await advance(
                    conn,
                    withdrawal_id,
                    "unknown",
                    source="sender",
                    version=moved,
                    detail=f"ledger holds it: {claim.prior and claim.prior.state}",
                )
    return granted


async def send_one(
    pool: psycopg_pool.AsyncConnectionPool[Any],
    client: VexoraClient,
    withdrawal_id: int,
    version: int,
    request: PayoutRequest,
    *,
    retry_after: dt.timedelta,
) -> None:
    """Send one claimed withdrawal and record the answer."""
    started = time.perf_counter()
    outcome: PayoutResult | VexoraError
    try:
        outcome = await client.create_payout(request)  # takes the claim over
    except VexoraError as exc:  # nothing else escapes the SDK
        outcome = exc
    SEND_SECONDS.observe(time.perf_counter() - started)
    async with pool.connection() as conn:
        await record(
            conn, withdrawal_id, version, "sender", outcome, retry_after=retry_after
        )


async def send_round(
    pool: psycopg_pool.AsyncConnectionPool[Any],
    client: VexoraClient,
    ledger: PostgresLedger,
    settings: Settings,
) -> int:
    """Take and send one batch; return how many were sent."""
    granted = await take(pool, client, ledger, settings.batch)
    retry_after = dt.timedelta(seconds=settings.retry_after)
    await asyncio.gather(
        *(send_one(pool, client, *row, retry_after=retry_after) for row in granted)
    )
    return len(granted)


async def run(
    pool: psycopg_pool.AsyncConnectionPool[Any],
    client: VexoraClient,
    ledger: PostgresLedger,
    settings: Settings,
    stop: asyncio.Event,
) -> None:
    """Send until *stop* is set; survive the database going away."""
    while not stop.is_set():
        try:
            sent = await send_round(pool, client, ledger, settings)
        except Exception:
            # The database went away (a failover, pg_terminate_backend):
            # the round's transaction rolled back, or committed with its
            # answer lost (the reconciler finds those rows stale).
            logger.exception("send round failed; trying again")
            sent = 0
        if not sent:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), settings.poll_interval)
