"""Receive Vexora callbacks in a FastAPI app.

Run it on loopback (behind your HTTPS reverse proxy in production)::

    export VEXORA_APP_SECRET=...   # never on the command line
    python docs/examples/fastapi_receiver.py

and send payouts with ``notify_url="https://<your host>/vexora/payouts/notify"``
and pay-ins with ``.../vexora/deposits/notify``.

The handler does the one fast, durable thing before ``OK`` goes back:
it records the new state, once it has checked that the notification is
about a transaction of yours (a valid sign only proves it was signed with
your secret). Slow follow-up work (telling the customer,
accounting exports) runs after the answer, from a queue that a background
task drains.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import TYPE_CHECKING

from fastapi import FastAPI
from starlette.routing import Route
from vexora_async.notifications import Notification, NotificationReceiver


if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from decimal import Decimal


logger = logging.getLogger("shop.vexora")


class Ledger:
    """Stands in for your database: each transaction's state, by tradeNo.

    Idempotent on its own, as a database update should be: a state that is
    already final is never changed again, so neither a redelivery nor a late
    "processing" after "success" can move money twice or move it back.
    """

    def __init__(self) -> None:
        #: The payouts and pay-ins you created, by tradeNo: their amounts.
        self.sent: dict[str, Decimal] = {}
        self.states: dict[str, str] = {}
        self.final: set[str] = set()
        self.customers_told: list[str] = []
        self.strangers: list[str] = []

    async def is_ours(self, notification: Notification) -> bool:
        """Tell whether the notification is about a transaction you created.

        A payout moves the amount you sent; a pay-in may be partial
        (``0001``), never more.
        """
        sent = self.sent.get(notification.trade_no)
        if sent is None:
            return False
        if notification.kind == "payout":
            return notification.amount == sent
        return notification.amount <= sent

    async def record(self, notification: Notification) -> bool:
        """Store the notification's state; return whether anything changed."""
        trade_no = notification.trade_no
        if trade_no in self.final or self.states.get(trade_no) == notification.status:
            return False
        self.states[trade_no] = notification.status
        if notification.status.is_final:
            self.final.add(trade_no)
        return True

    async def tell_customer(self, notification: Notification) -> None:
        """Slow work that must not hold up the answer (an e-mail, say)."""
        await asyncio.sleep(0)
        self.customers_told.append(notification.trade_no)


def create_app(app_secret: str, ledger: Ledger | None = None) -> FastAPI:
    """Build the app: one receiver per kind of notification."""
    book = Ledger() if ledger is None else ledger
    follow_ups: asyncio.Queue[Notification] = asyncio.Queue()

    async def on_notification(
        notification: Notification, *, already_handled: bool
    ) -> None:
        if already_handled:
            return
        if not await book.is_ours(notification):
            # Validly signed, but not a transaction of yours (another
            # service or environment on your merchant number) or not its
            # amount: change nothing, acknowledge (no retry makes it
            # yours) and leave it to a human.
            logger.error(
                "%s callback for a transaction we did not create: tradeNo=%s",
                notification.kind,
                notification.trade_no,
            )
            book.strangers.append(notification.trade_no)
            return
        # Fast and durable, before OK: if this raises, the gateway retries.
        if await book.record(notification):
            # Slow, after OK: lost if the process dies now, so keep it to
            # work you can redo from the ledger (or use a durable queue).
            follow_ups.put_nowait(notification)

    async def drain() -> None:
        while True:
            notification = await follow_ups.get()
            try:
                await book.tell_customer(notification)
            except Exception:
                logger.exception("follow-up failed for %s", notification.trade_no)
            finally:
                follow_ups.task_done()

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        worker = asyncio.create_task(drain())
        yield
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker

    app = FastAPI(lifespan=lifespan)
    # A Route, not app.mount(): a mount at "/vexora/payouts/notify" answers
    # the exact path with a redirect, which the gateway does not follow.
    app.router.routes += [
        Route(
            "/vexora/payouts/notify",
            NotificationReceiver(app_secret, on_notification, kind="payout"),
            methods=["POST"],
        ),
        Route(
            "/vexora/deposits/notify",
            NotificationReceiver(app_secret, on_notification, kind="deposit"),
            methods=["POST"],
        ),
    ]
    app.state.ledger = book
    app.state.follow_ups = follow_ups
    return app


if __name__ == "__main__":
    import uvicorn

    logging.basicConfig(level=logging.INFO)
    uvicorn.run(
        create_app(os.environ["VEXORA_APP_SECRET"]), host="127.0.0.1", port=8091
    )
