"""Tests for the converter: camelCase on the wire, lenient and strict decoding."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any

import cattrs
import pytest
from hypothesis import given
from hypothesis import strategies as st
from vexora_async import (
    Balance,
    BankCode,
    DecodingError,
    DepositRequest,
    DepositResult,
    DepositStatus,
    InvalidRequestError,
    PayoutResult,
    PayoutStatus,
    TransactionStatus,
    make_converter,
)
from vexora_async._converter import WireCodec, wire_name
from vexora_async._models import Envelope

from tests.helpers import NOTIFY_URL, make_payout, payout_data


RESULT_TYPES: list[type[Any]] = [
    PayoutResult,
    PayoutStatus,
    DepositResult,
    DepositStatus,
    Balance,
]
codec = WireCodec.create()

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
# Data objects whose keys are the wire's own, so that decoding gets past the
# first missing field and meets wrong types deep in the record.
wire_keys = st.sampled_from(
    [
        "tradeNo",
        "platFormTradeNo",
        "status",
        "message",
        "remark",
        "amount",
        "orderAmount",
        "payAmount",
        "receivedAmount",
        "successTime",
        "createTime",
        "availableAmount",
        "freezeAmount",
        "unsettledAmount",
    ]
)
wire_data = st.dictionaries(wire_keys | st.text(max_size=6), json_values, max_size=12)


def decode(body: dict[str, Any] | list[Any] | str) -> Envelope:
    """Decode a JSON-able object as if it came from the gateway."""
    return codec.decode_envelope(json.dumps(body).encode())


def data_of(cls: type[Any], data: dict[str, Any]) -> Any:
    """Decode *data*, sent as JSON, as the ``data`` of a successful answer."""
    return codec.decode_data(decode({"code": "0000", "data": data}), cls)


@pytest.mark.parametrize(
    ("field", "wire"),
    [
        ("trade_no", "tradeNo"),
        ("platform_trade_no", "platFormTradeNo"),
        ("bank_number", "bankNumber"),
        ("notify_url", "notifyUrl"),
        ("available_amount", "availableAmount"),
        ("amount", "amount"),
    ],
)
def test_wire_names(field: str, wire: str) -> None:
    """Fields map to camelCase, with the gateway's platFormTradeNo quirk."""
    assert wire_name(field) == wire


def test_payout_encodes_to_the_documented_camel_case_body() -> None:
    """A payout becomes the flat string body of the docs; no remark if None."""
    assert codec.encode(make_payout()) == {
        "tradeNo": "VX20260331004567",
        "amount": "100",
        "bankCode": "KBZPAY",
        "bankNumber": "3560123456789012",
        "name": "Ko Min Thu",
        "notifyUrl": NOTIFY_URL,
    }


def test_payout_encodes_remark_and_only_strings() -> None:
    """A remark is sent when given, and every value on the wire is a str."""
    body = codec.encode(make_payout(remark="collection_vx_04567"))
    assert body["remark"] == "collection_vx_04567"
    assert all(type(value) is str for value in body.values())


@pytest.mark.parametrize(
    ("amount_format", "amount", "wire"),
    [
        ("integer", 100, "100"),
        ("integer", Decimal("2500.00"), "2500"),
        ("decimal2", 100, "100.00"),
        ("decimal2", 10**15 - 1, "9" * 15 + ".00"),
    ],
)
def test_amount_format(amount_format: Any, amount: object, wire: str) -> None:
    """The amount goes out as "100" by default or "100.00" with decimal2."""
    body = WireCodec.create(amount_format).encode(make_payout(amount=amount))
    assert body["amount"] == wire


def test_unknown_amount_format_is_refused() -> None:
    """Only the two documented amount formats exist."""
    with pytest.raises(InvalidRequestError, match="amount_format"):
        make_converter("cents")  # type: ignore[arg-type]  # the point


def test_each_converter_is_new_and_not_the_global_one() -> None:
    """make_converter builds a fresh converter; the global one is untouched."""
    conv = make_converter()
    assert conv is not make_converter()
    assert conv is not cattrs.global_converter


def test_deposit_encodes_every_optional_field_in_camel_case() -> None:
    """A deposit's optional fields go out as channelCode, wayCode, returnUrl."""
    deposit = DepositRequest(
        trade_no="PI1",
        amount=5000,
        name="Daw Aye",
        notify_url=NOTIFY_URL,
        channel_code="EWALLET",
        way_code=BankCode.WAVEPAY,
        return_url="https://127.0.0.1/back",
        remark="r",
    )
    assert codec.encode(deposit) == {
        "tradeNo": "PI1",
        "amount": "5000",
        "name": "Daw Aye",
        "notifyUrl": NOTIFY_URL,
        "channelCode": "EWALLET",
        "wayCode": "WAVEPAY",
        "returnUrl": "https://127.0.0.1/back",
        "remark": "r",
    }


def test_docs_example_envelope_decodes() -> None:
    """The docs' example answer decodes into an envelope and a PayoutResult."""
    env = decode(
        {
            "msg": "success",
            "code": "0000",
            "timestamp": 1719876543210,
            "success": True,
            "data": payout_data(),
        }
    )
    assert env == Envelope(
        code="0000",
        msg="success",
        success=True,
        timestamp=1719876543210,
        data=payout_data(),
    )
    result = codec.decode_data(env, PayoutResult)
    assert result.trade_no == "VX20260331004567"
    assert result.platform_trade_no == "vx8f3k29d0qplm7x2"
    assert result.status == "0015"
    assert result.status.is_processing
    assert result.message == "Processing"
    assert result.remark == "collection_vx_04567"
    assert result.raw == payout_data()


@pytest.mark.parametrize(
    ("success", "expected"),
    [
        (True, True),
        (False, False),
        ("true", True),
        ("TRUE", True),
        ("false", False),
        ("yes", None),
        (1, None),
        (None, None),
    ],
)
def test_success_is_lenient(success: object, expected: bool | None) -> None:
    """A success flag may be a bool or "true"/"false"; anything else is None."""
    assert decode({"code": "0000", "success": success}).success is expected


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        (1719876543210, 1719876543210),
        ("1719876543210", 1719876543210),
        ("17198x", None),
        ("", None),
        (True, None),
        (None, None),
        (1.5, None),
    ],
)
def test_envelope_timestamp_int_or_string(
    timestamp: object, expected: int | None
) -> None:
    """A timestamp comes back as an int or a digit string; else it is None."""
    assert decode({"code": "0000", "timestamp": timestamp}).timestamp == expected


def test_success_is_ignored_in_favour_of_code() -> None:
    """A contradictory success flag does not change the code we act on."""
    env = decode({"code": "8000", "success": True, "msg": "bad sign"})
    assert env.code == "8000"
    assert env.msg == "bad sign"


@pytest.mark.parametrize(("code", "expected"), [(0, "0000"), (8000, "8000")])
def test_integer_codes_are_read_as_codes(code: int, expected: str) -> None:
    """A code sent as a JSON number keeps its four-digit meaning."""
    assert decode({"code": code}).code == expected


def test_non_string_msg_reads_as_empty() -> None:
    """A msg that is not a string does not break decoding."""
    assert decode({"code": "5000", "msg": {"a": 1}}).msg == ""


@pytest.mark.parametrize(
    "body",
    [
        {"msg": "success"},
        {"code": None},
        {"code": ""},
        {"code": True},
        {"code": -1},
        {"code": ["0000"]},
        {"code": 1.5},
    ],
)
def test_missing_or_unusable_code_is_a_decoding_error(body: dict[str, Any]) -> None:
    """Without a usable code we cannot tell what happened: DecodingError."""
    with pytest.raises(DecodingError, match="no usable code"):
        decode(body)


@pytest.mark.parametrize("body", [[], ["0000"], "0000", 0, None])
def test_non_object_body_is_a_decoding_error(body: Any) -> None:
    """An answer that is not a JSON object is refused."""
    with pytest.raises(DecodingError, match="not an object"):
        decode(body)


@pytest.mark.parametrize("data", [[], "x", 5, True])
def test_data_that_is_not_an_object_is_a_decoding_error(data: object) -> None:
    """A data field of the wrong shape is refused, not ignored."""
    with pytest.raises(DecodingError, match="'data' is a JSON"):
        decode({"code": "0000", "data": data})


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"<html>502 Bad Gateway</html>",
        b"\xff\xfe\x00garbage",
        b'{"code": "0000"',
        b"[" * 100_000,
        b'{"code": ' + b"9" * 5000 + b"}",
    ],
)
def test_unreadable_bodies_are_decoding_errors(body: bytes) -> None:
    """Not JSON, bad UTF-8, a BOM, truncation, deep nesting, huge ints."""
    with pytest.raises(DecodingError, match="not JSON"):
        codec.decode_envelope(body)


def test_code_0000_without_data_is_a_decoding_error() -> None:
    """A success with no data is not a success we can read."""
    with pytest.raises(DecodingError, match="no 'data'"):
        codec.decode_data(decode({"code": "0000"}), PayoutResult)


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        ('"300.00"', Decimal("300.00")),
        ('"3000"', Decimal(3000)),
        ("3.0000", Decimal("3.0000")),
        ("3000", Decimal(3000)),
        ('" 300 "', Decimal(300)),
        ("1E+3", Decimal("1E+3")),
    ],
)
def test_amounts_decode_leniently_and_exactly(wire: str, expected: Decimal) -> None:
    """Amounts as strings, ints or JSON floats all become exact Decimals."""
    body = '{"code":"0000","data":{"tradeNo":"T","status":"0000","amount":%s}}'
    result = codec.decode_data(
        codec.decode_envelope((body % wire).encode()), PayoutStatus
    )
    assert result.amount == expected
    assert isinstance(result.amount, Decimal)
    assert str(result.amount) == str(expected)


def test_query_fields_decode() -> None:
    """A status query's extra fields decode, times as naive local times."""
    status = data_of(
        PayoutStatus,
        {
            **payout_data(status="0000"),
            "amount": "100.00",
            "orderAmount": 100.0,
            "payAmount": 100,
            "successTime": "2024-07-01 18:34:31",
            "createTime": "2024-07-01 18:30:00",
        },
    )
    assert status.status.is_success
    assert status.order_amount == 100
    assert status.pay_amount == 100
    assert status.success_time == datetime(2024, 7, 1, 18, 34, 31)  # noqa: DTZ001 - gateway-local, naive by design
    assert status.success_time.tzinfo is None
    assert status.create_time == datetime(2024, 7, 1, 18, 30)  # noqa: DTZ001 - same


@pytest.mark.parametrize("value", ["yesterday", "", 1719876543210, None, [1]])
def test_unreadable_times_read_as_none(value: object) -> None:
    """A time we cannot parse is None (still in raw); the status survives."""
    status = data_of(
        PayoutStatus, {"tradeNo": "T", "status": "0000", "successTime": value}
    )
    assert status.success_time is None
    assert status.status.is_success
    assert status.raw["successTime"] == value


def test_unknown_fields_are_ignored_but_kept_in_raw() -> None:
    """Fields we do not model neither fail decoding nor get lost."""
    data = {**payout_data(), "payUrl": "https://127.0.0.1/pay", "fee": {"a": 1}}
    result = data_of(DepositResult, data)
    assert result.raw["payUrl"] == "https://127.0.0.1/pay"
    assert result.raw["fee"] == {"a": 1}


def test_unknown_status_code_is_kept() -> None:
    """A status code we have never seen is kept as sent, as UNKNOWN."""
    result = data_of(PayoutStatus, {"tradeNo": "T", "status": "0100020"})
    assert result.status == "0100020"
    assert isinstance(result.status, TransactionStatus)
    assert not result.status.is_failed


def test_numeric_ids_are_read_as_strings() -> None:
    """A tradeNo or platFormTradeNo sent as a number is read as its text."""
    result = data_of(
        PayoutResult, {"tradeNo": 20260331, "platFormTradeNo": 77, "status": "0015"}
    )
    assert result.trade_no == "20260331"
    assert result.platform_trade_no == "77"


def test_balance_decodes_numbers() -> None:
    """Balance fields decode from numbers or strings into Decimals."""
    balance = data_of(
        Balance,
        {"availableAmount": 1500, "freezeAmount": "0.00", "unsettledAmount": 12.25},
    )
    assert balance.available_amount == 1500
    assert balance.freeze_amount == 0
    assert balance.unsettled_amount == Decimal("12.25")


def test_deposit_status_decodes_received_amount() -> None:
    """A pay-in query's receivedAmount is decoded as money."""
    status = data_of(
        DepositStatus, {"tradeNo": "T", "status": "0001", "receivedAmount": "50.00"}
    )
    assert status.received_amount == Decimal("50.00")
    assert status.status.kind.value == "partial"


def test_deposit_result_status_is_optional() -> None:
    """A pay-in answer without status still decodes."""
    assert data_of(DepositResult, {"tradeNo": "T"}).status is None


@pytest.mark.parametrize(
    ("cls", "data", "where"),
    [
        (PayoutResult, {"status": "0015"}, "trade_no"),
        (PayoutResult, {"tradeNo": "T"}, "status"),
        (PayoutResult, {"tradeNo": "T", "status": 15}, "status"),
        (PayoutResult, {"tradeNo": "T", "status": ""}, "status"),
        (PayoutResult, {"tradeNo": "T", "status": None}, "status"),
        (PayoutResult, {"tradeNo": {"x": 1}, "status": "0015"}, "trade_no"),
        (PayoutResult, {"tradeNo": True, "status": "0015"}, "trade_no"),
        (PayoutResult, {"tradeNo": "T", "status": "0015", "amount": "abc"}, "amount"),
        (PayoutResult, {"tradeNo": "T", "status": "0015", "amount": True}, "amount"),
        (PayoutResult, {"tradeNo": "T", "status": "0015", "amount": [1]}, "amount"),
        (
            PayoutResult,
            {"tradeNo": "T", "status": "0015", "amount": float("nan")},
            "amount",
        ),
        (
            PayoutResult,
            {"tradeNo": "T", "status": "0015", "amount": "Infinity"},
            "amount",
        ),
        (PayoutResult, {"tradeNo": "T", "status": "0015", "message": [5]}, "message"),
        (Balance, {"freezeAmount": 1}, "available_amount"),
        (Balance, {"availableAmount": None}, "available_amount"),
    ],
)
def test_wrong_field_types_are_decoding_errors(
    cls: type[Any], data: dict[str, Any], where: str
) -> None:
    """Wrong types in data raise DecodingError naming the field."""
    with pytest.raises(DecodingError, match=cls.__name__) as e:
        data_of(cls, data)
    assert where in str(e.value)


@given(st.binary(max_size=200))
def test_decode_envelope_of_arbitrary_bytes(body: bytes) -> None:
    """Any bytes either decode to an envelope or raise DecodingError."""
    try:
        env = codec.decode_envelope(body)
    except DecodingError:
        return
    assert isinstance(env.code, str)


@given(json_values)
def test_decode_envelope_of_arbitrary_json(value: object) -> None:
    """Any JSON value either decodes or raises DecodingError, nothing else."""
    try:
        env = codec.decode_envelope(json.dumps(value).encode())
    except DecodingError:
        return
    assert isinstance(value, dict)
    assert env.code


@given(st.sampled_from(RESULT_TYPES), wire_data)
def test_decode_data_of_arbitrary_json(cls: type[Any], data: dict[str, Any]) -> None:
    """Any data object either becomes the record or raises DecodingError."""
    try:
        result = codec.decode_data(Envelope(code="0000", data=data), cls)
    except DecodingError:
        return
    assert isinstance(result, cls)
    assert result.raw == data


def test_empty_optional_amount_reads_as_not_given() -> None:
    """An empty amount does not hide the readable status next to it."""
    codec = WireCodec.create()
    status = codec.decode_data(
        Envelope(code="0000", data={"tradeNo": "T", "status": "0000", "amount": ""}),
        PayoutStatus,
    )
    assert status.status.is_success
    assert status.amount is None
