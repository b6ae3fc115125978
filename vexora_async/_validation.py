"""Field checks run when a request record is built, before anything is sent.

Each check raises :class:`~vexora_async.InvalidRequestError` naming the field
and the reason. Nothing is stripped or rewritten silently: a value with
stray whitespace is refused, not trimmed, because a trimmed account number
is a different account.
"""

from __future__ import annotations

import functools
import math
import os
import re
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .exceptions import InvalidRequestError


if TYPE_CHECKING:
    from collections.abc import Callable

    import attrs


MIN_PAYOUT_AMOUNT = 100
#: Whole kyat, at most 15 digits: the gateway's own amount field, and far
#: beyond any payout. Checked before any arithmetic: ``Decimal("1e1000000")``
#: is nine characters, but turning it into an integer takes minutes.
MAX_AMOUNT_DIGITS = 15
MAX_AMOUNT = 10**MAX_AMOUNT_DIGITS - 1
# Digits after the point an integral amount may carry ("100.00" is fine).
_MAX_AMOUNT_SCALE = 15
#: Seconds: no timeout, deadline or backoff of ours needs more than a day.
MAX_SECONDS = 86_400
#: Retries and reconciliation queries per call; 2.0**attempt overflows
#: a float past about a thousand, and the deadline ends a call long before.
MAX_ATTEMPTS = 100
#: Connections (the SDK opens one small pool per connection) and workers.
MAX_CONNECTIONS = 10_000
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
    or a ``Decimal``. At most :data:`MAX_AMOUNT_DIGITS` digits, checked
    before any arithmetic on the value.
    """
    if type(value) is int:
        # The common case, cheaply: an int is integral and finite, and its
        # Decimal already has exponent 0 (what quantize would give).
        _check_amount_range(field, value, minimum)
        return Decimal(value)
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        raise InvalidRequestError(
            field,
            f"must be an int or a Decimal, not {type(value).__name__}",
        )
    if isinstance(value, int):  # an int subclass: compare before Decimal()
        _check_amount_range(field, value, minimum)
    amount = Decimal(value)
    if not amount.is_finite():
        raise _not_whole(field)
    # Sign, size and scale first: comparisons, to_integral_value() and int()
    # work on every digit the exponent implies.
    if amount.is_signed():
        raise InvalidRequestError(field, f"must be at least {minimum}")
    _sign, digits, exponent = amount.as_tuple()
    if not isinstance(exponent, int) or exponent < -_MAX_AMOUNT_SCALE:
        raise InvalidRequestError(
            field,
            f"has more than {_MAX_AMOUNT_SCALE} digits after the point "
            "(whole kyat only)",
        )
    if len(digits) + exponent > MAX_AMOUNT_DIGITS:
        raise _too_large(field)
    if amount != amount.to_integral_value():
        raise _not_whole(field)
    if amount < minimum:
        raise InvalidRequestError(field, f"must be at least {minimum}")
    # Not quantize(): it raises past the context's precision (28 digits by
    # default, less if the caller lowered it). int() is exact at any size.
    return Decimal(int(amount))


def _check_amount_range(field: str, value: int, minimum: int) -> None:
    if value < minimum:
        raise InvalidRequestError(field, f"must be at least {minimum}")
    if value > MAX_AMOUNT:
        raise _too_large(field)


def _too_large(field: str) -> InvalidRequestError:
    return InvalidRequestError(
        field, f"must be at most {MAX_AMOUNT:,} ({MAX_AMOUNT_DIGITS} digits)"
    )


def _not_whole(field: str) -> InvalidRequestError:
    return InvalidRequestError(
        field, "must be a whole number of kyat (the gateway takes integers only)"
    )


def check_seconds(
    field: str,
    value: object,
    *,
    allow_zero: bool = False,
    maximum: int = MAX_SECONDS,
) -> float:
    """Check a duration: a finite int or float of seconds, by default up to a day.

    Positive, or also zero with *allow_zero* (a backoff may be none; a
    timeout or a deadline of zero could only fail). Refuses bools, NaN,
    infinities and anything over *maximum* (default :data:`MAX_SECONDS`),
    which would overflow or switch a limit off rather than set it.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidRequestError(
            field, f"must be a number of seconds, not {type(value).__name__}"
        )
    # An int is compared exactly: float(10**400) would overflow.
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidRequestError(field, f"must be a finite number, not {value}")
    if value < 0 or (value == 0 and not allow_zero):
        bound = "at least 0" if allow_zero else "more than 0"
        raise InvalidRequestError(field, f"must be {bound} seconds")
    if value > maximum:
        raise InvalidRequestError(field, f"must be at most {maximum:,} seconds")
    return float(value)


def check_delay(field: str, value: object) -> float:
    """Check a delay in seconds: zero allowed; see :func:`check_seconds`."""
    return check_seconds(field, value, allow_zero=True)


def check_count(
    field: str, value: object, minimum: int, maximum: int | None = None
) -> int:
    """Check an int (not a bool) between *minimum* and *maximum* (if any)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequestError(field, f"must be an int, not {type(value).__name__}")
    if maximum is None:
        if value < minimum:
            raise InvalidRequestError(field, f"must be at least {minimum}")
    elif not minimum <= value <= maximum:
        raise InvalidRequestError(
            field, f"must be an int from {minimum} to {maximum:,}"
        )
    return value


def check_retries(field: str, value: object) -> int:
    """Check a number of retries: 0 to :data:`MAX_ATTEMPTS`."""
    return check_count(field, value, 0, MAX_ATTEMPTS)


def check_attempts(field: str, value: object) -> int:
    """Check a number of attempts or queries: 1 to :data:`MAX_ATTEMPTS`."""
    return check_count(field, value, 1, MAX_ATTEMPTS)


def check_callable(field: str, value: object) -> None:
    """Check that *value* can be called (a clock, a hook)."""
    if not callable(value):
        raise InvalidRequestError(
            field, f"must be callable, not {type(value).__name__}"
        )


def check_path(field: str, value: object) -> None:
    """Check a file path: a ``str`` or ``os.PathLike`` with no NUL character."""
    path = os.fspath(value) if isinstance(value, os.PathLike) else value
    if not isinstance(path, str):
        raise InvalidRequestError(
            field, f"must be a str or os.PathLike, not {type(value).__name__}"
        )
    if not path or "\x00" in path:
        raise InvalidRequestError(field, "must be a non-empty path with no NUL")


#: A callback body is a few hundred bytes; no cap of ours needs more.
MAX_NOTIFICATION_BYTES = 16 * 1024 * 1024
#: The gateway retries a callback for 24 hours; a week is generous.
MAX_NOTIFICATION_AGE = 7 * MAX_SECONDS
# Epoch seconds before the year 5000.
_MAX_EPOCH = 95_617_584_000


def check_kind(field: str, value: object) -> None:
    """Check a notification kind: ``"payout"``, ``"deposit"`` or ``None``."""
    if value is not None and value not in ("payout", "deposit"):
        raise InvalidRequestError(field, "must be 'payout', 'deposit' or None")


def check_notification_options(
    *, kind: object, max_bytes: object, max_age: object, now: object
) -> None:
    """Check :func:`~vexora_async.notifications.parse_notification`'s options.

    ``max_age=nan`` would switch the age check off and ``max_bytes="5"``
    fail as a bare ``TypeError``: each is refused here, naming the option.
    """
    check_kind("kind", kind)
    check_count("max_bytes", max_bytes, 1, MAX_NOTIFICATION_BYTES)
    if max_age is not None:
        check_seconds("max_age", max_age, maximum=MAX_NOTIFICATION_AGE)
    if now is not None:
        check_seconds("now", now, allow_zero=True, maximum=_MAX_EPOCH)


def check_flag(field: str, value: object) -> bool:
    """Check a switch: ``True`` or ``False``, nothing merely truthy."""
    if not isinstance(value, bool):
        raise InvalidRequestError(
            field, f"must be True or False, not {type(value).__name__}"
        )
    return value


def encodable(text: str) -> bool:
    """Tell whether UTF-8 can encode *text*, that is, it holds no lone surrogate."""
    return _SURROGATE.search(text) is None


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
    if not encodable(value):
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
