"""The asyncio SDK for the Vexora payment gateway.

Payouts to KBZPay and WavePay wallets, their status, the merchant's
balance, pay-ins, and the gateway's signed callbacks.
"""

from __future__ import annotations

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
from ._signer import canonical_string, sign, verify
from ._trade_no import new_trade_no
from ._version import __version__
from .exceptions import (
    ConflictingRequestError,
    ConnectError,
    DecodingError,
    GatewayError,
    HTTPStatusError,
    InvalidRequestError,
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
    "ConflictingRequestError",
    "ConnectError",
    "DecodingError",
    "DepositRequest",
    "DepositResult",
    "DepositStatus",
    "GatewayError",
    "HTTPStatusError",
    "InvalidRequestError",
    "Middleware",
    "Operation",
    "OutcomeUnknown",
    "PayoutOutcomeUnknown",
    "PayoutRequest",
    "PayoutResult",
    "PayoutStatus",
    "RequestRejected",
    "RequestTimeout",
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
