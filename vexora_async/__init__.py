"""The asyncio SDK for the Vexora payment gateway.

Payouts to KBZPay and WavePay wallets, their status, the merchant's
balance, pay-ins, and the gateway's signed callbacks.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

from . import ledgers, notifications
from ._batch import BatchProgress, OutcomeKind, PayoutOutcome
from ._client import VexoraClient
from ._converter import make_converter
from ._middleware import Call, Middleware
from ._models import (
    Balance,
    BankCode,
    DepositRequest,
    DepositResult,
    DepositStatus,
    PayoutRequest,
    PayoutResult,
    PayoutStatus,
    StatusKind,
    TransactionStatus,
)
from ._operations import Operation
from ._retry import RetryPolicy
from ._secret import Secret
from ._signer import canonical_string, sign, verify
from ._trade_no import new_trade_no
from ._version import __version__
from .exceptions import (
    ClientClosedError,
    ConflictingRequestError,
    ConnectError,
    DecodingError,
    GatewayError,
    HTTPStatusError,
    InvalidRequestError,
    LedgerError,
    MalformedNotification,
    NotificationError,
    NotificationTooLarge,
    OutcomeUnknown,
    PayoutOutcomeUnknown,
    RequestRejected,
    RequestTimeout,
    SignatureError,
    StaleNotification,
    TradeNoCollision,
    TransportError,
    VexoraError,
)
from .ledgers import Ledger, MemoryLedger, SQLiteLedger
from .notifications import (
    DepositNotification,
    MemoryNotificationStore,
    Notification,
    NotificationReceiver,
    NotificationStore,
    PayoutNotification,
    ReceiverResponse,
    parse_notification,
)


if TYPE_CHECKING:
    from .ledgers import PostgresLedger, RedisLedger
    from .notifications import RedisNotificationStore


__all__ = [
    "Balance",
    "BankCode",
    "BatchProgress",
    "Call",
    "ClientClosedError",
    "ConflictingRequestError",
    "ConnectError",
    "DecodingError",
    "DepositNotification",
    "DepositRequest",
    "DepositResult",
    "DepositStatus",
    "GatewayError",
    "HTTPStatusError",
    "InvalidRequestError",
    "Ledger",
    "LedgerError",
    "MalformedNotification",
    "MemoryLedger",
    "MemoryNotificationStore",
    "Middleware",
    "Notification",
    "NotificationError",
    "NotificationReceiver",
    "NotificationStore",
    "NotificationTooLarge",
    "Operation",
    "OutcomeKind",
    "OutcomeUnknown",
    "PayoutNotification",
    "PayoutOutcome",
    "PayoutOutcomeUnknown",
    "PayoutRequest",
    "PayoutResult",
    "PayoutStatus",
    "PostgresLedger",
    "ReceiverResponse",
    "RedisLedger",
    "RedisNotificationStore",
    "RequestRejected",
    "RequestTimeout",
    "RetryPolicy",
    "SQLiteLedger",
    "Secret",
    "SignatureError",
    "StaleNotification",
    "StatusKind",
    "TradeNoCollision",
    "TransactionStatus",
    "TransportError",
    "VexoraClient",
    "VexoraError",
    "__version__",
    "canonical_string",
    "make_converter",
    "new_trade_no",
    "parse_notification",
    "sign",
    "verify",
]


#: The names behind an extra (their drivers are imported only on use).
_LAZY = {
    **dict.fromkeys(ledgers.LAZY, ledgers),
    **dict.fromkeys(notifications.LAZY, notifications),
}
#: Ledger plumbing that 0.1 exported here: name -> where it lives.
_MOVED = dict.fromkeys(("Claim", "EntryState", "LedgerEntry"), ledgers)


def __getattr__(name: str) -> object:
    if name in _LAZY:
        return getattr(_LAZY[name], name)
    if name in _MOVED:
        home = _MOVED[name].__name__
        warnings.warn(
            f"import {name} from {home}: vexora_async.{name} is deprecated "
            "and will be removed",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(_MOVED[name], name)
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
