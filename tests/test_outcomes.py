"""The money rules as a table: one exchange's facts in, a verdict and an error out.

Each row is a case the gateway (or what stands between it and us) can
produce. ``_outcomes`` is pure, so these run without a network or a loop.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from vexora_async import (
    ClientClosedError,
    ConflictingRequestError,
    ConnectError,
    DecodingError,
    GatewayError,
    HTTPStatusError,
    InvalidRequestError,
    LedgerError,
    Operation,
    OutcomeUnknown,
    PayoutOutcomeUnknown,
    PayoutResult,
    PayoutStatus,
    RequestRejected,
    RequestTimeout,
    TradeNoCollision,
    TransportError,
    VexoraError,
)
from vexora_async._converter import WireCodec
from vexora_async._outcomes import (
    CallIdentity,
    Executed,
    HTTPAnswer,
    Match,
    Phase,
    TransportFailure,
    adopt_found,
    compare_found,
    create_is_resendable,
    interpret,
    read_is_retryable,
    verdict,
)

from tests.helpers import SECRET, envelope, payout_data


CODEC = WireCodec.create()
TRADE_NO = "VX20260331004567"
#: The create's wire fields its answer is checked against (payout_data's
#: amount, as a request sends it).
SENT = {"tradeNo": TRADE_NO, "amount": "100", "bankCode": "KBZPAY"}
CREATE = CallIdentity(Operation.CREATE_PAYOUT, TRADE_NO, "create_payout", SENT)
QUERY = CallIdentity(Operation.GET_PAYOUT, TRADE_NO, "get_payout")


def _redact(text: str) -> str:
    return text.replace(SECRET, "<secret>")


def body(obj: Any) -> bytes:
    """Encode an answer body."""
    return json.dumps(obj).encode()


OK_BODY = body(envelope(payout_data()))
NOT_SENT = TransportFailure(Phase.NOT_SENT, timed_out=True, reason="ConnectTimeout")
LOST = TransportFailure(Phase.MAYBE_SENT, timed_out=False, reason="RemoteProtocolError")
SLOW = TransportFailure(Phase.MAYBE_SENT, timed_out=True, reason="ReadTimeout")
DUPLICATE_CODE = (
    b'{"msg":"x","code":"8000","data":null,"code":"0000"}'  # last-wins says OK
)
DUPLICATE_STATUS = (
    b'{"code":"0000","msg":"ok","data":{"tradeNo":"VX20260331004567",'
    b'"status":"0000","status":"00029","amount":"100"}}'
)

#: (facts, error class for a create, verdict for a create, error class for a
#: status query). ``None`` as an error class means a result.
TABLE: dict[
    str, tuple[TransportFailure | HTTPAnswer, type | None, Executed, type | None]
] = {
    "connect refused": (NOT_SENT, ConnectError, Executed.NO, ConnectError),
    "lost after sending": (LOST, PayoutOutcomeUnknown, Executed.MAYBE, TransportError),
    "read timeout": (SLOW, PayoutOutcomeUnknown, Executed.MAYBE, RequestTimeout),
    "200 accepted": (HTTPAnswer(200, OK_BODY), None, Executed.YES, None),
    "200 code 8000": (
        HTTPAnswer(200, body(envelope(None, code="8000", msg="duplicate"))),
        RequestRejected,
        Executed.NO,
        RequestRejected,
    ),
    "200 code 5000": (
        HTTPAnswer(200, body(envelope(None, code="5000"))),
        PayoutOutcomeUnknown,
        Executed.MAYBE,
        GatewayError,
    ),
    "200 undocumented code": (
        HTTPAnswer(200, body(envelope(None, code="7777"))),
        PayoutOutcomeUnknown,
        Executed.MAYBE,
        GatewayError,
    ),
    "200 not JSON": (
        HTTPAnswer(200, b"<html>"),
        PayoutOutcomeUnknown,
        Executed.MAYBE,
        DecodingError,
    ),
    "200 duplicate code keys": (
        HTTPAnswer(200, DUPLICATE_CODE),
        PayoutOutcomeUnknown,
        Executed.MAYBE,
        DecodingError,
    ),
    "200 duplicate status keys": (
        HTTPAnswer(200, DUPLICATE_STATUS),
        PayoutOutcomeUnknown,
        Executed.MAYBE,
        DecodingError,
    ),
    "200 about another tradeNo": (
        HTTPAnswer(200, body(envelope(payout_data("SOMEONE-ELSE")))),
        PayoutOutcomeUnknown,
        Executed.MAYBE,
        DecodingError,
    ),
    "200 another amount": (
        HTTPAnswer(200, body(envelope(payout_data(amount="999999")))),
        PayoutOutcomeUnknown,
        Executed.MAYBE,
        None,  # a query reports what the gateway holds, whatever its amount
    ),
    "200 another bankCode": (
        HTTPAnswer(200, body(envelope({**payout_data(), "bankCode": "WAVEPAY"}))),
        PayoutOutcomeUnknown,
        Executed.MAYBE,
        None,
    ),
    "200 code 8000 about another tradeNo": (
        HTTPAnswer(
            200, body(envelope({"tradeNo": "SOMEONE-ELSE"}, code="8000", msg="no"))
        ),
        PayoutOutcomeUnknown,
        Executed.MAYBE,
        DecodingError,
    ),
    "200 code 5000 about another tradeNo": (
        HTTPAnswer(200, body(envelope({"tradeNo": "SOMEONE-ELSE"}, code="5000"))),
        PayoutOutcomeUnknown,
        Executed.MAYBE,
        DecodingError,
    ),
    # A proxy answers these after forwarding too (an upstream reset, an
    # upstream timeout): the gateway may have executed the create.
    "429": (
        HTTPAnswer(429, b"slow down", 3.0),
        PayoutOutcomeUnknown,
        Executed.MAYBE,
        HTTPStatusError,
    ),
    "503": (
        HTTPAnswer(503, b"busy", 1.0),
        PayoutOutcomeUnknown,
        Executed.MAYBE,
        HTTPStatusError,
    ),
    "500": (
        HTTPAnswer(500, b"oops"),
        PayoutOutcomeUnknown,
        Executed.MAYBE,
        HTTPStatusError,
    ),
    "502": (
        HTTPAnswer(502, b""),
        PayoutOutcomeUnknown,
        Executed.MAYBE,
        HTTPStatusError,
    ),
    "408": (
        HTTPAnswer(408, b""),
        PayoutOutcomeUnknown,
        Executed.MAYBE,
        HTTPStatusError,
    ),
    "400": (
        HTTPAnswer(400, b""),
        PayoutOutcomeUnknown,
        Executed.MAYBE,
        HTTPStatusError,
    ),
    "404": (
        HTTPAnswer(404, b""),
        PayoutOutcomeUnknown,
        Executed.MAYBE,
        HTTPStatusError,
    ),
    "409": (
        HTTPAnswer(409, b""),
        PayoutOutcomeUnknown,
        Executed.MAYBE,
        HTTPStatusError,
    ),
    "303": (
        HTTPAnswer(303, b""),
        PayoutOutcomeUnknown,
        Executed.MAYBE,
        HTTPStatusError,
    ),
    "204": (
        HTTPAnswer(204, b""),
        PayoutOutcomeUnknown,
        Executed.MAYBE,
        HTTPStatusError,
    ),
}


@pytest.mark.parametrize(
    ("facts", "error", "executed"),
    [(facts, error, executed) for facts, error, executed, _ in TABLE.values()],
    ids=TABLE.keys(),
)
def test_a_create_s_exchange(
    facts: TransportFailure | HTTPAnswer, error: type | None, executed: Executed
) -> None:
    """Only a proof that nothing happened is 'not executed'; else 'maybe'."""
    outcome = interpret(facts, CREATE, CODEC, _redact)
    assert outcome.executed is executed
    if error is None:
        assert isinstance(outcome.result, PayoutResult)
        assert outcome.error is None
        return
    assert type(outcome.error) is error
    assert outcome.error is not None
    assert outcome.result is None
    assert outcome.error.trade_no == TRADE_NO
    assert outcome.error.operation == "create_payout"
    # The verdict the layers above read from the error agrees with the table,
    # except for a refusal: this attempt was refused, but until a status
    # query confirms it the refusal may be the duplicate refusal of a payout
    # an earlier run made.
    if isinstance(outcome.error, RequestRejected):
        assert verdict(outcome.error) is Executed.MAYBE
        outcome.error.confirmed = True
    assert verdict(outcome.error) is executed
    assert outcome.error.may_have_executed is (executed is not Executed.NO)


@pytest.mark.parametrize(
    ("facts", "error"),
    [(facts, error) for facts, _, _, error in TABLE.values()],
    ids=TABLE.keys(),
)
def test_a_status_query_s_exchange(
    facts: TransportFailure | HTTPAnswer, error: type | None
) -> None:
    """A query executes nothing; its errors are about the query alone."""
    outcome = interpret(facts, QUERY, CODEC, _redact)
    assert outcome.executed in {Executed.NO, Executed.YES}
    if error is None:
        assert isinstance(outcome.result, PayoutStatus)
        return
    assert type(outcome.error) is error
    assert outcome.error is not None
    assert not isinstance(outcome.error, OutcomeUnknown)
    # A read executes nothing, whatever went wrong with it.
    assert outcome.error.may_have_executed is False


def test_the_label_names_the_call_the_user_made() -> None:
    """resolve_payout runs the create's rules under its own name."""
    who = CallIdentity(Operation.CREATE_PAYOUT, TRADE_NO, "resolve_payout")
    outcome = interpret(LOST, who, CODEC, _redact)
    assert outcome.error is not None
    assert outcome.error.operation == "resolve_payout"


def test_a_deposit_s_unknown_is_not_a_payout_s() -> None:
    """The operation table picks the unknown-outcome class per create."""
    who = CallIdentity(Operation.CREATE_DEPOSIT, "D1", "create_deposit")
    outcome = interpret(LOST, who, CODEC, _redact)
    assert type(outcome.error) is OutcomeUnknown


def test_gateway_text_in_errors_is_redacted() -> None:
    """A gateway msg echoing the secret does not carry it into the error."""
    answer = HTTPAnswer(200, body(envelope(None, code="8000", msg=f"bad {SECRET}")))
    outcome = interpret(answer, CREATE, CODEC, _redact)
    assert SECRET not in str(outcome.error)


COLLISION = TradeNoCollision(
    "x",
    trade_no=TRADE_NO,
    field="amount",
    requested_amount=Decimal(100),
    found_amount=Decimal(999),
    operation="create_payout",
)


@pytest.mark.parametrize(
    ("error", "executed"),
    [
        (ConnectError("x"), Executed.NO),
        (ClientClosedError(operation="create_payout"), Executed.NO),
        (RequestRejected("8000", "no", confirmed=True), Executed.NO),
        # Unconfirmed (verify_rejections=False): maybe the duplicate refusal
        # of a payout an earlier run made.
        (RequestRejected("8000", "no", operation="create_payout"), Executed.MAYBE),
        (InvalidRequestError("amount", "bad"), Executed.NO),
        (ConflictingRequestError("x"), Executed.NO),
        (COLLISION, Executed.NO),
        (LedgerError("x"), Executed.NO),
        # A create never raises these; from your own middleware, say: maybe.
        (HTTPStatusError("x", status_code=429, body_excerpt=""), Executed.MAYBE),
        (HTTPStatusError("x", status_code=503, body_excerpt=""), Executed.MAYBE),
        (HTTPStatusError("x", status_code=500, body_excerpt=""), Executed.MAYBE),
        (PayoutOutcomeUnknown("x", trade_no="T"), Executed.MAYBE),
        (VexoraError("from your own middleware"), Executed.MAYBE),
        (DecodingError("x"), Executed.MAYBE),
        # A read's errors: a read executes nothing.
        (
            HTTPStatusError(
                "x", status_code=503, body_excerpt="", operation="get_payout"
            ),
            Executed.NO,
        ),
        (RequestRejected("8000", "no", operation="get_payout"), Executed.NO),
        (RequestTimeout("x", operation="get_balance"), Executed.NO),
        (DecodingError("x", operation="get_deposit"), Executed.NO),
    ],
)
def test_verdict_of_an_error(error: VexoraError, executed: Executed) -> None:
    """What is not a proof of 'nothing happened' is 'maybe'.

    The public ``may_have_executed`` is this verdict, read off the error.
    """
    assert verdict(error) is executed
    assert error.may_have_executed is (executed is not Executed.NO)


@pytest.mark.parametrize(
    ("error", "resend", "retry_read"),
    [
        (ConnectError("x"), True, True),
        # A proxy answers 429 and 503 after forwarding too: query first.
        (HTTPStatusError("x", status_code=429, body_excerpt=""), False, True),
        (HTTPStatusError("x", status_code=503, body_excerpt=""), False, True),
        (ClientClosedError(), False, False),
        (HTTPStatusError("x", status_code=502, body_excerpt=""), False, True),
        (HTTPStatusError("x", status_code=404, body_excerpt=""), False, False),
        (RequestTimeout("x"), False, True),
        (DecodingError("x"), False, True),
        (GatewayError("5000", "x"), False, True),
        (RequestRejected("8000", "x"), False, False),
        (PayoutOutcomeUnknown("x", trade_no="T"), False, False),
    ],
)
def test_what_is_sent_again(error: VexoraError, resend: bool, retry_read: bool) -> None:
    """A create is resent blindly only when it provably was not taken."""
    assert create_is_resendable(error) is resend
    assert read_is_retryable(error) is retry_read


def status(**data: Any) -> PayoutStatus:
    """Decode a status query answer's data."""
    fields = {"tradeNo": TRADE_NO, "status": "0015", **data}
    return CODEC.decode_data(
        CODEC.decode_envelope(body(envelope(fields))), PayoutStatus
    )


PARAMS = {
    "tradeNo": TRADE_NO,
    "amount": "777",
    "bankCode": "KBZPAY",
    "bankNumber": "3560123456789012",
    "name": "Ko Min Thu",
}


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"amount": "777.00"}, Match.SAME),
        ({"amount": "777"}, Match.SAME),
        ({"amount": 777.0}, Match.SAME),
        ({"orderAmount": 777.0, "amount": "500"}, Match.SAME),
        ({"amount": "25000.00"}, Match.DIFFERENT),
        ({"orderAmount": 25000, "amount": "777"}, Match.DIFFERENT),
        ({}, Match.UNCHECKED),
        ({"payAmount": 777.0}, Match.UNCHECKED),
        # A partial pay-in moves less than ordered: amount alone proves nothing.
        ({"status": "0001", "amount": "500"}, Match.UNCHECKED),
        ({"status": "0001", "amount": "500", "orderAmount": 777}, Match.SAME),
        ({"amount": "777", "bankNumber": "3560999999999999"}, Match.DIFFERENT),
        ({"amount": "777", "bankNumber": "3560********9012"}, Match.SAME),
        ({"amount": "777", "bankCode": "WAVEPAY"}, Match.DIFFERENT),
    ],
)
def test_is_the_found_payout_this_one(data: dict[str, Any], match: Match) -> None:
    """Amounts compare as Decimals; an account the answer carries must match."""
    assert compare_found(PARAMS, status(**data)).match is match


def test_a_collision_is_never_a_result() -> None:
    """Another amount under our tradeNo: TradeNoCollision, with both amounts."""
    with pytest.raises(TradeNoCollision) as info:
        adopt_found(
            CREATE, PARAMS, status(amount="25000.00"), CODEC, adopt_unchecked=True
        )
    error = info.value
    assert isinstance(error, ConflictingRequestError)
    assert not isinstance(error, RequestRejected)
    assert error.trade_no == TRADE_NO
    assert error.requested_amount == Decimal(777)
    assert error.found_amount == Decimal(25000)
    assert "namespace tradeNos" in str(error)


def test_an_answer_without_an_amount_stays_unknown_unless_adopted() -> None:
    """No amount, no proof: unknown by default, adopted only on request."""
    with pytest.raises(PayoutOutcomeUnknown, match="no amount"):
        adopt_found(CREATE, PARAMS, status(), CODEC, adopt_unchecked=False)
    result = adopt_found(CREATE, PARAMS, status(), CODEC, adopt_unchecked=True)
    assert isinstance(result, PayoutResult)


def test_a_found_payout_becomes_the_create_s_result_field_for_field() -> None:
    """Built by the converter from the query's data: nothing dropped."""
    found = status(amount="777.00", platFormTradeNo="vx1", remark="r", message="m")
    result = adopt_found(CREATE, PARAMS, found, CODEC, adopt_unchecked=False)
    assert result == PayoutResult(
        trade_no=TRADE_NO,
        status=found.status,
        platform_trade_no="vx1",
        message="m",
        remark="r",
        amount=Decimal("777.00"),
    )
    assert isinstance(result, PayoutResult)
    assert result.raw == found.raw
