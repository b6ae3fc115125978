"""Receive Vexora callbacks in an aiohttp app.

aiohttp is not ASGI, so the receiver is adapted: the route reads the body
(aiohttp refuses bodies over ``client_max_size`` with 413) and hands it to
:meth:`NotificationReceiver.respond`, which verifies it, runs the handler
once per notification under a timeout, and says what to answer.

The deposit route shows the sans-I/O core alone, :func:`parse_notification`,
for when you want none of that machinery: then de-duplication, the handler
timeout and the exact answer are yours to get right.

Run it on loopback::

    export VEXORA_APP_SECRET=...
    python docs/examples/aiohttp_receiver.py
"""

from __future__ import annotations

import os

from aiohttp import web
from vexora_async import NotificationError
from vexora_async.notifications import (
    Notification,
    NotificationReceiver,
    parse_notification,
)


class Ledger:
    """Stands in for your database: each transaction's state, by tradeNo."""

    def __init__(self) -> None:
        self.states: dict[str, str] = {}
        self.final: set[str] = set()

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

    async def on_payout(notification: Notification, *, already_handled: bool) -> None:
        if not already_handled:
            await book.record(notification)

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
        await book.record(notification)  # idempotent on its own
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
