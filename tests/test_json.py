"""The wire's JSON: orjson and the standard library agree exactly."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from vexora_async import _json


# Lone surrogates cannot be UTF-8; the signer refuses them before this.
TEXT = st.text(st.characters(exclude_categories=["Cs"]))


@pytest.fixture(params=["orjson", "stdlib"])
def codec(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test with orjson, then with the standard library alone."""
    if request.param == "stdlib":
        monkeypatch.setattr(_json, "orjson", None)
    else:
        assert _json.orjson is not None
    name: str = request.param
    return name


@given(st.dictionaries(TEXT, TEXT))
def test_body_bytes_are_the_stdlib_bytes(fields: dict[str, str]) -> None:
    """A request body is byte for byte what json.dumps gives (orjson or not)."""
    expected = json.dumps(fields, ensure_ascii=False, separators=(",", ":"))
    assert _json.dumps(fields) == expected.encode()
    assert _json.orjson is not None
    assert _json.orjson.dumps(fields) == expected.encode()


@given(st.dictionaries(TEXT, TEXT))
def test_sorted_bytes_are_the_stdlib_bytes(fields: dict[str, str]) -> None:
    """The fingerprint's bytes are json.dumps(sort_keys=True)'s, orjson or not."""
    expected = json.dumps(
        fields, sort_keys=True, ensure_ascii=False, separators=(",", ":")
    ).encode()
    assert _json.dumps_sorted(fields) == expected
    assert _json.orjson is not None
    orjson, _json.orjson = _json.orjson, None
    try:
        assert _json.dumps_sorted(fields) == expected
    finally:
        _json.orjson = orjson


@pytest.mark.parametrize("codec_name", ["orjson", "stdlib"])
def test_fingerprints_are_stable_across_versions(
    codec_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fingerprints stored by 0.1.0 in a shared ledger still match (pinned)."""
    from vexora_async._idempotency import fingerprint

    if codec_name == "stdlib":
        monkeypatch.setattr(_json, "orjson", None)
    payout = {
        "amount": "100",
        "bankCode": "KBZPAY",
        "bankNumber": "3560123456789012",
        "name": "Ko Min Thu",
        "notifyUrl": "http://127.0.0.1/n",
        "tradeNo": "VX1",
        "remark": "r",
    }
    assert fingerprint(payout) == (
        "8cb627a5d03c1e3edd5ec83436efaa638d504dc4a64136852ccfd24b3c8effb9"
    )
    assert fingerprint({"name": 'မောင် "x"\n', "tradeNo": "VX2"}) == (
        "f5e4c95f08acc96d711a054fb4801acf52bd34626fb7e699842c6ab873e9f39a"
    )


@pytest.mark.parametrize(
    "body",
    [
        b'{"amount":3.0000,"n":[1.5,{"x":0.1}]}',
        b'{"big":123456789012345678901234567890}',
        b'{"v":NaN}',
        b'{"code":"0000","data":{"tradeNo":"VX1","amount":"300.00"}}',
        b'{"msg":"\\u00e9\\ud83d\\ude00","x":null,"t":true}',
    ],
)
def test_answers_read_as_the_stdlib_reads_them(codec: str, body: bytes) -> None:
    """Fractions are Decimal, big ints exact, NaN accepted, with either codec."""
    expected = json.loads(body, parse_float=Decimal)
    got = _json.loads(body)
    assert got == expected
    assert repr(got) == repr(expected)


@pytest.mark.parametrize("body", [b"{", b"\xff\xfe", b'{"a":1}x', b""])
def test_bad_answers_raise_value_error(codec: str, body: bytes) -> None:
    """Broken JSON or UTF-8 raises ValueError, as json.loads does."""
    with pytest.raises(ValueError):  # noqa: PT011 - the contract is ValueError
        _json.loads(body)


@pytest.mark.parametrize(
    "body",
    [
        b'{"code":"8000","code":"0000"}',
        b'{"data":{"status":"0000","status":"00029"}}',
        b'{"a":[{"x":1,"x" : 2}]}',
        b'{"a":1.5,"a":2}',
        # One compact, one spaced: a count of '":' alone would miss it.
        b'{"code":"8000","code"\t:"0000"}',
        b'{"code":"8000","code"\r\n:"0000"}',
    ],
)
def test_duplicate_keys_are_refused(codec: str, body: bytes) -> None:
    """Two readings of one answer: refused, never last-wins (orjson or not)."""
    with pytest.raises(ValueError, match="duplicated key"):
        _json.loads(body)


@pytest.mark.parametrize(
    "body",
    [
        b'{"msg":"say \\":\\" twice","code":"0000"}',
        b'{"msg":"\\":","data":{"k":"v"}}',
        b'{"a" :\t1, "b"\n: 2}',
    ],
)
def test_colons_inside_strings_are_not_keys(codec: str, body: bytes) -> None:
    """A quote-colon inside a string only sends us to the stdlib, which agrees."""
    assert _json.loads(body) == json.loads(body)
