"""The sandbox's transactions, and the scenario rules that decide their fate.

The default rules are deterministic, so a test picks the outcome it wants
through the data it sends:

=========================================  ==================================
payout whose ``bankNumber`` ends in         final status
=========================================  ==================================
``0029``                                   ``00029`` (failed; money returned)
``0015``                                   stays ``0015`` until ``settle()``
anything else                              ``0000`` (success)
=========================================  ==================================

=========================================  ==================================
deposit whose ``amount`` ends in            final status
=========================================  ==================================
``0029`` (for example 10029)               ``00029`` (failed)
``0015``                                   stays ``0015`` until ``settle()``
``0001``                                   ``0001`` (partial: half received)
anything else                              ``0000`` (success)
=========================================  ==================================
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import TypeAlias

import attrs

from vexora_async._models import TransactionStatus


#: The gateway reports local times without a zone; Myanmar is UTC+06:30.
GATEWAY_TZ = timezone(timedelta(hours=6, minutes=30))
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"

FAILED_SUFFIX = "0029"
PROCESSING_SUFFIX = "0015"
PARTIAL_SUFFIX = "0001"


class TransactionKind(enum.Enum):
    """Money out or money in."""

    PAYOUT = "payout"
    DEPOSIT = "deposit"


@attrs.define
class Transaction:
    """One payout or deposit as the sandbox holds it.

    *fields* are the wire fields the merchant sent (without ``timestamp``
    and ``sign``). *executions* is more than 1 only when duplicates are not
    refused. Read these in tests; do not change them (use ``settle``).
    """

    kind: TransactionKind
    trade_no: str
    platform_trade_no: str
    amount: Decimal
    fields: dict[str, str]
    created_at: datetime
    status: TransactionStatus = TransactionStatus.PROCESSING
    settled_at: datetime | None = None
    received_amount: Decimal | None = None
    executions: int = 1

    @property
    def notify_url(self) -> str:
        """Where this transaction's callback goes."""
        return self.fields["notifyUrl"]


#: Decides a transaction's final status when its settle delay is over;
#: ``None`` keeps it processing (until a test calls ``settle``).
Scenario: TypeAlias = Callable[[Transaction], TransactionStatus | None]


def default_scenario(transaction: Transaction) -> TransactionStatus | None:
    """Apply the documented rules: see this module's tables."""
    if transaction.kind is TransactionKind.PAYOUT:
        suffix = transaction.fields.get("bankNumber", "")
    else:
        suffix = format(transaction.amount, "f")
    if suffix.endswith(FAILED_SUFFIX):
        return TransactionStatus.FAILED
    if suffix.endswith(PROCESSING_SUFFIX):
        return None
    if transaction.kind is TransactionKind.DEPOSIT and suffix.endswith(PARTIAL_SUFFIX):
        return TransactionStatus.PARTIAL
    return TransactionStatus.SUCCESS


def local_time(epoch_ms: int) -> datetime:
    """Return the gateway-local time of an epoch in milliseconds."""
    return datetime.fromtimestamp(epoch_ms / 1000, tz=GATEWAY_TZ)


def message_for(status: TransactionStatus) -> str:
    """Return the ``message`` the gateway puts next to a status."""
    return {
        "0000": "SUCCESS",
        "0001": "PARTIAL SUCCESS",
        "0015": "Processing",
        "00029": "FAILED",
    }.get(status, "UNKNOWN")


def amount_text(amount: Decimal) -> str:
    """Write an amount as the gateway's callbacks do: ``"100"``."""
    return format(amount, "f")


def status_data(transaction: Transaction) -> dict[str, object]:
    """Return the ``data`` of a status query answer, with the documented drift."""
    data: dict[str, object] = {
        "tradeNo": transaction.trade_no,
        "platFormTradeNo": transaction.platform_trade_no,
        "status": str(transaction.status),
        "message": message_for(transaction.status),
        "remark": transaction.fields.get("remark", ""),
        # Query answers drift: a 2-decimal string here, floats below.
        "amount": format(transaction.amount, ".2f"),
        "orderAmount": float(transaction.amount),
        "createTime": transaction.created_at.strftime(TIME_FORMAT),
    }
    if transaction.received_amount is not None:
        data["payAmount"] = float(transaction.received_amount)
        if transaction.kind is TransactionKind.DEPOSIT:
            data["receivedAmount"] = float(transaction.received_amount)
    if transaction.settled_at is not None and transaction.status in {
        TransactionStatus.SUCCESS,
        TransactionStatus.PARTIAL,
    }:
        data["successTime"] = transaction.settled_at.strftime(TIME_FORMAT)
    return data


def callback_fields(transaction: Transaction) -> dict[str, str]:
    """Return a callback's fields, without ``timestamp`` and ``sign``."""
    moved = transaction.received_amount or transaction.amount
    fields = {
        "platFormTradeNo": transaction.platform_trade_no,
        "tradeNo": transaction.trade_no,
        "amount": amount_text(moved),
        "status": str(transaction.status),
        "message": message_for(transaction.status),
    }
    if transaction.settled_at is not None and transaction.status in {
        TransactionStatus.SUCCESS,
        TransactionStatus.PARTIAL,
    }:
        fields["successTime"] = transaction.settled_at.strftime(TIME_FORMAT)
    if transaction.kind is TransactionKind.DEPOSIT:
        for key in ("channelCode", "wayCode"):
            if transaction.fields.get(key):
                fields[key] = transaction.fields[key]
    return fields
