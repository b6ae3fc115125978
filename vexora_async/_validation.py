"""Field checks run when a request record is built, before anything is sent.

Each check raises :class:`~vexora_async.InvalidRequestError` naming the field
and the reason. Nothing is stripped or rewritten silently: a value with
stray whitespace is refused, not trimmed, because a trimmed account number
is a different account.
"""

from __future__ import annotations

import functools
import re
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .exceptions import InvalidRequestError


if TYPE_CHECKING:
    from collections.abc import Callable

    import attrs


MIN_PAYOUT_AMOUNT = 100
# Printable ASCII without whitespace: safe in any header, log line and URL,
# and what the gateway's own examples use. 64 is our cap, not the gateway's
# (it documents none); see "Gateway assumptions".
_TRADE_NO = re.compile(r"[!-~]{1,64}")
_MAX_TEXT = 256
# Unicode category Cc is exactly these 65 code points (fixed by Unicode's
# stability policy); one regex search is ~10x faster than a per-character
# unicodedata.category() loop, and every payout checks three texts.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
# A lone surrogate is not text: it cannot be encoded as UTF-8, so it could
# be neither signed nor sent.
_SURROGATE = re.compile("[\ud800-\udfff]")
# \s in a str pattern is str.isspace(), character for character.
_WHITESPACE = re.compile(r"\s")


def to_amount(value: object, *, field: str = "amount", minimum: int = 1) -> Decimal:
    """Return *value* as an integral Decimal, refusing floats and bools.

    Floats are refused because ``0.1 + 0.2`` is not money; pass an ``int``
    or a ``Decimal``.
    """
    if type(value) is int:
        # The common case, cheaply: an int is integral and finite, and its
        # Decimal already has exponent 0 (what quantize would give).
        if value < minimum:
            raise InvalidRequestError(field, f"must be at least {minimum}")
        return Decimal(value)
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        raise InvalidRequestError(
            field,
            f"must be an int or a Decimal, not {type(value).__name__}",
        )
    try:
        amount = Decimal(value)
        integral = amount.is_finite() and amount == amount.to_integral_value()
    except InvalidOperation:
        integral = False
    if not integral:
        raise InvalidRequestError(
            field, "must be a whole number of kyat (the gateway takes integers only)"
        )
    if amount < minimum:
        raise InvalidRequestError(field, f"must be at least {minimum}")
    # Not quantize(): it raises past the context's precision (28 digits by
    # default, less if the caller lowered it). int() is exact at any size.
    return Decimal(int(amount))


def check_text(field: str, value: object, *, max_length: int = _MAX_TEXT) -> str:
    """Check a free-text field: a non-empty str with no edge whitespace."""
    if not isinstance(value, str):
        raise InvalidRequestError(field, f"must be a str, not {type(value).__name__}")
    if not value:
        raise InvalidRequestError(field, "must not be empty")
    if value != value.strip():
        raise InvalidRequestError(
            field, "has leading or trailing whitespace (refused, not trimmed)"
        )
    if len(value) > max_length:
        raise InvalidRequestError(field, f"is longer than {max_length} characters")
    if _CONTROL.search(value):
        raise InvalidRequestError(field, "contains control characters")
    if _SURROGATE.search(value):
        raise InvalidRequestError(field, "is not valid Unicode (a lone surrogate)")
    return value


def check_account(field: str, value: object) -> str:
    """Check an account or wallet number: text with no whitespace at all."""
    text = check_text(field, value, max_length=64)
    if _WHITESPACE.search(text):
        raise InvalidRequestError(field, "contains whitespace")
    return text


def check_trade_no(field: str, value: object) -> str:
    """Check a merchant tradeNo: 1 to 64 printable ASCII characters."""
    if not isinstance(value, str):
        raise InvalidRequestError(field, f"must be a str, not {type(value).__name__}")
    if not _TRADE_NO.fullmatch(value):
        raise InvalidRequestError(
            field,
            "must be 1 to 64 printable ASCII characters without whitespace",
        )
    return value


def check_url(field: str, value: object) -> str:
    """Check an absolute http(s) URL with a host."""
    text = check_text(field, value, max_length=1024)
    problem = _url_problem(text)
    if problem is not None:
        raise InvalidRequestError(field, problem)
    return text


# A batch sends the same notifyUrl with every payout: parse it once.
@functools.lru_cache(maxsize=64)
def _url_problem(text: str) -> str | None:
    try:
        parts = urlsplit(text)
        host = parts.hostname
    except ValueError as exc:
        return f"is not a valid URL ({exc})"
    if parts.scheme not in {"http", "https"} or not host:
        return "must be an absolute http(s) URL"
    if _WHITESPACE.search(text):
        return "contains whitespace"
    return None


def check_optional_text(field: str, value: object) -> str | None:
    """Check an optional free-text field; ``None`` means "not sent"."""
    if value is None:
        return None
    return check_text(field, value)


def check_optional_url(field: str, value: object) -> str | None:
    """Check an optional URL; ``None`` means "not sent"."""
    return None if value is None else check_url(field, value)


def validator(
    check: Callable[[str, object], object],
) -> Callable[[object, attrs.Attribute[Any], object], None]:
    """Adapt a ``check(field, value)`` function to an attrs validator."""

    def run(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        check(attribute.name, value)

    return run
