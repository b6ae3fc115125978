"""Tests for the records: request validation, BankCode and TransactionStatus."""

from __future__ import annotations

from decimal import Decimal

import attrs
import pytest
from vexora_async import (
    Balance,
    BankCode,
    InvalidRequestError,
    PayoutRequest,
    PayoutResult,
    StatusKind,
    TransactionStatus,
)

from tests.helpers import make_deposit, make_payout


def test_valid_payout_keeps_its_values() -> None:
    """A valid payout is built with the amount as an integral Decimal."""
    payout = make_payout(amount=Decimal("2500.00"), remark="salary")
    assert payout.amount == Decimal(2500)
    assert str(payout.amount) == "2500"
    assert payout.bank_code == "KBZPAY"
    assert isinstance(payout.bank_code, BankCode)
    assert payout.remark == "salary"


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("trade_no", "", "1 to 64 printable ASCII"),
        ("trade_no", "VX 1", "1 to 64 printable ASCII"),
        ("amount", 99, "at least 100"),
        ("amount", 100.0, "int or a Decimal"),
        ("amount", True, "int or a Decimal"),
        ("amount", "100", "int or a Decimal"),
        ("amount", Decimal("NaN"), "whole number"),
        ("amount", Decimal("100.5"), "whole number"),
        ("bank_code", "KPZPAY", "unknown code"),
        ("bank_code", "kbzpay", "unknown code"),
        ("bank_code", None, "unknown code"),
        ("bank_code", BankCode(""), "must not be empty"),
        ("bank_code", BankCode("NEW PAY"), "contains whitespace"),
        ("bank_number", "", "must not be empty"),
        ("bank_number", " 3560123456789012", "leading or trailing whitespace"),
        ("bank_number", "3560 1234", "contains whitespace"),
        ("name", "", "must not be empty"),
        ("name", "Ko Min Thu\n", "leading or trailing whitespace"),
        ("notify_url", "/notify", "absolute http(s) URL"),
        ("notify_url", "ftp://127.0.0.1/n", "absolute http(s) URL"),
        ("remark", "", "must not be empty"),
        ("remark", " r", "leading or trailing whitespace"),
    ],
)
def test_payout_refuses_each_bad_field_and_names_it(
    field: str, value: object, reason: str
) -> None:
    """Every rule raises InvalidRequestError whose message names the field."""
    with pytest.raises(InvalidRequestError) as e:
        make_payout(**{field: value})
    assert e.value.field == field
    assert reason in str(e.value)
    assert str(e.value).startswith(f"{field}: ")


def test_payout_requires_every_documented_field() -> None:
    """Leaving out a required field is a TypeError from the constructor."""
    with pytest.raises(TypeError):
        PayoutRequest(trade_no="T1", amount=100)  # type: ignore[call-arg]  # the point


def test_payout_is_frozen() -> None:
    """A built request cannot be changed into an invalid one afterwards."""
    payout = make_payout()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        payout.amount = Decimal(1)  # type: ignore[misc]  # the point


def test_evolving_a_payout_validates_again() -> None:
    """attrs.evolve runs the same checks: no way around validation."""
    with pytest.raises(InvalidRequestError, match="amount"):
        attrs.evolve(make_payout(), amount=50)


def test_invalid_request_error_is_a_value_error() -> None:
    """Callers that catch ValueError for bad input still catch ours."""
    with pytest.raises(ValueError, match="bank_number"):
        make_payout(bank_number="")


def test_unknown_plain_bank_code_message_shows_the_escape_hatch() -> None:
    """A plain unknown code is refused with the known ones and BankCode(...)."""
    with pytest.raises(InvalidRequestError) as e:
        make_payout(bank_code="AYAPAY")
    message = str(e.value)
    assert "KBZPAY, WAVEPAY" in message
    assert "BankCode('AYAPAY')" in message


@pytest.mark.parametrize("code", ["KBZPAY", "WAVEPAY"])
def test_documented_codes_pass_as_plain_strings(code: str) -> None:
    """The documented codes may be given as plain strings."""
    payout = make_payout(bank_code=code)
    assert payout.bank_code == code
    assert type(payout.bank_code) is BankCode


def test_bank_code_escape_hatch_for_a_new_code() -> None:
    """A code the gateway adds later passes when spelled BankCode("...")."""
    payout = make_payout(bank_code=BankCode("AYAPAY"))
    assert payout.bank_code == "AYAPAY"


def test_bank_code_constants_and_repr() -> None:
    """The constants equal their code and say what they are in a repr."""
    assert BankCode.KBZPAY == "KBZPAY"
    assert BankCode.WAVEPAY == "WAVEPAY"
    assert repr(BankCode.WAVEPAY) == "BankCode('WAVEPAY')"
    assert str(BankCode.KBZPAY) == "KBZPAY"
    assert hash(BankCode.KBZPAY) == hash("KBZPAY")


def test_payout_repr_masks_account_and_name() -> None:
    """The repr shows only the account's tail and the name's first letter."""
    text = repr(make_payout(bank_number="3560123456789012", name="Ko Min Thu"))
    assert "3560123456789012" not in text
    assert "Ko Min Thu" not in text
    assert "****9012" in text
    assert "K***" in text
    assert "VX20260331004567" in text


def test_deposit_repr_masks_name() -> None:
    """A deposit's repr masks the payer's name."""
    text = repr(make_deposit(name="Daw Aye Aye"))
    assert "Daw Aye Aye" not in text
    assert "D***" in text


def test_deposit_minimum_is_one_kyat() -> None:
    """Deposits accept any whole amount from 1 (payouts start at 100)."""
    assert make_deposit(amount=1).amount == 1
    with pytest.raises(InvalidRequestError, match="amount: must be at least 1"):
        make_deposit(amount=0)


def test_deposit_optional_fields() -> None:
    """way_code, channel_code, return_url and remark are checked when given."""
    deposit = make_deposit(
        way_code="WAVEPAY",
        channel_code="EWALLET",
        return_url="https://127.0.0.1/back",
        remark="order 7",
    )
    assert deposit.way_code == BankCode.WAVEPAY
    assert make_deposit().way_code is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("way_code", "KPZPAY"),
        ("channel_code", ""),
        ("return_url", "back.html"),
        ("name", " Daw Aye"),
        ("amount", 1.0),
        ("trade_no", "x" * 65),
        ("notify_url", "notify"),
    ],
)
def test_deposit_refuses_each_bad_field_and_names_it(field: str, value: object) -> None:
    """Deposits refuse bad fields and name the field in the error."""
    with pytest.raises(InvalidRequestError) as e:
        make_deposit(**{field: value})
    assert e.value.field == field


def test_status_compares_equal_to_the_raw_code() -> None:
    """A status equals and hashes like the code string the gateway sent."""
    status = TransactionStatus("0015")
    assert status == "0015"
    assert status != "15"
    assert hash(status) == hash("0015")
    assert status in {"0000", "0015"}
    assert status == TransactionStatus.PROCESSING


@pytest.mark.parametrize(
    ("code", "kind", "final"),
    [
        ("0000", StatusKind.SUCCESS, True),
        ("0001", StatusKind.PARTIAL, True),
        ("0015", StatusKind.PROCESSING, False),
        ("00029", StatusKind.FAILED, True),
        ("0100019", StatusKind.FAILED, True),
        ("00032", StatusKind.UNKNOWN, False),
        ("9999", StatusKind.UNKNOWN, False),
        ("29", StatusKind.UNKNOWN, False),
        ("0029", StatusKind.UNKNOWN, False),
        ("", StatusKind.UNKNOWN, False),
    ],
)
def test_status_kinds(code: str, kind: StatusKind, final: bool) -> None:
    """Each documented code has its meaning; anything else is UNKNOWN."""
    status = TransactionStatus(code)
    assert status.kind is kind
    assert status.is_final is final
    assert status.is_success is (kind is StatusKind.SUCCESS)
    assert status.is_failed is (kind is StatusKind.FAILED)
    assert status.is_processing is (kind is StatusKind.PROCESSING)


@pytest.mark.parametrize("code", ["9999", "00032", "8000", "5000", "0029"])
def test_unknown_codes_are_never_failed(code: str) -> None:
    """An unknown or undocumented code never reads as failed (no double pay)."""
    status = TransactionStatus(code)
    assert not status.is_failed
    assert not status.is_final
    assert status == code


def test_status_constants_and_repr() -> None:
    """The constants carry the documented codes; the repr shows the kind."""
    assert TransactionStatus.SUCCESS == "0000"
    assert TransactionStatus.PARTIAL == "0001"
    assert TransactionStatus.FAILED == "00029"
    assert repr(TransactionStatus("0015")) == "TransactionStatus('0015', processing)"
    assert repr(TransactionStatus("7")) == "TransactionStatus('7', unknown)"


def test_result_raw_does_not_affect_equality() -> None:
    """Two results with the same fields are equal whatever their raw data."""
    a = PayoutResult(trade_no="T", status=TransactionStatus("0015"), raw={"x": 1})
    b = PayoutResult(trade_no="T", status=TransactionStatus("0015"), raw={"y": 2})
    assert a == b
    assert "raw" not in repr(a)


def test_balance_optional_fields_default_to_none() -> None:
    """Only available_amount is required in a Balance."""
    balance = Balance(available_amount=Decimal(5))
    assert balance.freeze_amount is None
    assert balance.unsettled_amount is None
