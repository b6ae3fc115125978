"""Receive Vexora callbacks in an aiohttp app.

aiohttp is not ASGI, so the receiver is adapted: the route reads the body
(aiohttp refuses bodies over ``client_max_size`` with 413) and hands it to
:meth:`NotificationReceiver.respond`, which verifies it, runs the handler
once per notification under a timeout, and says what to answer.

The deposit route shows the sans-I/O core alone, :func:`parse_notification`,
for when you want none of that machinery: then de-duplication, the handler
timeout and the exact answer are yours to get right.

Both check that a notification is about a transaction of yours before they
record it: a valid sign only proves it was signed with your secret.

Run it on loopback::

    export VEXORA_APP_SECRET=...
    python docs/examples/aiohttp_receiver.py
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from aiohttp import web
from vexora_async import NotificationError
from vexora_async.notifications import (
    Notification,
    NotificationReceiver,
    parse_notification,
)


if TYPE_CHECKING:
    from decimal import Decimal


logger = logging.getLogger("shop.vexora")


class Ledger:
    """Stands in for your database: each transaction's state, by tradeNo."""

    def __init__(self) -> None:
        #: The payouts and pay-ins you created, by tradeNo: their amounts.
        self.sent: dict[str, Decimal] = {}
        self.states: dict[str, str] = {}
        self.final: set[str] = set()
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

    async def record(self, notification: Notification) -> None:
        """Store the state, never changing one that is already final."""
        if notification.trade_no not in self.final:
            self.states[notification.trade_no] = notification.status
            if notification.status.is_final:
                self.final.add(notification.trade_no)


LEDGER = web.AppKey("ledger", Ledger)


def create_app(app_secret: str, ledger: Ledger | None = None) -> web.Application:
    """Build the app: the adapted receiver for payouts, the core for pay-ins."""
    book = Ledger() if ledger is None else ledger

    async def record_if_ours(notification: Notification) -> None:
        if await book.is_ours(notification):
            await book.record(notification)
            return
        # Validly signed, but not a transaction of yours (another service or
        # environment on your merchant number) or not its amount: change
        # nothing, acknowledge (no retry makes it yours), tell a human.
        logger.error(
            "%s callback for a transaction we did not create: tradeNo=%s",
            notification.kind,
            notification.trade_no,
        )
        book.strangers.append(notification.trade_no)

    async def on_payout(notification: Notification, *, already_handled: bool) -> None:
        if not already_handled:
            await record_if_ours(notification)

    receiver = NotificationReceiver(app_secret, on_payout, kind="payout")

    async def payout_notify(request: web.Request) -> web.Response:
        reply = await receiver.respond(await request.read())
        return web.Response(
            status=reply.status_code, text=reply.text, content_type="text/plain"
        )

    async def deposit_notify(request: web.Request) -> web.Response:
        try:
            notification = parse_notification(
                await request.read(), app_secret, kind="deposit"
            )
        except NotificationError as exc:
            # Never "OK": the gateway must deliver it again.
            return web.Response(status=exc.http_status, text="refused")
        await record_if_ours(notification)  # idempotent on its own
        return web.Response(text="OK", content_type="text/plain")

    app = web.Application(client_max_size=receiver.max_body_bytes)
    app.router.add_post("/vexora/payouts/notify", payout_notify)
    app.router.add_post("/vexora/deposits/notify", deposit_notify)
    app[LEDGER] = book
    return app


if __name__ == "__main__":
    web.run_app(
        create_app(os.environ["VEXORA_APP_SECRET"]), host="127.0.0.1", port=8091
    )
