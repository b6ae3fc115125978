"""The records of a verified gateway callback: a payout's or a pay-in's."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar, Literal

import attrs

from vexora_async._models import BankCode, TransactionStatus


NotificationKind = Literal["payout", "deposit"]


def _raw_field() -> Any:
    return attrs.field(factory=dict, repr=False, eq=False)


@attrs.frozen(kw_only=True)
class _NotificationFields:
    """The fields every callback carries; see the two concrete records."""

    kind: ClassVar[NotificationKind]

    #: Your own transaction number, as sent in the request.
    trade_no: str
    #: The transaction's state: check :attr:`~vexora_async.TransactionStatus.is_final`
    #: before acting, and never move a final state back to processing.
    status: TransactionStatus
    #: The amount actually moved, in kyat; may be less than requested
    #: (partial pay-ins).
    amount: Decimal
    platform_trade_no: str | None = None
    message: str | None = None
    #: Gateway-local time, naive: the gateway does not say which zone.
    success_time: datetime | None = None
    #: The gateway's ``timestamp``, milliseconds since the epoch.
    timestamp: int | None = None
    #: The body exactly as received and verified. JSON numbers appear as
    #: their literal text (``"3.0000"``), as they were signed.
    raw: Mapping[str, Any] = _raw_field()

    @property
    def dedup_key(self) -> str:
        """Identify this (kind, tradeNo, status): one fact, however often sent.

        A JSON array, so that no trade number can collide with another's
        key; usable as-is as a database or Redis key.
        """
        return json.dumps(
            [self.kind, self.trade_no, str(self.status)],
            ensure_ascii=False,
            separators=(",", ":"),
        )


@attrs.frozen(kw_only=True)
class PayoutNotification(_NotificationFields):
    """A verified callback about a payout (disbursement).

    Fields: *trade_no*, *status* (a :class:`~vexora_async.TransactionStatus`), *amount*
    (the amount moved, a ``Decimal``), and, when sent, *platform_trade_no*,
    *message*, *success_time* (naive, gateway-local), *timestamp* (epoch
    milliseconds); *raw* is the body as verified.
    """

    kind: ClassVar[NotificationKind] = "payout"


@attrs.frozen(kw_only=True)
class DepositNotification(_NotificationFields):
    """A verified callback about a pay-in (deposit).

    The fields of :class:`PayoutNotification`, and *channel_code* and
    *way_code*: the pay-in's channel (``EWALLET``) and
    wallet (``KBZPAY``, ``WAVEPAY``), when the gateway sends them.
    """

    kind: ClassVar[NotificationKind] = "deposit"

    channel_code: str | None = None
    way_code: BankCode | None = None


#: Either record; use ``match`` or ``isinstance`` on it.
Notification = PayoutNotification | DepositNotification
