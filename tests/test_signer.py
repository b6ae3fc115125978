"""Tests for the signer: the fact sheet's vectors and its properties."""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from vexora_async import InvalidRequestError, canonical_string, sign, verify


SECRET = "app-secret-0001"
VECTORS = [
    (
        (
            '{"amount":"100","bankCode":"KBZPAY","bankNumber":"3560123456789012",'
            '"name":"Ko Min Thu","tradeNo":"VX20260331004567","notifyUrl":'
            '"https://merchant-api.com/payment/vexora/payout/notify",'
            '"timestamp":"1719876543210","remark":""}'
        ),
        "49b0add97f2b4b6e51ee264e145e3d13",
    ),
    (
        '{"tradeNo":"test_00000002","timestamp":"1728613320708"}',
        "6ccd0944ed42d02b91b2a0d36547b866",
    ),
    (
        (
            '{"platFormTradeNo":"vx8f3k29d0qplm7x2","tradeNo":"VX20260331004567",'
            '"amount":"100","status":"0000","message":"SUCCESS",'
            '"successTime":"2026-03-31 18:34:31","timestamp":"1774953271000"}'
        ),
        "11cf5c6a611d50f5ffde1befab3cd912",
    ),
]

keys = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="="),
    min_size=1,
    max_size=12,
).filter(lambda k: k != "sign")
values = st.text(min_size=1, max_size=20)
params = st.dictionaries(keys, values, min_size=1, max_size=8)


@pytest.mark.parametrize(("body", "expected"), VECTORS)
def test_vectors(body: str, expected: str) -> None:
    """The fact sheet's three vectors reproduce exactly."""
    assert sign(json.loads(body), SECRET) == expected
    assert verify(json.loads(body), SECRET, expected)


def test_canonical_string_of_first_vector() -> None:
    """The canonical string matches the one the fact sheet prints."""
    assert canonical_string(json.loads(VECTORS[0][0])) == (
        "amount=100bankCode=KBZPAYbankNumber=3560123456789012name=Ko Min Thu"
        "notifyUrl=https://merchant-api.com/payment/vexora/payout/notify"
        "timestamp=1719876543210tradeNo=VX20260331004567"
    )


def test_ordinal_order_is_case_sensitive() -> None:
    """Upper-case keys sort before lower-case ones, as in Java's TreeMap."""
    assert canonical_string({"b": "1", "B": "2", "a": "3"}) == "B=2a=3b=1"


def test_nested_values_and_nulls_are_skipped() -> None:
    """Objects, arrays and nulls are not signed; bools and numbers are."""
    assert (
        canonical_string(
            {
                "a": {"x": 1},
                "b": [1],
                "c": None,
                "d": True,
                "e": 5,
                "f": Decimal("3.0000"),
            }
        )
        == "d=truee=5f=3.0000"
    )


def test_float_is_refused() -> None:
    """A float has no single text form, so signing one is an error of ours."""
    with pytest.raises(InvalidRequestError, match="amount"):
        sign({"amount": 1.5}, SECRET)


def test_sign_is_lowercase_md5_of_canonical_plus_secret() -> None:
    """The secret is appended bare, and the digest is lowercase hex."""
    expected = hashlib.md5(b"a=1" + SECRET.encode(), usedforsecurity=False).hexdigest()
    assert sign({"a": "1"}, SECRET) == expected


@pytest.mark.parametrize(
    "received",
    [
        "49B0ADD97F2B4B6E51EE264E145E3D13",
        "49b0add97f2b4b6e51ee264e145e3d1",
        " 49b0add97f2b4b6e51ee264e145e3d13",
        "",
        None,
        49,
        "49b0add97f2b4b6e51ee264e145e3d1\u0663",
    ],
)
def test_verify_refuses_anything_but_the_exact_sign(received: object) -> None:
    """Uppercase, truncated, padded, missing, non-str and non-ASCII signs fail."""
    assert not verify(json.loads(VECTORS[0][0]), SECRET, received)


@given(params)
def test_key_order_never_matters(p: dict[str, str]) -> None:
    """Any insertion order of the same fields signs the same."""
    assert sign(p, SECRET) == sign(dict(reversed(list(p.items()))), SECRET)


@given(params, st.text(max_size=40))
def test_sign_and_empty_values_are_ignored(p: dict[str, str], old_sign: str) -> None:
    """Adding a sign field or empty-valued fields changes nothing."""
    extended = {**p, "sign": old_sign, "zzEmpty": "", "zzNone": None}
    assert sign(extended, SECRET) == sign(p, SECRET)


@given(params, st.data())
def test_any_change_to_a_value_changes_the_sign(
    p: dict[str, str], data: st.DataObject
) -> None:
    """Changing one signed value changes the signature."""
    key = data.draw(st.sampled_from(sorted(p)))
    new = data.draw(values.filter(lambda v: v != p[key]))
    assert sign({**p, key: new}, SECRET) != sign(p, SECRET)


@given(params, st.data())
def test_any_change_to_a_key_changes_the_sign(
    p: dict[str, str], data: st.DataObject
) -> None:
    """Renaming one signed key changes the signature."""
    key = data.draw(st.sampled_from(sorted(p)))
    new_key = data.draw(keys.filter(lambda k: k not in p))
    changed = {k: v for k, v in p.items() if k != key} | {new_key: p[key]}
    assert canonical_string(changed) != canonical_string(p)
    assert sign(changed, SECRET) != sign(p, SECRET)


@given(
    st.text(
        alphabet=st.characters(min_codepoint=0x1000, max_codepoint=0x109F), min_size=1
    )
)
def test_myanmar_script_names_sign_as_utf8(name: str) -> None:
    """Names in Myanmar script are signed over their UTF-8 bytes."""
    expected = hashlib.md5(
        f"name={name}".encode() + SECRET.encode(), usedforsecurity=False
    ).hexdigest()
    assert sign({"name": name}, SECRET) == expected
    assert verify({"name": name}, SECRET, expected)


def test_lone_surrogate_is_our_error() -> None:
    """Signing text that is not valid Unicode raises our error, not Python's."""
    with pytest.raises(InvalidRequestError, match="lone surrogate"):
        sign({"name": "\udc80"}, SECRET)
