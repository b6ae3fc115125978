"""The web API: withdrawals in, their state out, the gateway's callbacks.

``POST /withdrawals`` commits the row, state ``new``, and nothing else:
the row is the outbox, which a sender takes (the claim is made there, in
the transaction that moves the row to ``sending``). Nothing waits on a
queue that could lose it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import uuid
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any

import psycopg_pool
from fastapi import FastAPI, Header, HTTPException, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field
from starlette.routing import Route
from vexora_async import InvalidRequestError, PayoutRequest, VexoraError

from .callbacks import apply_inbox, receiver
from .telemetry import TRANSITIONS, make_client


if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from vexora_async import VexoraClient

    from .settings import Settings

logger = logging.getLogger("withdrawals.api")

_COLUMNS = (
    "id, user_id, trade_no, amount, bank_code, bank_number, state, version,"
    " platform_trade_no, failure_code, created_at, updated_at, request_hash"
)
_INSERT = (
    "INSERT INTO withdrawals (user_id, idempotency_key, request_hash, trade_no,"  # noqa: S608 - constant columns
    " amount, bank_code, bank_number, account_name, notify_url)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
    " ON CONFLICT (user_id, idempotency_key) DO NOTHING RETURNING "
    + _COLUMNS  # constant columns
)
_EVENT = (
    "INSERT INTO withdrawal_events (withdrawal_id, to_state, version, source)"
    " VALUES (%s, 'new', 0, 'api')"
)


class WithdrawalIn(BaseModel):
    """A user's withdrawal to their e-wallet."""

    user_id: str = Field(min_length=1, max_length=64)
    amount: int = Field(gt=0)
    bank_code: str
    bank_number: str
    name: str

    def request_hash(self) -> str:
        """Return the hash that tells a replay from another body."""
        body = json.dumps(self.model_dump(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(body.encode()).hexdigest()


def _masked(number: str) -> str:
    return "*" * max(len(number) - 4, 0) + number[-4:]


def _out(row: tuple[Any, ...]) -> dict[str, Any]:
    (id_, user_id, trade_no, amount, bank_code, bank_number, state, version,
     platform_trade_no, failure_code, created_at, updated_at, _) = row  # fmt: skip
    return {
        "id": id_,
        "user_id": user_id,
        "trade_no": trade_no,
        "amount": str(amount),
        "bank_code": bank_code,
        "bank_number": _masked(bank_number),
        "state": state,
        "version": version,
        "platform_trade_no": platform_trade_no,
        "failure_code": failure_code,
        "created_at": created_at.isoformat(),
        "updated_at": updated_at.isoformat(),
    }


async def store(
    db: psycopg_pool.AsyncConnectionPool[Any],
    settings: Settings,
    body: WithdrawalIn,
    idempotency_key: str,
) -> tuple[tuple[Any, ...], bool]:
    """Store a withdrawal once per key; return its row and whether it is new.

    The same key with the same body returns the first row; with another
    body, 409.
    """
    trade_no = f"WD{uuid.uuid4().hex}"
    try:  # the SDK checks the payout as the gateway would, before we store it
        PayoutRequest(
            trade_no=trade_no,
            amount=body.amount,
            bank_code=body.bank_code,
            bank_number=body.bank_number,
            name=body.name,
            notify_url=settings.notify_url,
        )
    except InvalidRequestError as exc:
        raise HTTPException(422, f"{exc.field}: invalid") from None
    digest = body.request_hash()
    async with db.connection() as conn, conn.transaction():
        cursor = await conn.execute(
            _INSERT,
            (
                body.user_id,
                idempotency_key,
                digest,
                trade_no,
                Decimal(body.amount),
                body.bank_code,
                body.bank_number,
                body.name,
                settings.notify_url,
            ),
        )
        row = await cursor.fetchone()
        if row is not None:
            await conn.execute(_EVENT, (row[0],))
            TRANSITIONS.labels("new", "api").inc()
            return row, True
        cursor = await conn.execute(
            "SELECT " + _COLUMNS + " FROM withdrawals"  # noqa: S608 - constant columns
            " WHERE user_id = %s AND idempotency_key = %s",
            (body.user_id, idempotency_key),
        )
        row = await cursor.fetchone()
    if row is None:  # cannot happen: rows are never deleted
        raise HTTPException(500, "idempotency key vanished")
    if row[-1] != digest:
        raise HTTPException(409, "this Idempotency-Key was used for another body")
    return row, False


async def apply_forever(
    db: psycopg_pool.AsyncConnectionPool[Any], stored: asyncio.Event
) -> None:
    """Apply the inbox's callbacks as they are stored (and every second)."""
    while True:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stored.wait(), 1.0)
        stored.clear()
        try:
            while await apply_inbox(db):
                pass
        except Exception:
            logger.exception("applying callbacks failed; trying again")


def create_app(
    settings: Settings,
    *,
    pool: psycopg_pool.AsyncConnectionPool[Any] | None = None,
    client: VexoraClient | None = None,
) -> FastAPI:
    """Build the API. *pool* and *client*: yours to open and close, else its own."""
    own_pool = pool is None
    db: psycopg_pool.AsyncConnectionPool[Any] = (
        psycopg_pool.AsyncConnectionPool(settings.database_url, open=False)
        if pool is None
        else pool
    )
    stored = asyncio.Event()
    state: dict[str, VexoraClient] = {}

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            if own_pool:
                await db.open()
                stack.push_async_callback(db.close)
            state["client"] = (
                client
                if client is not None
                else await stack.enter_async_context(make_client(settings))
            )
            applier = asyncio.create_task(apply_forever(db, stored))
            try:
                yield
            finally:
                applier.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await applier

    app = FastAPI(title="withdrawals", lifespan=lifespan)

    @app.post("/withdrawals", status_code=201)
    async def create_withdrawal(
        body: WithdrawalIn,
        response: Response,
        idempotency_key: Annotated[str, Header(min_length=1, max_length=128)],
    ) -> dict[str, Any]:
        row, created = await store(db, settings, body, idempotency_key)
        if not created:
            response.status_code = 200  # a replay: the same withdrawal
        return _out(row)

    @app.get("/withdrawals/{withdrawal_id}")
    async def get_withdrawal(withdrawal_id: int) -> dict[str, Any]:
        async with db.connection() as conn:
            cursor = await conn.execute(
                "SELECT " + _COLUMNS + " FROM withdrawals WHERE id = %s",  # noqa: S608 - constant columns
                (withdrawal_id,),
            )
            row = await cursor.fetchone()
        if row is None:
            raise HTTPException(404, "no such withdrawal")
        return _out(row)

    @app.get("/balance")
    async def balance() -> dict[str, str | None]:
        try:
            found = await state["client"].get_balance(deadline=5.0)
        except VexoraError as exc:
            raise HTTPException(503, f"gateway: {type(exc).__name__}") from None
        return {
            "available": str(found.available_amount),
            "frozen": None if found.freeze_amount is None else str(found.freeze_amount),
        }

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    # A Route, not app.mount(): a mount answers its exact path with a
    # redirect, which the gateway does not follow.
    app.router.routes.append(
        Route(
            "/vexora/payouts/notify",
            receiver(db, settings.app_secret, stored),
            methods=["POST"],
        )
    )
    return app
