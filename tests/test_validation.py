"""Tests for the field checks that run before anything is sent."""

from __future__ import annotations

import decimal
import sys
import unicodedata
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from vexora_async import InvalidRequestError
from vexora_async._validation import (
    _CONTROL,
    _WHITESPACE,
    MIN_PAYOUT_AMOUNT,
    check_account,
    check_delay,
    check_optional_text,
    check_optional_url,
    check_retries,
    check_seconds,
    check_text,
    check_trade_no,
    check_url,
    to_amount,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (100, Decimal(100)),
        (250_000, Decimal(250_000)),
        (Decimal(100), Decimal(100)),
        (Decimal("100.00"), Decimal(100)),
        (Decimal("1E+2"), Decimal(100)),
    ],
)
def test_amount_accepts_integral_ints_and_decimals(
    value: object, expected: Decimal
) -> None:
    """Whole kyat as int or Decimal pass, normalised to exponent 0."""
    amount = to_amount(value, minimum=MIN_PAYOUT_AMOUNT)
    assert amount == expected
    assert amount.as_tuple().exponent == 0


@pytest.mark.parametrize(
    "value",
    [100.0, 1e3, float("nan"), float("inf"), True, False, "100", b"100", None, [100]],
)
def test_amount_refuses_floats_bools_strings_and_others(value: object) -> None:
    """Only int and Decimal are money; floats, bools and strings are refused."""
    with pytest.raises(InvalidRequestError, match="must be an int or a Decimal") as e:
        to_amount(value)
    assert e.value.field == "amount"


@pytest.mark.parametrize(
    "value",
    [
        Decimal("100.5"),
        Decimal("100.01"),
        Decimal("NaN"),
        Decimal("sNaN"),
        Decimal("Infinity"),
        Decimal("-Infinity"),
    ],
)
def test_amount_refuses_fractions_and_non_finite_decimals(value: Decimal) -> None:
    """A fraction of a kyat, NaN or infinity is not an amount."""
    with pytest.raises(InvalidRequestError, match="whole number of kyat"):
        to_amount(value)


@pytest.mark.parametrize("value", [99, Decimal(99), 0, -100, Decimal("-0")])
def test_payout_amount_minimum_is_100(value: object) -> None:
    """Below the documented minimum of 100 kyat is refused."""
    with pytest.raises(InvalidRequestError, match="at least 100"):
        to_amount(value, minimum=MIN_PAYOUT_AMOUNT)


def test_amount_field_name_is_reported() -> None:
    """The error names the field the caller gave, not always "amount"."""
    with pytest.raises(InvalidRequestError) as e:
        to_amount(5, field="order_amount", minimum=100)
    assert e.value.field == "order_amount"
    assert str(e.value).startswith("order_amount: ")


@pytest.mark.parametrize(
    "value", [10**15 - 1, Decimal(10**15 - 1), Decimal("9.99999999999999E+14")]
)
def test_amounts_up_to_15_digits_stay_exact(value: object) -> None:
    """Amounts up to 15 digits pass with their exact value."""
    assert to_amount(value) == Decimal(value)  # type: ignore[arg-type]  # int or Decimal


@given(st.integers(min_value=100, max_value=10**15 - 1))
def test_any_integer_from_100_is_accepted_exactly(value: int) -> None:
    """Every int from 100 to 15 digits passes and keeps its exact value."""
    assert to_amount(value, minimum=100) == value


def test_amount_ignores_a_lowered_decimal_context() -> None:
    """A caller's low decimal precision does not round or break an amount."""
    with decimal.localcontext() as ctx:
        ctx.prec = 2
        assert to_amount(123_456) == Decimal(123_456)
        assert str(to_amount(Decimal("123456.000"))) == "123456"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "must not be empty"),
        (" Ko Min Thu", "leading or trailing whitespace"),
        ("Ko Min Thu ", "leading or trailing whitespace"),
        ("Ko\u00a0", "leading or trailing whitespace"),
        ("Ko\x00Min", "control characters"),
        ("Ko\tMin", "control characters"),
        ("x" * 257, "longer than 256"),
        (5, "must be a str, not int"),
        (None, "must be a str, not NoneType"),
    ],
)
def test_text_refusals(value: object, reason: str) -> None:
    """Free text is non-empty, untrimmed, printable and bounded."""
    with pytest.raises(InvalidRequestError, match=reason) as e:
        check_text("name", value)
    assert e.value.field == "name"
    assert reason in e.value.reason


@pytest.mark.parametrize("value", ["Ko Min Thu", "ကိုမင်းသူ", "x" * 256, "A"])
def test_text_accepts_inner_spaces_and_myanmar_script(value: str) -> None:
    """Names with inner spaces and in Myanmar script are kept as they are."""
    assert check_text("name", value) == value


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("3560 1234", "contains whitespace"),
        (" 3560", "leading or trailing whitespace"),
        ("3560\u3000", "leading or trailing whitespace"),
        ("", "must not be empty"),
        ("1" * 65, "longer than 64"),
    ],
)
def test_account_refusals(value: str, reason: str) -> None:
    """An account number has no whitespace at all, never trimmed."""
    with pytest.raises(InvalidRequestError, match=reason):
        check_account("bank_number", value)


def test_account_is_returned_unchanged() -> None:
    """A valid account number comes back byte for byte."""
    assert check_account("bank_number", "09-7654321") == "09-7654321"


@pytest.mark.parametrize(
    "value", ["VX20260331004567", "a", "x" * 64, "test_00000002", "!~"]
)
def test_trade_no_accepts_printable_ascii_up_to_64(value: str) -> None:
    """A tradeNo of 1 to 64 printable ASCII characters is fine."""
    assert check_trade_no("trade_no", value) == value


@pytest.mark.parametrize(
    "value", ["", "x" * 65, "VX 1", " VX1", "VX1\n", "VXé1", "VX\x7f", "ကို"]
)
def test_trade_no_refusals(value: str) -> None:
    """Empty, too long, whitespace and non-ASCII tradeNos are refused."""
    with pytest.raises(InvalidRequestError, match="1 to 64 printable ASCII") as e:
        check_trade_no("trade_no", value)
    assert e.value.field == "trade_no"


def test_trade_no_must_be_a_str() -> None:
    """An int tradeNo is refused rather than converted."""
    with pytest.raises(InvalidRequestError, match="must be a str, not int"):
        check_trade_no("trade_no", 20260331004567)


@pytest.mark.parametrize(
    "value",
    [
        "http://127.0.0.1:8091/vexora/notify",
        "https://127.0.0.1/notify?x=1",
        "http://[::1]:8091/n",
        "HTTPS://127.0.0.1/n",
    ],
)
def test_url_accepts_absolute_http_and_https(value: str) -> None:
    """Absolute http(s) URLs with a host pass."""
    assert check_url("notify_url", value) == value


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("/vexora/notify", "absolute http"),
        ("127.0.0.1/notify", "absolute http"),
        ("ftp://127.0.0.1/notify", "absolute http"),
        ("http:///notify", "absolute http"),
        ("mailto:ops@127.0.0.1", "absolute http"),
        ("http://[::1/notify", "not a valid URL"),
        ("http://127.0.0.1/a b", "contains whitespace"),
        (" http://127.0.0.1/", "leading or trailing whitespace"),
        ("", "must not be empty"),
        ("http://127.0.0.1/" + "a" * 1024, "longer than 1024"),
    ],
)
def test_url_refusals(value: str, reason: str) -> None:
    """Relative, non-http, malformed and padded URLs are refused."""
    with pytest.raises(InvalidRequestError, match=reason) as e:
        check_url("notify_url", value)
    assert e.value.field == "notify_url"


def test_optional_checks_take_none_and_check_the_rest() -> None:
    """None means "not sent"; anything else is checked like a required field."""
    assert check_optional_text("remark", None) is None
    assert check_optional_url("return_url", None) is None
    assert check_optional_text("remark", "r1") == "r1"
    with pytest.raises(InvalidRequestError, match="remark: must not be empty"):
        check_optional_text("remark", "")
    with pytest.raises(InvalidRequestError, match="return_url: must be an absolute"):
        check_optional_url("return_url", "/back")


# -- the fast paths agree with the rules they stand for --------------------


def test_control_pattern_is_unicode_category_cc() -> None:
    """The control-character regex matches exactly the code points of Cc."""
    mismatches = [
        cp
        for cp in range(sys.maxunicode + 1)
        if bool(_CONTROL.match(chr(cp))) != (unicodedata.category(chr(cp)) == "Cc")
    ]
    assert mismatches == []


def test_whitespace_pattern_is_str_isspace() -> None:
    """The whitespace regex matches exactly the characters str.isspace() does."""
    mismatches = [
        cp
        for cp in range(sys.maxunicode + 1)
        if bool(_WHITESPACE.match(chr(cp))) != chr(cp).isspace()
    ]
    assert mismatches == []


@given(st.integers(min_value=-(10**40), max_value=10**40))
def test_int_amount_fast_path_matches_decimal(value: int) -> None:
    """An int amount reads exactly as the same amount given as a Decimal."""
    try:
        expected: Decimal | str = to_amount(Decimal(value), minimum=100)
    except InvalidRequestError as exc:
        expected = str(exc)
    try:
        got: Decimal | str = to_amount(value, minimum=100)
    except InvalidRequestError as exc:
        got = str(exc)
    assert got == expected
    if isinstance(got, Decimal):
        assert got.as_tuple() == Decimal(value).as_tuple()


@pytest.mark.parametrize(
    "url",
    [
        "ftp://127.0.0.1/x",
        "/relative",
        "http://",
        "http://127.0.0.1/a b",
        "http://[::1",
    ],
)
def test_bad_url_refused_every_time(url: str) -> None:
    """A bad URL is refused on every check, not only the first (the cache)."""
    for _ in range(2):
        with pytest.raises(InvalidRequestError) as info:
            check_url("notify_url", url)
        assert info.value.field == "notify_url"


@pytest.mark.parametrize("field", ["name", "remark"])
def test_lone_surrogates_are_refused(field: str) -> None:
    """Text that cannot be UTF-8 encoded is refused before anything is signed."""
    with pytest.raises(InvalidRequestError, match="lone surrogate") as info:
        check_text(field, "Ko \ud800 Thu")
    assert info.value.field == field


@pytest.mark.parametrize("value", [0.001, 1, 30.5, 86_400, 86_400.0])
def test_seconds_accepts_positive_finite_numbers_up_to_a_day(value: float) -> None:
    """A day is the longest timeout or deadline; ints and floats both pass."""
    assert check_seconds("deadline", value) == float(value)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (float("nan"), "finite"),
        (float("inf"), "finite"),
        (-1, "more than 0"),
        (0, "more than 0"),
        (86_400.001, "at most 86,400"),
        (10**400, "at most 86,400"),
        (True, "not bool"),
        ("5", "not str"),
        (Decimal(5), "not Decimal"),
    ],
)
def test_seconds_refuses_what_would_switch_a_limit_off(
    value: object, reason: str
) -> None:
    """NaN compares false with everything; 10**400 overflowed float()."""
    with pytest.raises(InvalidRequestError, match=reason) as e:
        check_seconds("deadline", value)
    assert e.value.field == "deadline"


def test_delay_may_be_zero_but_not_negative() -> None:
    """No backoff is a choice; a negative one is a bug."""
    assert check_delay("backoff_max", 0) == 0.0
    with pytest.raises(InvalidRequestError, match="at least 0"):
        check_delay("backoff_max", -0.1)


@pytest.mark.parametrize("value", [-1, 101, True, 1.0, "1", None, 10**400])
def test_retries_are_an_int_from_0_to_100(value: object) -> None:
    """A bool is not a count; 2.0**attempt overflows past about a thousand."""
    with pytest.raises(InvalidRequestError) as e:
        check_retries("max_retries", value)
    assert e.value.field == "max_retries"
    assert check_retries("max_retries", 100) == 100
