"""What the metric adapters share: bounded label values and buckets.

A metric's labels must come from a small, fixed set: never a tradeNo, an
account, a name, nor a string the gateway chose (a hostile or broken
gateway could otherwise mint one time series per answer).
"""

from __future__ import annotations

from ._codes import ResponseCode
from ._models import TransactionStatus


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
