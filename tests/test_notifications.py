"""Tests for parse_notification: verification, records and refusals."""

from __future__ import annotations

import contextlib
import json
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from vexora_async import (
    BankCode,
    DepositNotification,
    InvalidRequestError,
    MalformedNotification,
    NotificationError,
    NotificationTooLarge,
    PayoutNotification,
    SignatureError,
    StaleNotification,
    TransactionStatus,
    VexoraError,
    parse_notification,
    sign,
)
from vexora_async.notifications._parse import describe

from tests.helpers import (
    CALLBACK_BODY,
    CALLBACK_FIELDS,
    CALLBACK_SIGN,
    SECRET,
    Num,
    callback,
    json_text,
)


NOW = 1774953271.0  # the vector's timestamp, in seconds


def test_fact_sheet_vector_verifies() -> None:
    """The fact sheet's callback body parses into the payout it describes."""
    n = parse_notification(CALLBACK_BODY, SECRET)
    assert n == PayoutNotification(
        trade_no="VX20260331004567",
        platform_trade_no="vx8f3k29d0qplm7x2",
        amount=Decimal(100),
        status=TransactionStatus("0000"),
        message="SUCCESS",
        success_time=datetime(2026, 3, 31, 18, 34, 31),  # noqa: DTZ001 - gateway-local, naive
        timestamp=1774953271000,
    )
    assert n.status.is_success
    assert n.raw["sign"] == CALLBACK_SIGN


def test_helper_signs_like_the_fact_sheet() -> None:
    """The tests' callback() builder reproduces the documented sign."""
    assert json.loads(callback())["sign"] == CALLBACK_SIGN


@pytest.mark.parametrize("key", sorted(CALLBACK_FIELDS))
def test_every_tampered_field_is_refused(key: str) -> None:
    """Changing any signed value under the original sign is a SignatureError."""
    fields = {**json.loads(CALLBACK_BODY), key: CALLBACK_FIELDS[key] + "1"}
    with pytest.raises(SignatureError, match="does not match"):
        parse_notification(json.dumps(fields).encode(), SECRET)


@pytest.mark.parametrize("key", sorted(CALLBACK_FIELDS))
def test_every_removed_field_is_refused(key: str) -> None:
    """Dropping any signed field under the original sign is a SignatureError."""
    fields = {k: v for k, v in json.loads(CALLBACK_BODY).items() if k != key}
    with pytest.raises(SignatureError):
        parse_notification(json.dumps(fields).encode(), SECRET)


@pytest.mark.parametrize(
    ("key", "value"),
    [("remark", "x"), ("channelCode", "EWALLET"), ("amount2", 5), ("ok", True)],
)
def test_an_added_signed_field_is_refused(key: str, value: object) -> None:
    """A non-empty scalar added to the body is signed, so the sign breaks."""
    fields = {**json.loads(CALLBACK_BODY), key: value}
    with pytest.raises(SignatureError):
        parse_notification(json.dumps(fields).encode(), SECRET)


def test_wrong_secret_is_refused() -> None:
    """A body signed with another secret does not verify."""
    with pytest.raises(SignatureError):
        parse_notification(callback(secret="another-secret"), SECRET)


@pytest.mark.parametrize(
    ("received", "reason"),
    [
        (CALLBACK_SIGN.upper(), "lowercase"),
        (CALLBACK_SIGN[:-1], "31 characters"),
        (CALLBACK_SIGN + "0", "33 characters"),
        (" " + CALLBACK_SIGN[1:], "not lowercase hex"),
        ("z" * 32, "not lowercase hex"),
        ("0" * 32, "does not match"),
        (Num("1" * 32), "not a string"),
        ([CALLBACK_SIGN], "not a string"),
        (True, "not a string"),
    ],
)
def test_bad_signs_are_refused_with_a_reason(received: object, reason: str) -> None:
    """Uppercase, wrong-length, non-hex and non-string signs say what is wrong."""
    fields: dict[str, Any] = {**CALLBACK_FIELDS, "sign": received}
    with pytest.raises(SignatureError, match=reason) as info:
        parse_notification(json_text(fields).encode(), SECRET)
    assert CALLBACK_SIGN not in str(info.value)
    assert info.value.http_status == 403


@pytest.mark.parametrize("received", [None, ""])
def test_missing_sign_is_refused(received: object) -> None:
    """No sign, a null sign and an empty sign are all 'no sign'."""
    fields = {**CALLBACK_FIELDS, "sign": received}
    with pytest.raises(SignatureError, match="no sign"):
        parse_notification(json.dumps(fields).encode(), SECRET)
    with pytest.raises(SignatureError, match="no sign"):
        parse_notification(json.dumps(CALLBACK_FIELDS).encode(), SECRET)


def test_the_expected_sign_never_appears_in_an_error() -> None:
    """A refusal does not hand the sender the sign its forgery needed."""
    forged = {**CALLBACK_FIELDS, "amount": "1000000", "sign": "0" * 32}
    expected = sign(forged, SECRET)
    with pytest.raises(SignatureError) as info:
        parse_notification(json.dumps(forged).encode(), SECRET)
    assert expected not in str(info.value)
    assert SECRET not in str(info.value)


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b"\xff\xfe{}", "not UTF-8"),
        ('{"name":"é"}'.encode("latin-1"), "not UTF-8"),
        (b"", "not JSON"),
        (b"tradeNo=1&sign=2", "not JSON"),
        (b"{", "not JSON"),
        ("\ufeff{}".encode(), "not JSON"),
        (b'{"amount": NaN}', "not JSON"),
        (b'{"amount": Infinity}', "not JSON"),
        (b'{"tradeNo":"a","tradeNo":"b"}', "duplicated key"),
        (b"[" * 32000 + b"]" * 32000, "not JSON"),
        (b"[]", "array"),
        (b"[" + CALLBACK_BODY + b"]", "array"),
        (b'"OK"', "string"),
        (b"42", "number"),
        (b"null", "null"),
        (b"true", "boolean"),
        (b'{"tradeNo":"\\ud800"}', "not valid Unicode"),
    ],
)
def test_non_objects_are_malformed(body: bytes, match: str) -> None:
    """Bodies that are not a UTF-8 JSON object with unique keys are refused."""
    with pytest.raises(MalformedNotification, match=match) as info:
        parse_notification(body, SECRET)
    assert info.value.http_status == 400


def test_huge_body_is_refused_before_parsing() -> None:
    """A body over the cap is NotificationTooLarge (413), whatever it holds."""
    body = CALLBACK_BODY[:-1] + b',"pad":"' + b"x" * 70000 + b'"}'
    with pytest.raises(NotificationTooLarge) as info:
        parse_notification(body, SECRET)
    assert info.value.http_status == 413
    with pytest.raises(NotificationTooLarge):
        parse_notification(CALLBACK_BODY, SECRET, max_bytes=len(CALLBACK_BODY) - 1)
    n = parse_notification(CALLBACK_BODY, SECRET, max_bytes=len(CALLBACK_BODY))
    assert n.trade_no == "VX20260331004567"


@pytest.mark.parametrize("key", ["tradeNo", "status", "amount"])
@pytest.mark.parametrize("how", ["missing", "null", "empty"])
def test_required_fields_missing_from_a_signed_body(key: str, how: str) -> None:
    """A correctly signed body without tradeNo, status or amount is malformed."""
    body = (
        callback(drop=(key,))
        if how == "missing"
        else callback({key: None if how == "null" else ""})
    )
    with pytest.raises(MalformedNotification, match=key):
        parse_notification(body, SECRET)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"status": Num("0")}, "'status' is a JSON number"),
        ({"status": Num("15")}, "'status' is a JSON number"),
        ({"tradeNo": True}, "'tradeNo' is a JSON boolean"),
        ({"amount": True}, "'amount' is a JSON boolean"),
        ({"amount": "abc"}, "not a decimal"),
        ({"amount": "1_000"}, "not a decimal"),
        ({"amount": "NaN"}, "not a decimal"),
        ({"amount": "1,000.00"}, "not a decimal"),
        ({"amount": "\u0661\u0660\u0660"}, "not a decimal"),
        ({"amount": Num("1e999999999999999999999")}, "out of range"),
        ({"amount": Num("1e-40")}, "out of range"),
        ({"amount": "9" * 30}, "out of range"),
    ],
)
def test_signed_fields_of_the_wrong_type_are_malformed(
    overrides: dict[str, Any], match: str
) -> None:
    """Even correctly signed, a status number or a non-amount is refused."""
    with pytest.raises(MalformedNotification, match=match):
        parse_notification(callback(overrides), SECRET)


def test_nested_required_field_is_malformed() -> None:
    """An object where the amount should be is refused, not skipped."""
    with pytest.raises(MalformedNotification, match="'amount' is a JSON object"):
        parse_notification(callback({"amount": {"value": "100"}}), SECRET)


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("300.00", Decimal("300.00")),
        ("3000", Decimal(3000)),
        (" 100 ", Decimal(100)),
        (Num("3.0000"), Decimal("3.0000")),
        (Num("100"), Decimal(100)),
        (Num("0.00000015"), Decimal("0.00000015")),
        (Num("1E+3"), Decimal(1000)),
    ],
)
def test_amount_drift_is_accepted(written: object, expected: Decimal) -> None:
    """Amounts as strings or numbers, as the gateway's pages show, parse."""
    n = parse_notification(callback({"amount": written}), SECRET)
    assert n.amount == expected
    assert isinstance(n.amount, Decimal)


@pytest.mark.parametrize("literal", ["3.0000", "0.00000015", "1e3", "-0", "100"])
def test_numbers_are_verified_as_their_literal_text(literal: str) -> None:
    """The signer sees a JSON number exactly as written, as the gateway signed."""
    body = callback({"amount": Num(literal)})
    assert parse_notification(body, SECRET).raw["amount"] == literal


@pytest.mark.parametrize(
    ("literal", "reprinted"),
    [("3.0000", "3.0"), ("3.0000", "3"), ("0.00000015", "1.5E-7"), ("1e3", "1E+3")],
)
def test_a_sign_over_a_reprinted_number_fails(literal: str, reprinted: str) -> None:
    """A sign over float's or Decimal's reprint of the number does not verify."""
    fields = {**CALLBACK_FIELDS, "amount": reprinted}
    body = {**CALLBACK_FIELDS, "amount": Num(literal), "sign": sign(fields, SECRET)}
    with pytest.raises(SignatureError):
        parse_notification(json_text(body).encode(), SECRET)


def test_number_like_ids_and_timestamps_are_accepted() -> None:
    """A tradeNo or timestamp sent as a JSON number keeps its digits."""
    n = parse_notification(
        callback({"tradeNo": Num("2026033100456"), "timestamp": Num("1774953271000")}),
        SECRET,
    )
    assert n.trade_no == "2026033100456"
    assert n.timestamp == 1774953271000


@pytest.mark.parametrize(
    "overrides",
    [{"timestamp": "soon"}, {"timestamp": Num("1.5")}, {"successTime": "yesterday"}],
)
def test_cosmetic_fields_that_do_not_parse_read_as_none(
    overrides: dict[str, Any],
) -> None:
    """An odd timestamp or successTime never refuses a money fact."""
    n = parse_notification(callback(overrides), SECRET)
    key = "timestamp" if "timestamp" in overrides else "success_time"
    assert getattr(n, key) is None
    assert n.status.is_success


def test_optional_fields_may_be_absent() -> None:
    """Only tradeNo, status and amount are required."""
    n = parse_notification(
        callback(
            drop=("platFormTradeNo", "message", "successTime", "timestamp"),
        ),
        SECRET,
    )
    assert n.platform_trade_no is None
    assert n.message is None
    assert n.success_time is None
    assert n.timestamp is None


def test_raw_holds_plain_values_as_received() -> None:
    """The raw mapping is the body as verified; numbers are their text."""
    n = parse_notification(
        callback({"amount": Num("3.0000"), "extra": {"x": [Num("1.50")]}}), SECRET
    )
    assert n.raw["amount"] == "3.0000"
    assert type(n.raw["amount"]) is str
    assert n.raw["extra"] == {"x": ["1.50"]}
    assert type(n.raw["extra"]["x"][0]) is str


def test_repr_hides_raw() -> None:
    """The record's repr shows the facts, not the whole body."""
    assert "raw" not in repr(parse_notification(CALLBACK_BODY, SECRET))


# -- payout or deposit ---------------------------------------------------------


@pytest.mark.parametrize(
    "extra",
    [
        {"channelCode": "EWALLET", "wayCode": "KBZPAY"},
        {"wayCode": "WAVEPAY"},
        {"channelCode": "EWALLET"},
    ],
)
def test_payin_fields_make_a_deposit(extra: dict[str, str]) -> None:
    """A callback with channelCode or wayCode reads as a deposit."""
    n = parse_notification(callback(extra), SECRET)
    assert isinstance(n, DepositNotification)
    assert n.kind == "deposit"
    assert n.channel_code == extra.get("channelCode")
    assert n.way_code == extra.get("wayCode")
    if n.way_code is not None:
        assert isinstance(n.way_code, BankCode)


def test_without_payin_fields_it_is_a_payout() -> None:
    """The vector, without pay-in fields, is a payout."""
    n = parse_notification(CALLBACK_BODY, SECRET)
    assert isinstance(n, PayoutNotification)
    assert n.kind == "payout"


@pytest.mark.parametrize("added", ['"wayCode":""', '"wayCode":{"a":1}', '"wayCode":[]'])
def test_unsigned_payin_fields_cannot_turn_a_payout_into_a_deposit(added: str) -> None:
    """Empty or nested values are unsigned, so they do not decide the kind."""
    body = CALLBACK_BODY[:-1] + b"," + added.encode() + b"}"
    assert isinstance(parse_notification(body, SECRET), PayoutNotification)


def test_explicit_kind_wins_over_the_guess() -> None:
    """kind="deposit" reads a pay-in callback that carries neither pay-in field."""
    deposit = parse_notification(CALLBACK_BODY, SECRET, kind="deposit")
    assert isinstance(deposit, DepositNotification)
    assert deposit.way_code is None


@pytest.mark.parametrize(
    ("kind", "extra"),
    [
        ("payout", {"wayCode": "KBZPAY"}),
        ("payout", {"channelCode": "EWALLET"}),
        ("deposit", {"bankCode": "KBZPAY"}),
        ("deposit", {"bankNumber": "3560123456789012"}),
    ],
)
def test_a_callback_of_the_other_kind_is_refused(
    kind: Literal["payout", "deposit"], extra: dict[str, str]
) -> None:
    """A pay-in callback replayed to a payout receiver is not a failed payout.

    Its sign verifies (the sign does not bind the kind), but its fields
    belong to the other kind: 400, never a record of the wrong kind.
    """
    body = callback({**extra, "status": "00029"})
    with pytest.raises(MalformedNotification, match="separate notify URLs") as info:
        parse_notification(body, SECRET, kind=kind)
    assert info.value.http_status == 400


def test_unsigned_other_kind_fields_do_not_refuse() -> None:
    """An empty pay-in field is not signed, so it says nothing about the kind."""
    payout = parse_notification(callback({"wayCode": ""}), SECRET, kind="payout")
    assert isinstance(payout, PayoutNotification)


def test_dedup_key_separates_kind_trade_no_and_status() -> None:
    """The same fact has one key; another kind or status has another."""
    payout = parse_notification(CALLBACK_BODY, SECRET)
    assert payout.dedup_key == parse_notification(CALLBACK_BODY, SECRET).dedup_key
    deposit = parse_notification(CALLBACK_BODY, SECRET, kind="deposit")
    processing = parse_notification(callback({"status": "0015"}), SECRET)
    keys = {payout.dedup_key, deposit.dedup_key, processing.dedup_key}
    assert len(keys) == 3


@given(st.text(max_size=20), st.text(max_size=20), st.text(max_size=20))
def test_dedup_keys_never_collide(a: str, b: str, c: str) -> None:
    """Two different (tradeNo, status) pairs never share a key."""

    def key(trade_no: str, status: str) -> str:
        return PayoutNotification(
            trade_no=trade_no, status=TransactionStatus(status), amount=Decimal(1)
        ).dedup_key

    if (a, b) != (a + c, b) and c:
        assert key(a, b) != key(a + c, b)
    assert key(a + c, b) == key(a + c, b)
    if a != b:
        assert key(a, b) != key(b, a)


# -- age ---------------------------------------------------------------------


def test_age_is_not_checked_by_default() -> None:
    """Without max_age a day-old retry is accepted: the gateway retries 24 h."""
    n = parse_notification(CALLBACK_BODY, SECRET, now=NOW + 86400)
    assert n.status.is_success


@pytest.mark.parametrize("offset", [-299.0, 0.0, 299.0])
def test_fresh_notifications_pass_max_age(offset: float) -> None:
    """Within max_age (either side) a notification is accepted."""
    n = parse_notification(CALLBACK_BODY, SECRET, max_age=300, now=NOW + offset)
    assert n.timestamp == 1774953271000


@pytest.mark.parametrize(("offset", "word"), [(301.0, "old"), (-301.0, "future")])
def test_stale_notifications_are_refused(offset: float, word: str) -> None:
    """Beyond max_age, old or from the future, it is StaleNotification."""
    with pytest.raises(StaleNotification, match=word):
        parse_notification(CALLBACK_BODY, SECRET, max_age=300, now=NOW + offset)


def test_max_age_needs_a_timestamp() -> None:
    """With max_age on, no usable timestamp means stale."""
    with pytest.raises(StaleNotification, match="no usable timestamp"):
        parse_notification(callback(drop=("timestamp",)), SECRET, max_age=300, now=NOW)


def test_signature_is_checked_before_age() -> None:
    """A forged old body is reported as forged, not as old."""
    forged = {**json.loads(CALLBACK_BODY), "amount": "999"}
    with pytest.raises(SignatureError):
        parse_notification(
            json.dumps(forged).encode(), SECRET, max_age=1, now=NOW + 10**6
        )


# -- arguments and the error tree -------------------------------------------------


@pytest.mark.parametrize(
    ("args", "kwargs", "field"),
    [
        ((CALLBACK_BODY.decode(), SECRET), {}, "body"),
        ((CALLBACK_BODY, ""), {}, "app_secret"),
        ((CALLBACK_BODY, b"secret"), {}, "app_secret"),
        ((CALLBACK_BODY, SECRET), {"kind": "refund"}, "kind"),
    ],
)
def test_caller_mistakes_are_invalid_requests(
    args: tuple[Any, ...], kwargs: dict[str, Any], field: str
) -> None:
    """A str body, an empty secret or an unknown kind is the caller's bug."""
    with pytest.raises(InvalidRequestError) as info:
        parse_notification(*args, **kwargs)
    assert info.value.field == field


def test_memoryview_and_bytearray_bodies_are_accepted() -> None:
    """Any bytes-like body works, as frameworks hand out different types."""
    expected = parse_notification(CALLBACK_BODY, SECRET)
    assert parse_notification(bytearray(CALLBACK_BODY), SECRET) == expected
    assert parse_notification(memoryview(CALLBACK_BODY), SECRET) == expected


def test_error_tree() -> None:
    """Every refusal is a NotificationError, itself a VexoraError."""
    for cls in (SignatureError, MalformedNotification, StaleNotification):
        assert issubclass(cls, NotificationError)
    assert issubclass(NotificationTooLarge, MalformedNotification)
    assert issubclass(NotificationError, VexoraError)


def test_describe_shows_canonical_string_and_both_signs() -> None:
    """describe() gives what a support engineer compares."""
    canonical, expected, received = describe(CALLBACK_BODY, SECRET)
    assert canonical == (
        "amount=100message=SUCCESSplatFormTradeNo=vx8f3k29d0qplm7x2status=0000"
        "successTime=2026-03-31 18:34:31timestamp=1774953271000"
        "tradeNo=VX20260331004567"
    )
    assert expected == received == CALLBACK_SIGN


# -- fuzzing -----------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
field_names = st.sampled_from(
    [*CALLBACK_FIELDS, "sign", "channelCode", "wayCode"]
) | st.text(max_size=8)


def _only_ours(body: bytes, **kwargs: Any) -> None:
    with contextlib.suppress(NotificationError):
        parse_notification(body, SECRET, **kwargs)


@given(st.binary(max_size=300))
def test_fuzz_bytes_raise_only_our_errors(body: bytes) -> None:
    """Arbitrary bytes parse or raise a NotificationError, nothing else."""
    _only_ours(body)


@given(json_values)
def test_fuzz_json_values_raise_only_our_errors(value: object) -> None:
    """Any JSON document parses or raises a NotificationError."""
    _only_ours(json.dumps(value).encode())


@given(st.dictionaries(field_names, json_values, max_size=10), st.booleans())
def test_fuzz_signed_objects_raise_only_our_errors(
    fields: dict[str, Any],
    max_age: bool,
) -> None:
    """Correctly signed objects of any shape parse or raise our errors only."""
    signable = {
        k: v for k, v in fields.items() if not isinstance(v, float) and k != "sign"
    }
    body = {**signable, "sign": sign(signable, SECRET)}
    _only_ours(json.dumps(body).encode(), max_age=60 if max_age else None, now=NOW)


@given(st.data())
def test_fuzz_mutated_vector_raises_only_our_errors(data: st.DataObject) -> None:
    """Byte flips, cuts and insertions in the vector never escape as others."""
    body = bytearray(CALLBACK_BODY)
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(body) - 1))
        match data.draw(st.sampled_from(["flip", "cut", "insert"])):
            case "flip":
                body[pos] ^= data.draw(st.integers(1, 255))
            case "cut":
                del body[pos]
            case _:
                body.insert(pos, data.draw(st.integers(0, 255)))
    _only_ours(bytes(body))


amounts = st.decimals(
    min_value=Decimal(0), max_value=Decimal(10) ** 12, places=4, allow_nan=False
)
ids = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=32
)


@given(
    ids, amounts, st.sampled_from(["0000", "0001", "0015", "00029", "7"]), st.booleans()
)
def test_fuzz_valid_notifications_round_trip(
    trade_no: str,
    amount: Decimal,
    status: str,
    as_number: bool,
) -> None:
    """Any correctly signed notification parses to exactly its values."""
    written = Num(str(amount)) if as_number else str(amount)
    n = parse_notification(
        callback({"tradeNo": trade_no, "amount": written, "status": status}), SECRET
    )
    assert (n.trade_no, n.amount, n.status) == (trade_no, amount, status)
    assert str(n.amount) == str(amount)
