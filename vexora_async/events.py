"""What the SDK tells your hooks: one record per thing that happened.

Pass ``VexoraClient(..., on_event=hook)`` (one callable or a sequence) and
each hook is called with these frozen records, synchronously, as they
happen. The OpenTelemetry, Prometheus and logging adapters are such hooks
(see :doc:`/observability`).

* :class:`CallStarted` and :class:`CallFinished` frame each logical call,
  at its edge: outside the idempotency layer, so they see the ledger's
  answer, every reconciliation query and the final outcome.
* :class:`AttemptFinished`, one per HTTP exchange; :class:`LimiterWait`
  when an attempt queued for a connection.
* :class:`RetryScheduled`, :class:`ReconciliationQuery` and
  :class:`Resubmitted`, from the retry layer.
* :class:`LedgerEvent`, from the idempotency layer.
* :class:`CallbackHandled`, from the callback receiver.

A hook that raises is logged and ignored: it never changes what happens to
the money. With no hook, the cost is one branch per call.

Records carry the tradeNo but never an account number, a name or the
secret. Do not put a tradeNo into a metric's attributes (one series per
payout); the adapters don't.
"""

from __future__ import annotations

import enum
import logging
from typing import TYPE_CHECKING, Union

import attrs


if TYPE_CHECKING:
    from collections.abc import Callable, Sequence


logger = logging.getLogger("vexora_async")


class CallOutcome(enum.Enum):
    """How a logical call ended."""

    #: The gateway answered code ``0000`` (for a create: accepted).
    ACCEPTED = "accepted"
    #: Code ``8000``: the request was refused.
    REJECTED = "rejected"
    #: A create that may or may not have executed (``OutcomeUnknown``).
    UNKNOWN = "unknown"
    #: The tradeNo belongs to another payload or transaction.
    CONFLICT = "conflict"
    #: Nothing was sent, or the gateway provably did not take it.
    NOT_SENT = "not_sent"
    #: Any other error (a query's unreadable answer, a code ``5000``...).
    ERROR = "error"
    #: The caller's task was cancelled.
    CANCELLED = "cancelled"


class LedgerAction(enum.Enum):
    """What the ledger did for a create."""

    CLAIMED = "claimed"
    #: Granted over another worker's claim whose lease ran out (a dead,
    #: stalled or partitioned worker): the call reconciles before it sends.
    #: Worth an alert.
    TAKEN_OVER = "taken_over"
    #: Granted over an entry whose outcome was unknown (a retry after an
    #: unknown outcome, ``resolve_payout``): routine reconciliation; the call
    #: asks the gateway before it sends.
    RESUMED = "resumed"
    #: Another worker holds the tradeNo in flight; nothing was sent.
    REFUSED_IN_FLIGHT = "refused_in_flight"
    #: Answered from the ledger (accepted or rejected before); nothing sent.
    ANSWERED = "answered"
    #: A write was refused because another worker took the tradeNo over.
    FENCED = "fenced"
    #: The store failed to record an outcome (the caller still got it).
    SETTLE_FAILED = "settle_failed"


@attrs.frozen(kw_only=True)
class CallStarted:
    """A logical call began (*operation* as the user called it)."""

    operation: str
    trade_no: str | None
    merchant_no: str


@attrs.frozen(kw_only=True)
class CallFinished:
    """A logical call ended.

    *attempts* counts HTTP exchanges (status queries included);
    *reconciled* tells whether a status query decided the outcome;
    *from_ledger* whether the ledger answered without a request;
    *gateway_code* is the last envelope code seen; *error_type* the class
    name of the error raised, if any; *elapsed* is in seconds.
    """

    operation: str
    trade_no: str | None
    merchant_no: str
    outcome: CallOutcome
    attempts: int
    reconciled: bool
    from_ledger: bool
    elapsed: float
    gateway_code: str | None = None
    error_type: str | None = None


@attrs.frozen(kw_only=True)
class AttemptFinished:
    """One HTTP exchange ended.

    *attempt_operation* is the gateway call this exchange made (a
    reconciliation sends ``get_payout`` within a ``create_payout``);
    *http_status* is ``None`` when no answer came; *may_have_executed* is
    the money rules' verdict (``"no"``, ``"maybe"``, ``"yes"``) for a
    create, ``None`` for a query.
    """

    operation: str
    attempt_operation: str
    trade_no: str | None
    attempt: int
    http_status: int | None
    gateway_code: str | None
    elapsed: float
    may_have_executed: str | None
    error_type: str | None = None


@attrs.frozen(kw_only=True)
class LimiterWait:
    """An attempt waited *waited* seconds for a free connection."""

    operation: str
    trade_no: str | None
    waited: float


@attrs.frozen(kw_only=True)
class RetryScheduled:
    """The retry layer will try again after *delay* seconds.

    *attempt* is the number of the next attempt, *of* the most there will
    be; *reason* the error's class name; *retry_after* the gateway's
    ``Retry-After``, if it sent one.
    """

    operation: str
    trade_no: str | None
    attempt: int
    of: int
    delay: float
    reason: str
    retry_after: float | None = None


class QueryResult(enum.Enum):
    """What a reconciliation's status query found."""

    FOUND = "found"
    NOT_FOUND = "not_found"
    FAILED = "failed"
    #: Found, but another transaction (TradeNoCollision).
    COLLISION = "collision"


@attrs.frozen(kw_only=True)
class ReconciliationQuery:
    """A status query asked about a create's unknown outcome."""

    operation: str
    trade_no: str | None
    query: int
    result: QueryResult


@attrs.frozen(kw_only=True)
class Resubmitted:
    """The gateway did not know the tradeNo: the create was sent again."""

    operation: str
    trade_no: str | None


@attrs.frozen(kw_only=True)
class LedgerEvent:
    """The ledger's part in a create (see :class:`LedgerAction`)."""

    operation: str
    trade_no: str | None
    action: LedgerAction


@attrs.frozen(kw_only=True)
class CallbackHandled:
    """The receiver answered one callback delivery.

    *kind* and *trade_no* are ``None`` when the body was refused before
    they could be read; *http_status* is the answer; *duplicate* tells
    whether the notification was handled before; *handler_time* is the
    handler's seconds (``None`` when it did not run).
    """

    kind: str | None
    trade_no: str | None
    status: str | None
    http_status: int
    duplicate: bool
    handler_time: float | None
    error_type: str | None = None


Event = Union[  # noqa: UP007 - a runtime alias on Python 3.10
    CallStarted,
    CallFinished,
    AttemptFinished,
    LimiterWait,
    RetryScheduled,
    ReconciliationQuery,
    Resubmitted,
    LedgerEvent,
    CallbackHandled,
]


def as_hooks(
    on_event: Callable[[Event], object] | Sequence[Callable[[Event], object]] | None,
) -> tuple[Callable[[Event], object], ...]:
    """Normalise the ``on_event`` option into a tuple of callables."""
    from .exceptions import InvalidRequestError

    if on_event is None:
        return ()
    if callable(on_event):
        return (on_event,)
    try:
        hooks = tuple(on_event)
    except TypeError:
        hooks = ()
    if not hooks and on_event:
        msg = "must be a callable or a sequence of them"
        raise InvalidRequestError("on_event", msg)
    for hook in hooks:
        if not callable(hook):
            raise InvalidRequestError("on_event", f"{hook!r} is not callable")
    return hooks


def emit(hooks: tuple[Callable[[Event], object], ...], event: Event) -> None:
    """Call every hook with *event*; a hook's failure is logged, never raised."""
    for hook in hooks:
        try:
            hook(event)
        # A hook is user code: whatever it raises must not reach the money.
        except Exception:  # noqa: PERF203 - a hook or two; each must be tried
            logger.exception("an on_event hook failed on %s", type(event).__name__)


class Trace:
    """One logical call's running tally, shared by the layers it crosses.

    Internal: the client makes one per call when hooks are set (else
    ``Call.trace`` is ``None`` and no layer does any of this).
    """

    __slots__ = (
        "attempts",
        "from_ledger",
        "gateway_code",
        "hooks",
        "operation",
        "reconciled",
        "trade_no",
    )

    def __init__(
        self,
        hooks: tuple[Callable[[Event], object], ...],
        operation: str,
        trade_no: str | None,
    ) -> None:
        self.hooks = hooks
        self.operation = operation
        self.trade_no = trade_no
        self.attempts = 0
        self.reconciled = False
        self.from_ledger = False
        self.gateway_code: str | None = None

    def emit(self, event: Event) -> None:
        """Send *event* to the hooks."""
        emit(self.hooks, event)


__all__ = [
    "AttemptFinished",
    "CallFinished",
    "CallOutcome",
    "CallStarted",
    "CallbackHandled",
    "Event",
    "LedgerAction",
    "LedgerEvent",
    "LimiterWait",
    "QueryResult",
    "ReconciliationQuery",
    "Resubmitted",
    "RetryScheduled",
]
