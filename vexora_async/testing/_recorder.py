"""A callback receiver for tests: records, verifies, and answers as scripted.

Not the SDK's production receiver: this one exists to misbehave on
purpose (answer ``ok`` instead of ``OK``, a 500, nothing useful) so that a
test can watch the gateway retry.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING

import attrs

from vexora_async._signer import SIGN_FIELD, verify
from vexora_async.notifications._receiver import serve_lifespan

from ._config import SANDBOX_APP_SECRET


if TYPE_CHECKING:
    from collections.abc import Callable

    from ._app import Receive, Scope, Send


#: What the gateway needs to hear to stop retrying.
ACCEPTED = (200, b"OK")


@attrs.frozen
class ReceivedCallback:
    """One callback POST as received.

    *fields* is the parsed body (``None`` if it was not a JSON object);
    *verified* tells whether its ``sign`` checked out; *delivery* counts the
    POSTs received for this ``tradeNo``, from 1.
    """

    fields: Mapping[str, object] | None
    verified: bool
    delivery: int
    body: bytes = attrs.field(repr=False)

    @property
    def trade_no(self) -> str | None:
        """The callback's ``tradeNo``, if it has one."""
        value = (self.fields or {}).get("tradeNo")
        return value if isinstance(value, str) else None

    @property
    def status(self) -> str | None:
        """The callback's ``status`` code, if it has one."""
        value = (self.fields or {}).get("status")
        return value if isinstance(value, str) else None


class CallbackRecorder:
    """An ASGI app that receives gateway callbacks and records them.

    Each POST is parsed and its ``sign`` verified with *app_secret*. The
    answer is ``200 OK`` when the sign is valid (``400`` otherwise) unless
    *respond* is given: it takes the :class:`ReceivedCallback` and returns
    ``(status, body)``, for example ``lambda cb: (500, b"") if cb.delivery
    == 1 else ACCEPTED`` to refuse every first delivery.
    """

    def __init__(
        self,
        app_secret: str = SANDBOX_APP_SECRET,
        *,
        respond: Callable[[ReceivedCallback], tuple[int, bytes]] | None = None,
    ) -> None:
        self._secret = app_secret
        self._respond = respond
        self.received: list[ReceivedCallback] = []
        self._deliveries: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"CallbackRecorder(received={len(self.received)})"

    @property
    def verified_trade_nos(self) -> set[str]:
        """The ``tradeNo`` values of every callback whose sign was valid."""
        return {cb.trade_no for cb in self.received if cb.verified and cb.trade_no}

    @property
    def rejected(self) -> list[ReceivedCallback]:
        """The callbacks whose sign was missing or wrong."""
        return [cb for cb in self.received if not cb.verified]

    def for_trade_no(self, trade_no: str) -> list[ReceivedCallback]:
        """Every callback received for *trade_no*, in order."""
        return [cb for cb in self.received if cb.trade_no == trade_no]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection."""
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await serve_lifespan(receive, send)
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if message["type"] != "http.request" or not message.get("more_body"):
                break
        callback = self._record(body)
        if self._respond is not None:
            status, answer = self._respond(callback)
        else:
            status, answer = ACCEPTED if callback.verified else (400, b"bad sign")
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"text/plain"),
                    (b"content-length", str(len(answer)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": answer})

    def _record(self, body: bytes) -> ReceivedCallback:
        try:
            parsed = json.loads(body, parse_float=Decimal)
        except (ValueError, RecursionError):
            parsed = None
        fields = parsed if isinstance(parsed, dict) else None
        verified = fields is not None and verify(
            fields, self._secret, fields.get(SIGN_FIELD)
        )
        trade_no = (fields or {}).get("tradeNo")
        key = trade_no if isinstance(trade_no, str) else ""
        self._deliveries[key] = self._deliveries.get(key, 0) + 1
        callback = ReceivedCallback(
            fields=fields,
            verified=verified,
            delivery=self._deliveries[key],
            body=body,
        )
        self.received.append(callback)
        return callback
