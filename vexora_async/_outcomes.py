"""The money rules: what one exchange's facts mean, decided in one place.

This module is sans-I/O: plain values in, a result or one of our errors
out. It never imports httpx or asyncio, so every rule here is tested with
plain values (``tests/test_outcomes.py`` states the table) and every layer
above asks it instead of keeping its own list:

* the exchange hands it the facts of one attempt (:class:`TransportFailure`
  or :class:`HTTPAnswer`) and gets an :class:`Outcome` back;
* the retry layer asks :func:`read_is_retryable` and
  :func:`create_is_resendable`, and turns a status query's answer into the
  create's result with :func:`adopt_found`;
* the idempotency layer and the batch ask :func:`verdict` whether a failed
  create may have executed.

The rules, for a create (a payout or a pay-in):

================================================  =================  ==========
what happened                                     error              executed
================================================  =================  ==========
nothing left (connect refused/timeout, no slot)   ConnectError       no
the client was closed and nothing left            ClientClosedError  no
HTTP 200, code ``0000``, readable, our tradeNo,   (the result)       yes
the request's amount (or no amount)
HTTP 200, code ``8000`` about our tradeNo         RequestRejected    no [#]_
HTTP 200, code ``5000`` or any other code         OutcomeUnknown     maybe
HTTP 200, unreadable (not JSON, duplicate keys,   OutcomeUnknown     maybe
another tradeNo whatever the code, another
amount, over the size cap, cut off by the
deadline)
any other HTTP status (429 and 503 included)      OutcomeUnknown     maybe
the exchange failed after sending (timeout,       OutcomeUnknown     maybe
connection lost, deadline, cancelled)
================================================  =================  ==========

.. [#] This attempt was refused; the create as a whole is ``no`` only once
   a status query confirmed that the gateway does not hold the tradeNo
   (``RequestRejected.confirmed``): the refusal may be the duplicate
   refusal of a payout made earlier. :func:`verdict` reads the error so.

The gateway answers its own refusals as HTTP 200 with code ``8000``; a
redirect, a 404, a 409, even a 503 or a 429 is not such an answer. Its
documentation says nothing about HTTP statuses, and a proxy or a load
balancer in front of it answers 503 after it forwarded the request (an
upstream reset, an upstream timeout shorter than the gateway's work), so
once a create may have left, only the gateway's readable envelope says
what happened.

A create's answer that carries an amount is checked as a payout found by
a status query is: a different amount is not this request's answer (a
proxy that mixed up answers), so the outcome is unknown, and the status
query that reconciles it says what the gateway holds.

A payout found by a status query is reported as ours only when it is *this*
payout: its amount (``orderAmount`` where the answer has it, else
``amount``) equals the request's as a Decimal, and any account field the
answer carries matches. Otherwise it is a :class:`TradeNoCollision`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

import attrs

from ._codes import ResponseCode
from ._models import (
    DepositResult,
    DepositStatus,
    Envelope,
    PayoutResult,
    PayoutStatus,
    StatusKind,
)
from ._operations import Operation, outcome_unknown
from .events import CallOutcome
from .exceptions import (
    ClientClosedError,
    ConflictingRequestError,
    ConnectError,
    DecodingError,
    GatewayError,
    HTTPStatusError,
    InvalidRequestError,
    LedgerError,
    OutcomeUnknown,
    RequestRejected,
    RequestTimeout,
    TradeNoCollision,
    TransportError,
    VexoraError,
)


if TYPE_CHECKING:
    from collections.abc import Callable

    from ._converter import WireCodec


class Executed(enum.Enum):
    """May the gateway have executed a create? The question money turns on."""

    NO = "no"
    MAYBE = "maybe"
    YES = "yes"


class Phase(enum.Enum):
    """How far an exchange got before its transport failed."""

    #: Nothing reached the gateway: connect refused or timed out, no free
    #: connection, a proxy refused, the URL could not be used.
    NOT_SENT = "not_sent"
    #: Some or all of the request may have reached the gateway.
    MAYBE_SENT = "maybe_sent"


#: Statuses after which a read-only call is worth another try.
TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
#: The one status that carries the gateway's own answer.
ANSWER_STATUS = 200
#: Wire fields of a query answer that, when present and unmasked, must match
#: the request's for the found transaction to be ours.
_IDENTITY_FIELDS = ("bankCode", "bankNumber", "name", "wayCode")
#: The labels of the calls that execute nothing.
_READS = frozenset(op.label for op in Operation if not op.creates)


@attrs.frozen
class CallIdentity:
    """Which call an exchange belongs to: names its errors carry."""

    operation: Operation
    trade_no: str | None
    #: The name users called (``resolve_payout`` runs the create's rules).
    label: str
    #: A create's wire fields, which its answer is checked against.
    params: Mapping[str, str] | None = None


@attrs.frozen
class TransportFailure:
    """The facts of an exchange whose transport failed."""

    phase: Phase
    timed_out: bool
    reason: str


@attrs.frozen
class HTTPAnswer:
    """The facts of an exchange that got an HTTP answer."""

    status: int
    #: Its repr shows the size only: an answer may echo personal data.
    body: bytes = attrs.field(repr=lambda body: f"<{len(body)} bytes>")
    retry_after: float | None = None
    #: Why *body* is not the whole answer (over the size cap, an encoding
    #: we cannot read), or None.
    problem: str | None = None


@attrs.frozen
class Outcome:
    """What an exchange means: exactly one of *result* and *error* is set."""

    executed: Executed
    result: object = None
    error: VexoraError | None = None
    #: The envelope's ``code``, when the answer had a readable one.
    code: str | None = None


def interpret(  # noqa: PLR0911 - one return per row of the table above
    facts: TransportFailure | HTTPAnswer,
    who: CallIdentity,
    codec: WireCodec,
    redact: Callable[[str], str],
) -> Outcome:
    """Decide what one exchange's *facts* mean for *who*; see the module doc.

    *redact* cleans gateway-supplied text (it may echo the secret or an
    account number) before it goes into an error message.
    """
    if isinstance(facts, TransportFailure):
        return _transport(facts, who)
    if facts.status != ANSWER_STATUS:
        return _status(facts, who, redact)
    try:
        envelope = _envelope(facts, codec)
        if envelope.code == ResponseCode.OK:
            result = _result(envelope, who, codec)
            return Outcome(Executed.YES, result=result, code=envelope.code)
    except DecodingError as exc:
        if who.operation.creates:
            return _unknown(who, f"the answer could not be read: {exc}", exc)
        exc.operation, exc.trade_no = who.label, who.trade_no
        return Outcome(Executed.NO, error=exc)
    other = _other_trade_no(envelope, who)
    if other is not None:
        # A refusal (or any answer) about another transaction is not an
        # answer about ours, whatever its code says.
        reason = f"the answer (code {envelope.code}) is about tradeNo {other!r}"
        if who.operation.creates:
            return attrs.evolve(_unknown(who, reason), code=envelope.code)
        misrouted = DecodingError(reason, operation=who.label, trade_no=who.trade_no)
        return Outcome(Executed.NO, error=misrouted, code=envelope.code)
    msg = redact(envelope.msg)
    if envelope.code == ResponseCode.REJECTED:
        error: VexoraError = RequestRejected(
            envelope.code, msg, operation=who.label, trade_no=who.trade_no
        )
        return Outcome(Executed.NO, error=error, code=envelope.code)
    if who.operation.creates:
        # 5000 ("do NOT treat as failed") and any code the docs do not
        # define: the transaction may exist.
        unknown = _unknown(who, f"the gateway answered code {envelope.code}: {msg}")
        return attrs.evolve(unknown, code=envelope.code)
    error = GatewayError(envelope.code, msg, operation=who.label, trade_no=who.trade_no)
    return Outcome(Executed.NO, error=error, code=envelope.code)


def _envelope(facts: HTTPAnswer, codec: WireCodec) -> Envelope:
    if facts.problem is not None:
        raise DecodingError(facts.problem)
    return codec.decode_envelope(facts.body)


def _transport(facts: TransportFailure, who: CallIdentity) -> Outcome:
    if facts.phase is Phase.NOT_SENT:
        error: VexoraError = ConnectError(
            f"could not reach the gateway ({facts.reason}); nothing was sent",
            operation=who.label,
            trade_no=who.trade_no,
        )
        return Outcome(Executed.NO, error=error)
    if who.operation.creates:
        return _unknown(who, f"the exchange failed after sending ({facts.reason})")
    kind = RequestTimeout if facts.timed_out else TransportError
    what = "did not answer in time" if facts.timed_out else "exchange failed"
    error = kind(
        f"the gateway {what} ({facts.reason})",
        operation=who.label,
        trade_no=who.trade_no,
    )
    return Outcome(Executed.NO, error=error)


def _status(
    facts: HTTPAnswer, who: CallIdentity, redact: Callable[[str], str]
) -> Outcome:
    status = facts.status
    excerpt = excerpt_of(facts.body, redact)
    error = HTTPStatusError(
        f"the gateway answered HTTP {status}: {excerpt!r}",
        status_code=status,
        body_excerpt=excerpt,
        retry_after=facts.retry_after,
        operation=who.label,
        trade_no=who.trade_no,
    )
    if who.operation.creates:
        # 429 and 503 too: a proxy answers them after forwarding as well.
        # The status error rides along as the cause, for its Retry-After.
        return _unknown(
            who,
            f"the gateway (or a proxy in front of it) answered HTTP {status}, "
            "which does not say whether the request was carried out",
            error,
        )
    return Outcome(Executed.NO, error=error)


_EXCERPT_CHARS = 200


def excerpt_of(body: bytes, redact: Callable[[str], str]) -> str:
    """Return a short, redacted start of an answer's body for a message."""
    text = body[: _EXCERPT_CHARS * 4].decode("utf-8", errors="replace")
    return redact(text)[:_EXCERPT_CHARS]


def _result(envelope: Envelope, who: CallIdentity, codec: WireCodec) -> object:
    result: object = codec.decode_data(envelope, who.operation.result_type)
    echoed = getattr(result, "trade_no", None)
    if who.trade_no is not None and echoed != who.trade_no:
        # An answer about another transaction is not an answer about ours.
        msg = f"the answer is about tradeNo {echoed!r}, not ours"
        raise DecodingError(msg)
    if who.params is not None and isinstance(result, (PayoutResult, DepositResult)):
        comparison = compare_found(who.params, result)
        if comparison.match is Match.DIFFERENT:
            # Accepting it would report a payout of another amount as this
            # one; the status query that follows says what the gateway holds.
            msg = f"the answer is not this request's ({describe(comparison)})"
            raise DecodingError(msg)
    return result


def _other_trade_no(envelope: Envelope, who: CallIdentity) -> object:
    """Return the tradeNo a non-``0000`` answer names, if it is not ours."""
    data = envelope.data
    if who.trade_no is None or not isinstance(data, Mapping):
        return None
    echoed = data.get("tradeNo")
    return None if echoed is None or echoed == who.trade_no else echoed


def _unknown(
    who: CallIdentity, reason: str, cause: BaseException | None = None
) -> Outcome:
    error = outcome_unknown(who.operation, who.trade_no, reason, label=who.label)
    error.__cause__ = cause
    return Outcome(Executed.MAYBE, error=error)


# -- what the layers above ask ----------------------------------------------


def verdict(error: BaseException) -> Executed:
    """Tell whether the call that ended with *error* may have executed.

    This is :attr:`~vexora_async.VexoraError.may_have_executed`. Only errors
    that prove nothing was done answer ``NO``: nothing was sent, a refusal
    that a status query confirmed, a tradeNo held by another transaction,
    or any error of a read-only call (a read executes nothing). Everything
    else, an unknown outcome, an unconfirmed refusal (maybe the duplicate
    refusal of a paid payout), a cancellation, an error from your own
    middleware, is ``MAYBE``.
    """
    if isinstance(error, VexoraError) and error.operation in _READS:
        return Executed.NO
    if isinstance(error, RequestRejected):
        return Executed.NO if error.confirmed else Executed.MAYBE
    no = (
        ConnectError,
        ClientClosedError,
        InvalidRequestError,
        ConflictingRequestError,
        LedgerError,
    )
    return Executed.NO if isinstance(error, no) else Executed.MAYBE


def create_is_resendable(error: VexoraError) -> bool:
    """Tell whether a create may be sent again blindly after *error*.

    Only when it provably never left: the gateway was never reached. Any
    answer, a 429 or a 503 included, may come from a proxy that forwarded
    it, so the status query comes first (see the module doc).
    """
    return isinstance(error, ConnectError)


def read_is_retryable(error: VexoraError) -> bool:
    """Tell whether a read-only call failing with *error* is worth retrying."""
    if isinstance(error, HTTPStatusError):
        return error.status_code in TRANSIENT_STATUS
    if isinstance(error, RequestRejected):
        return False
    if isinstance(error, GatewayError):
        return error.code == ResponseCode.SYSTEM_EXCEPTION
    return isinstance(error, (TransportError, DecodingError))


def call_outcome(error: BaseException | None) -> CallOutcome:  # noqa: PLR0911 - a table
    """Name how a logical call ended, for events and metrics."""
    if error is None:
        return CallOutcome.ACCEPTED
    if not isinstance(error, Exception):  # cancelled (or interrupted)
        return CallOutcome.CANCELLED
    if isinstance(error, OutcomeUnknown):
        return CallOutcome.UNKNOWN
    if isinstance(error, RequestRejected):
        return CallOutcome.REJECTED
    if isinstance(error, ConflictingRequestError):
        return CallOutcome.CONFLICT
    if verdict(error) is Executed.NO:
        return CallOutcome.NOT_SENT
    return CallOutcome.ERROR


# -- is the payout a query found *this* payout? -----------------------------


class Match(enum.Enum):
    """How a transaction found by a status query compares with a request."""

    SAME = "same"
    DIFFERENT = "different"
    #: The answer carries no amount that can be compared.
    UNCHECKED = "unchecked"


@attrs.frozen
class Comparison:
    """The result of :func:`compare_found`."""

    match: Match
    field: str | None = None
    requested_amount: Decimal | None = None
    found_amount: Decimal | None = None


def compare_found(
    params: Mapping[str, str],
    found: PayoutStatus | DepositStatus | PayoutResult | DepositResult,
) -> Comparison:
    """Compare a found transaction (or a create's answer) with wire *params*.

    The amount ordered (``orderAmount``) is fixed at creation, so it is
    compared where the answer has it; else ``amount``, unless the status is
    partial (a partial pay-in moves less than was ordered, which is not a
    collision, so nothing can be checked). Amounts compare as Decimals
    (``"777.00"``, ``"777"`` and ``777.0`` are equal). Account fields are
    compared when the answer carries them unmasked.
    """
    requested = _decimal(params.get("amount"))
    found_amount = getattr(found, "order_amount", None)
    partial = found.status is not None and found.status.kind is StatusKind.PARTIAL
    if found_amount is None and not partial:
        found_amount = found.amount
    for field in _IDENTITY_FIELDS:
        theirs, ours = found.raw.get(field), params.get(field)
        if isinstance(theirs, str) and ours and "*" not in theirs and theirs != ours:
            return Comparison(Match.DIFFERENT, field, requested, found_amount)
    if requested is None or found_amount is None:
        return Comparison(Match.UNCHECKED, "amount", requested, found_amount)
    if found_amount != requested:
        return Comparison(Match.DIFFERENT, "amount", requested, found_amount)
    return Comparison(Match.SAME, None, requested, found_amount)


def adopt_found(
    who: CallIdentity,
    params: Mapping[str, str],
    found: object,
    codec: WireCodec,
    *,
    adopt_unchecked: bool,
) -> object:
    """Turn a status query's answer into the create's result, if it is ours.

    Raises :class:`~vexora_async.TradeNoCollision` when it is another
    transaction, and an unknown outcome when it cannot be checked (unless
    *adopt_unchecked*). The result is built from the query's ``data`` by the
    same converter as a create's answer, so no field is lost on this path.
    """
    if not isinstance(found, (PayoutStatus, DepositStatus)):
        msg = f"a status query answered {type(found).__name__}"
        raise DecodingError(msg)
    comparison = compare_found(params, found)
    if comparison.match is Match.DIFFERENT:
        raise collision(who, comparison)
    if comparison.match is Match.UNCHECKED and not adopt_unchecked:
        raise outcome_unknown(
            who.operation,
            who.trade_no,
            "the gateway knows this tradeNo, but its answer carries no amount "
            "to check that it is this request (RetryPolicy(adopt_unchecked=True) "
            "adopts such answers)",
            label=who.label,
        )
    return result_from_data(who.operation, found.raw, codec)


def result_from_data(
    operation: Operation, data: Mapping[str, Any], codec: WireCodec
) -> object:
    """Build a create's result record from a gateway ``data`` object."""
    envelope = Envelope(code=ResponseCode.OK.value, data=data)
    return codec.decode_data(envelope, operation.result_type)


def describe(comparison: Comparison) -> str:
    """Say how a found transaction differs from the request, for a message."""
    if comparison.field == "amount":
        return (
            f"amount {comparison.found_amount}, this request "
            f"{comparison.requested_amount}"
        )
    return f"another {comparison.field}"


def collision(who: CallIdentity, comparison: Comparison) -> TradeNoCollision:
    """Build the error for a tradeNo held by another transaction."""
    what = describe(comparison)
    return TradeNoCollision(
        f"the gateway holds this tradeNo for another transaction ({what}); this "
        "request was not made under it and nothing more was sent. Do not pay it "
        "again under a new tradeNo before finding out who owns this one; "
        "namespace tradeNos per environment and service",
        trade_no=who.trade_no or "",
        field=comparison.field or "amount",
        requested_amount=comparison.requested_amount or Decimal(0),
        found_amount=comparison.found_amount,
        operation=who.label,
    )


def _decimal(value: object) -> Decimal | None:
    if not isinstance(value, str):
        return None
    try:
        return Decimal(value)
    except InvalidOperation:
        return None
