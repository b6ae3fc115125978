"""The asyncio SDK for the Vexora payment gateway.

Payouts to KBZPay and WavePay wallets, their status, the merchant's
balance, pay-ins, and the gateway's signed callbacks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

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
from ._notifications import (
    DepositNotification,
    Notification,
    PayoutNotification,
    parse_notification,
)
from ._operations import Operation
from ._receiver import (
    MemoryNotificationStore,
    NotificationReceiver,
    NotificationStore,
    ReceiverResponse,
)
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
from .ledgers import (
    LAZY,
    Claim,
    EntryState,
    Ledger,
    LedgerEntry,
    MemoryLedger,
    SQLiteLedger,
    load,
)


if TYPE_CHECKING:
    from ._redis_notifications import RedisNotificationStore
    from .ledgers import PostgresLedger, RedisLedger


__all__ = [
    "Balance",
    "BankCode",
    "BatchProgress",
    "Call",
    "Claim",
    "ClientClosedError",
    "ConflictingRequestError",
    "ConnectError",
    "DecodingError",
    "DepositNotification",
    "DepositRequest",
    "DepositResult",
    "DepositStatus",
    "EntryState",
    "GatewayError",
    "HTTPStatusError",
    "InvalidRequestError",
    "Ledger",
    "LedgerEntry",
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


def __getattr__(name: str) -> object:
    # The Redis and PostgreSQL classes import their drivers: only on use.
    if name in LAZY:
        return load(name)
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
