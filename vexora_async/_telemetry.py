"""What the metric adapters share: event dispatch, bounded labels, buckets.

A metric's labels must come from a small, fixed set: never a tradeNo, an
account, a name, nor a string the gateway chose (a hostile or broken
gateway could otherwise mint one time series per answer).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import events
from ._codes import ResponseCode
from ._models import TransactionStatus


if TYPE_CHECKING:
    from collections.abc import Callable


#: The method an adapter handles each kind of event with, if it has one.
_HANDLER_NAMES: dict[type, str] = {
    events.CallStarted: "_call_started",
    events.CallFinished: "_call_finished",
    events.AttemptFinished: "_attempt_finished",
    events.RetryScheduled: "_retry_scheduled",
    events.ReconciliationQuery: "_reconciliation_query",
    events.Resubmitted: "_resubmitted",
    events.LedgerEvent: "_ledger_event",
    events.LimiterWait: "_limiter_waited",
    events.CallbackHandled: "_callback_handled",
}


class EventAdapter:
    """An ``on_event`` hook that hands each event to its own method.

    A subclass defines the methods of :data:`_HANDLER_NAMES` for the events
    it handles and calls ``super().__init__()``; any other event (one it
    has no method for, or a subclass of an event type) is ignored.
    """

    def __init__(self) -> None:
        # Bound once, here: a hook runs for every event of every call, so
        # each event costs one dict lookup.
        self._handlers: dict[type, Callable[[Any], None]] = {
            kind: getattr(self, name)
            for kind, name in _HANDLER_NAMES.items()
            if hasattr(self, name)
        }

    def __call__(self, event: events.Event) -> None:
        """Handle one event (the SDK calls this; so may a test)."""
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(event)


#: Seconds; a call's default deadline is 60 s.
DURATION_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)
#: Seconds an attempt queued in the SDK's limiter for a connection.
WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0)

#: The calls that count in the payouts counter: one per create_payout.
PAYOUT_OPERATION = "create_payout"

_CODES = frozenset(code.value for code in ResponseCode)


def gateway_code_label(code: str | None) -> str:
    """Return *code* if it is one of the envelope's known codes.

    ``"none"`` when no envelope was read, ``"other"`` for any other code.
    """
    if code is None:
        return "none"
    return code if code in _CODES else "other"


def http_status_label(status: int | None) -> str:
    """Return the HTTP status as a label (``"none"`` when no answer came)."""
    if status is None or not 100 <= status <= 599:  # noqa: PLR2004 - HTTP's range
        return "none"
    return str(status)


def status_kind_label(status: str | None) -> str:
    """Return what a callback's status code means (``"none"`` when unread)."""
    if status is None:
        return "none"
    return TransactionStatus(status).kind.value


def kind_label(kind: str | None) -> str:
    """Return a callback's kind (``"payout"``, ``"deposit"``) or ``"none"``."""
    return kind if kind in ("payout", "deposit") else "none"
