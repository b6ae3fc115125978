"""Every exception the SDK raises.

Nothing else escapes a call: httpx, json, cattrs and lookup errors are
caught at the edge and re-raised as one of these, with the original kept as
``__cause__``.

The tree::

    VexoraError                      base of everything below
    ├── InvalidRequestError          bad input; nothing was sent
    ├── ConflictingRequestError      same tradeNo, different payload; nothing sent
    │   └── TradeNoCollision         the gateway holds the tradeNo for another payout
    ├── LedgerError                  the ledger could not claim a tradeNo; nothing sent
    ├── ClientClosedError            the client is closed; nothing was sent
    ├── TransportError               the HTTP exchange failed
    │   ├── ConnectError             never reached the gateway (safe to retry)
    │   └── RequestTimeout           a read-only call timed out
    ├── HTTPStatusError              non-2xx answer (.status_code, .body_excerpt)
    ├── DecodingError                the answer is not the documented envelope
    ├── GatewayError                 the gateway answered a code other than 0000
    │   └── RequestRejected          code 8000: this *request* was refused
    ├── OutcomeUnknown               a create may or may not have happened
    │   └── PayoutOutcomeUnknown     ... for a payout (.trade_no)
    └── NotificationError            a callback body is refused (.http_status)
        ├── SignatureError           its sign is missing or wrong
        ├── MalformedNotification    not UTF-8, JSON, an object; a field missing
        │   └── NotificationTooLarge its body is over the size cap
        └── StaleNotification        older than the receiver's optional max_age

:attr:`VexoraError.may_have_executed` answers the question money turns on
for every error of a create: may the gateway have executed it?

:class:`OutcomeUnknown` is deliberately *not* a :class:`GatewayError`: code
that treats gateway errors as "the payout failed" must never see an unknown
outcome there. An unknown payout may have been executed. Resolve it with
:meth:`vexora_async.VexoraClient.get_payout` under the **same** ``tradeNo``;
never resend it under a new one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any


if TYPE_CHECKING:
    from decimal import Decimal


def _rebuild(cls: type[VexoraError], args: tuple[Any, ...]) -> VexoraError:
    """Recreate an error for :mod:`pickle` without calling its ``__init__``."""
    # __init__ signatures differ per class (keyword-only, required); the
    # attributes come back through __setstate__ from the instance __dict__.
    return cls.__new__(cls, *args)


class VexoraError(Exception):
    """Base class of every error raised by vexora_async.

    Carries the identity of the request it belongs to, where there is one:
    *operation* (such as ``"create_payout"``) and *trade_no*.

    Every error pickles with its attributes, so it crosses process
    boundaries (``concurrent.futures.ProcessPoolExecutor``, task queues)
    as itself. The cause and the traceback are not pickled, as with any
    exception.

    :attr:`may_have_executed` tells whether the create that raised it may
    have been executed by the gateway.
    """

    operation: str | None
    trade_no: str | None

    def __init__(
        self,
        message: str,
        *,
        operation: str | None = None,
        trade_no: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.operation = operation
        self.trade_no = trade_no

    def __str__(self) -> str:
        where = [
            f"{name}={value}"
            for name, value in (
                ("operation", self.operation),
                ("trade_no", self.trade_no),
            )
            if value is not None
        ]
        return f"{self.message} ({', '.join(where)})" if where else self.message

    @property
    def may_have_executed(self) -> bool:
        """Tell whether the gateway may have executed the call that raised this.

        ``False`` only when the error proves that this call executed
        nothing: it sent nothing (:class:`InvalidRequestError`,
        :class:`ConflictingRequestError`, :class:`LedgerError`,
        :class:`ConnectError`, :class:`ClientClosedError`), the gateway
        refused it and a status query confirmed that it does not hold the
        tradeNo (:class:`RequestRejected` with ``confirmed``), or another
        transaction holds the tradeNo (:class:`TradeNoCollision`). An error
        of a read-only call (a status query, the balance) is ``False`` too:
        a read executes nothing, and says nothing about the payout it asked
        about. Everything else is ``True``: keep the payout processing and
        resolve it under the same tradeNo. The table is in
        :doc:`/errors`.
        """
        # Imported here: the money rules import this module.
        from ._outcomes import Executed, verdict

        return verdict(self) is not Executed.NO

    def __reduce__(self) -> tuple[Any, ...]:
        # The default (cls(*args)) cannot call our keyword-only __init__s.
        return (_rebuild, (type(self), self.args), dict(self.__dict__))


class InvalidRequestError(VexoraError, ValueError):
    """The request is invalid; nothing was sent.

    *field* names the offending field (``None`` for the request as a whole).
    """

    def __init__(self, field: str | None, reason: str) -> None:
        message = f"{field}: {reason}" if field else reason
        super().__init__(message)
        self.field = field
        self.reason = reason


class ConflictingRequestError(VexoraError):
    """A tradeNo was reused with a different payload; nothing was sent.

    One tradeNo is one logical payout. A different amount, account, name or
    bank under the same tradeNo is a bug in the caller, never a retry.
    """


class TradeNoCollision(ConflictingRequestError):
    """The gateway holds this tradeNo for a *different* transaction.

    A status query found the tradeNo, but with another amount (or account)
    than the request: another payout already owns it, made by another
    environment or service sharing the merchant number, or before a
    database reset. Your payout was **not** made under this tradeNo, and the
    SDK sent nothing more after finding out. It is neither a result nor a
    refusal: do not mark the payout failed and pay it again under a new
    tradeNo without finding out who owns this one. Namespace tradeNos per
    environment and service so that this cannot happen.

    *requested_amount* is the request's, *found_amount* the one the
    gateway's answer carries (``None`` when the mismatch is in another
    field, named by *field*).
    """

    def __init__(
        self,
        message: str,
        *,
        trade_no: str,
        field: str,
        requested_amount: Decimal,
        found_amount: Decimal | None,
        operation: str | None = None,
    ) -> None:
        super().__init__(message, operation=operation, trade_no=trade_no)
        self.trade_no: str = trade_no
        self.field = field
        self.requested_amount = requested_amount
        self.found_amount = found_amount


class LedgerError(VexoraError):
    """The ledger failed while claiming a tradeNo; nothing was sent.

    Raised when your ledger's store (SQLite, Redis, ...) is unavailable
    before the request is sent. A failure to *record* an outcome after
    sending does not raise this: the outcome is returned (or raised) as it
    is, and the failure is logged.
    """


_CLOSED = "the client is closed; nothing was sent; retry on a live client"


class ClientClosedError(VexoraError):
    """A call on a closed client, or one the client's closing cut short.

    Nothing was sent by this call (a create cut after it may have been sent
    is an :class:`OutcomeUnknown` instead), so it is safe to make the same
    call again, same tradeNo, on a client that is open: a worker shutting
    down mid-job should hand the job back for a retry, not fail it.
    """

    def __init__(
        self,
        message: str = _CLOSED,
        *,
        operation: str | None = None,
        trade_no: str | None = None,
    ) -> None:
        super().__init__(message, operation=operation, trade_no=trade_no)


class TransportError(VexoraError):
    """The HTTP exchange with the gateway failed.

    *sent* tells whether the request may have reached the gateway. A plain
    :class:`TransportError` (the connection was lost after sending) is only
    raised for read-only calls; for a create it becomes an
    :class:`OutcomeUnknown`.
    """

    sent: bool = True


class ConnectError(TransportError):
    """The gateway was never reached: refused, connect or pool timeout.

    The request provably was not sent, so nothing happened at the gateway.
    """

    sent = False


class RequestTimeout(TransportError):
    """A read-only call (status query, balance) timed out."""


class HTTPStatusError(VexoraError):
    """The gateway (or a proxy before it) answered a non-2xx status.

    *body_excerpt* is a short, redacted start of the body: long digit runs
    (account numbers) are masked.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        body_excerpt: str,
        retry_after: float | None = None,
        operation: str | None = None,
        trade_no: str | None = None,
    ) -> None:
        super().__init__(message, operation=operation, trade_no=trade_no)
        self.status_code = status_code
        self.body_excerpt = body_excerpt
        self.retry_after = retry_after


class DecodingError(VexoraError):
    """The gateway's answer is not the documented envelope.

    Not JSON, not an object, no ``code``, or ``data`` of the wrong shape.
    """


class GatewayError(VexoraError):
    """The gateway answered with a code other than ``0000``.

    *code* and *msg* are the gateway's own. For a create, only
    :class:`RequestRejected` reaches you; other codes (``5000``) make the
    outcome unknown.
    """

    def __init__(
        self,
        code: str,
        msg: str,
        *,
        operation: str | None = None,
        trade_no: str | None = None,
    ) -> None:
        super().__init__(
            f"gateway answered code {code}: {msg}",
            operation=operation,
            trade_no=trade_no,
        )
        self.code = code
        self.msg = msg


class RequestRejected(GatewayError):
    """Code ``8000``: the gateway refused this request.

    For a create, the transaction was not made. For a status query it only
    means the *query* failed (for example an unknown tradeNo); it says
    nothing about the payout itself.

    *confirmed* tells whether a status query confirmed that the gateway
    does not know the tradeNo (the default retry policy always asks). An
    unconfirmed refusal of a create (``verify_rejections=False``) may be a
    duplicate refusal of a tradeNo that an earlier run already paid: query
    it before you treat the payout as failed.
    """

    def __init__(
        self,
        code: str,
        msg: str,
        *,
        operation: str | None = None,
        trade_no: str | None = None,
        confirmed: bool = False,
    ) -> None:
        super().__init__(code, msg, operation=operation, trade_no=trade_no)
        self.confirmed = confirmed


class OutcomeUnknown(VexoraError):
    """A create was sent but its result cannot be known.

    The transaction may have been executed. Find out with a status query
    under the same tradeNo; do not resend under a new tradeNo.
    """

    def __init__(
        self,
        message: str,
        *,
        trade_no: str,
        operation: str | None = None,
    ) -> None:
        super().__init__(message, operation=operation, trade_no=trade_no)
        self.trade_no: str = trade_no


class PayoutOutcomeUnknown(OutcomeUnknown):
    """A payout was sent but its result cannot be known.

    It **may have been executed**: money may have left. Resolve it with
    ``await client.get_payout(trade_no)`` (or the client's reconciliation),
    and never resend it under a new tradeNo: that can pay the beneficiary
    twice.
    """


class NotificationError(VexoraError):
    """A gateway callback (notification) body is refused.

    Nothing in it is trusted. *http_status* is what a receiver answers
    (never ``OK``), so that the gateway delivers it again. The message never
    quotes the expected sign: an endpoint that told callers the right sign
    for their body would sign forgeries for them.
    """

    http_status: int = 400


class SignatureError(NotificationError):
    """A gateway callback's ``sign`` is missing or does not match.

    The body may be forged or altered, or the app secret is the wrong one.
    ``python -m vexora_async verify`` shows what was signed.
    """

    http_status = 403


class MalformedNotification(NotificationError):
    """A callback body is not what the gateway documents.

    Not UTF-8, not JSON, not a JSON object, a duplicated key, or a required
    field (``tradeNo``, ``status``, ``amount``) missing or of the wrong type.
    """


class NotificationTooLarge(MalformedNotification):
    """A callback body is larger than the configured cap (*max_bytes*)."""

    http_status = 413


class StaleNotification(NotificationError):
    """A callback's ``timestamp`` is missing or older than the allowed age.

    Only raised when a receiver opts in with ``max_age``: the gateway retries
    for 24 hours, so a short limit refuses its legitimate retries.
    """


__all__ = [
    "ClientClosedError",
    "ConflictingRequestError",
    "ConnectError",
    "DecodingError",
    "GatewayError",
    "HTTPStatusError",
    "InvalidRequestError",
    "LedgerError",
    "MalformedNotification",
    "NotificationError",
    "NotificationTooLarge",
    "OutcomeUnknown",
    "PayoutOutcomeUnknown",
    "RequestRejected",
    "RequestTimeout",
    "SignatureError",
    "StaleNotification",
    "TradeNoCollision",
    "TransportError",
    "VexoraError",
]
