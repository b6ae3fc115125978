"""The asyncio SDK for the Vexora payment gateway.

Payouts to KBZPay and WavePay wallets, their status, the merchant's
balance, pay-ins, and the gateway's signed callbacks.
"""

from __future__ import annotations

from ._client import VexoraClient
from ._converter import make_converter
from ._ledger import Claim, EntryState, Ledger, LedgerEntry, MemoryLedger
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
from ._signer import canonical_string, sign, verify
from ._sqlite_ledger import SQLiteLedger
from ._trade_no import new_trade_no
from ._version import __version__
from .exceptions import (
    ConflictingRequestError,
    ConnectError,
    DecodingError,
    GatewayError,
    HTTPStatusError,
    InvalidRequestError,
    LedgerError,
    OutcomeUnknown,
    PayoutOutcomeUnknown,
    RequestRejected,
    RequestTimeout,
    SignatureError,
    TransportError,
    VexoraError,
)


__all__ = [
    "Balance",
    "BankCode",
    "Call",
    "Claim",
    "ConflictingRequestError",
    "ConnectError",
    "DecodingError",
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
    "MemoryLedger",
    "Middleware",
    "Operation",
    "OutcomeUnknown",
    "PayoutOutcomeUnknown",
    "PayoutRequest",
    "PayoutResult",
    "PayoutStatus",
    "RequestRejected",
    "RequestTimeout",
    "RetryPolicy",
    "SQLiteLedger",
    "SignatureError",
    "StatusKind",
    "TransactionStatus",
    "TransportError",
    "VexoraClient",
    "VexoraError",
    "__version__",
    "canonical_string",
    "make_converter",
    "new_trade_no",
    "sign",
    "verify",
]
