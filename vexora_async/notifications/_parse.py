"""Gateway callbacks (notifications): verify and parse a body, no I/O.

The gateway POSTs a flat JSON object to the merchant's ``notifyUrl`` with
the transaction's final (or new) state and a ``sign`` over its fields
(see "Gateway assumptions" in the docs). :func:`parse_notification` takes the raw
body as received and either returns a typed record or raises a
:class:`~vexora_async.NotificationError`; nothing else comes out.

The sign is checked over the fields *as received*, never over a
re-serialisation: a JSON number such as ``3.0000`` keeps its literal text,
because that text is what the gateway signed (``Decimal`` would print
``0.00000015`` as ``1.5E-7``, and ``float`` would print ``3.0``).
"""

from __future__ import annotations

import json
import re
import time
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from vexora_async._json import unique_object
from vexora_async._models import BankCode, TransactionStatus
from vexora_async._secret import Secret, as_secret
from vexora_async._signer import SIGN_FIELD, canonical_string, sign, verify
from vexora_async._validation import check_notification_options, encodable
from vexora_async.exceptions import (
    InvalidRequestError,
    MalformedNotification,
    NotificationError,
    NotificationTooLarge,
    SignatureError,
    StaleNotification,
)

from ._records import (
    DepositNotification,
    Notification,
    NotificationKind,
    PayoutNotification,
)


if TYPE_CHECKING:
    from collections.abc import Mapping


#: A callback is a few hundred bytes; anything near this cap is not one.
DEFAULT_MAX_BYTES = 64 * 1024

_SIGN_LENGTH = 32
_LOWER_HEX = re.compile(r"[0-9a-f]{32}")
# The JSON number grammar, ASCII only. Decimal() alone would also take
# "1_000", " 1 ", "NaN" and non-ASCII digits, none of which is an amount.
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_LENIENT_AMOUNT = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_DIGITS = re.compile(r"[0-9]{1,19}")
_PAYIN_FIELDS = ("channelCode", "wayCode")
_PAYOUT_FIELDS = ("bankCode", "bankNumber")
_MAX_AMOUNT_DIGITS = 18


class _JsonNumber(str):
    """A JSON number, kept as the exact text it arrived as."""

    __slots__ = ()


# -- decoding ---------------------------------------------------------------


def _refuse_constant(name: str) -> object:
    # NaN and Infinity are not JSON; Python's parser accepts them by default.
    msg = f"{name} is not JSON"
    raise ValueError(msg)


def decode_fields(
    body: bytes | bytearray | memoryview, *, max_bytes: int = DEFAULT_MAX_BYTES
) -> dict[str, Any]:
    """Decode a callback body into its fields, numbers kept as literal text.

    Raises :class:`~vexora_async.NotificationTooLarge` over *max_bytes* and
    :class:`~vexora_async.MalformedNotification` for anything that is not a
    UTF-8 JSON object with unique keys. Verifies nothing.
    """
    if not isinstance(body, (bytes, bytearray, memoryview)):
        raise InvalidRequestError(
            "body", f"must be the raw request bytes, not {type(body).__name__}"
        )
    if len(body) > max_bytes:
        msg = f"the body is {len(body)} bytes, over the {max_bytes}-byte cap"
        raise NotificationTooLarge(msg)
    try:
        text = bytes(body).decode("utf-8")
    except UnicodeDecodeError as exc:
        msg = f"the body is not UTF-8 (bad byte at offset {exc.start})"
        raise MalformedNotification(msg) from exc
    try:
        obj = json.loads(
            text,
            parse_int=_JsonNumber,
            parse_float=_JsonNumber,
            parse_constant=_refuse_constant,
            object_pairs_hook=unique_object,
        )
    # ValueError covers bad JSON, NaN and duplicated keys; deep nesting
    # raises RecursionError.
    except (ValueError, RecursionError) as exc:
        msg = f"the body is not JSON ({_json_reason(exc)})"
        raise MalformedNotification(msg) from exc
    if not isinstance(obj, dict):
        msg = f"the body is a JSON {_json_type(obj)}, not an object"
        raise MalformedNotification(msg)
    for key, value in obj.items():
        # A lone surrogate ("\ud800") decodes but cannot be signed as UTF-8.
        if not encodable(key) or (isinstance(value, str) and not encodable(value)):
            msg = "the body holds a string that is not valid Unicode"
            raise MalformedNotification(msg)
    return obj


def _json_reason(exc: BaseException) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at offset {exc.pos}"
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return str(exc)[:80]


def _json_type(obj: object) -> str:
    if isinstance(obj, dict):
        return "object"
    if isinstance(obj, list):
        return "array"
    if isinstance(obj, _JsonNumber):
        return "number"
    if isinstance(obj, str):
        return "string"
    if isinstance(obj, bool):
        return "boolean"
    return "null"


def _plain(value: Any) -> Any:
    # Users get plain str, never our private str subclass.
    if isinstance(value, str):
        return str(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


# -- the signature ----------------------------------------------------------


def check_sign(fields: Mapping[str, Any], app_secret: str | Secret) -> None:
    """Raise :class:`~vexora_async.SignatureError` unless *fields* are signed.

    Constant-time over bytes. The message says what is wrong with the
    received sign (missing, uppercase, wrong length) but never what the
    right sign would be.
    """
    try:
        secret = as_secret(app_secret)
    finally:
        del app_secret
    received = fields.get(SIGN_FIELD)
    if received is None or received == "":
        msg = "the notification has no sign"
        raise SignatureError(msg)
    # A JSON number is a str to verify() here; the gateway sends a string.
    if not isinstance(received, _JsonNumber) and verify(fields, secret, received):
        return
    raise SignatureError(f"the sign {_sign_problem(received)}")


def _sign_problem(received: object) -> str:
    if not isinstance(received, str) or isinstance(received, _JsonNumber):
        return "is not a string"
    if len(received) != _SIGN_LENGTH:
        return f"has {len(received)} characters, not {_SIGN_LENGTH}"
    if _LOWER_HEX.fullmatch(received.lower()) and received != received.lower():
        return "is not lowercase hex (the gateway signs in lowercase)"
    if not _LOWER_HEX.fullmatch(received):
        return "is not lowercase hex"
    return "does not match the body and the app secret"


# -- the fields ---------------------------------------------------------------


def _missing(key: str) -> MalformedNotification:
    return MalformedNotification(f"the required field {key!r} is missing")


def _wrong_type(key: str, value: object, expected: str) -> MalformedNotification:
    return MalformedNotification(
        f"{key!r} is a JSON {_json_type(value)}, expected {expected}"
    )


def _text(fields: Mapping[str, Any], key: str, *, required: bool = False) -> str | None:
    value = fields.get(key)
    if value is None or value == "":
        if required:
            raise _missing(key)
        return None
    if isinstance(value, str):
        # A number-like id (tradeNo as a JSON number) keeps its digits.
        return str(value)
    raise _wrong_type(key, value, "a string")


def _status(fields: Mapping[str, Any]) -> TransactionStatus:
    value = fields.get("status")
    if value is None or value == "":
        raise _missing("status")
    # A number would have lost its leading zeros (0015 -> 15; 0000 -> 0).
    if isinstance(value, _JsonNumber) or not isinstance(value, str):
        raise _wrong_type("status", value, "a string code such as '0000'")
    return TransactionStatus(value)


def _amount(fields: Mapping[str, Any]) -> Decimal:
    value = fields.get("amount")
    if value is None or value == "":
        raise _missing("amount")
    if not isinstance(value, str):
        raise _wrong_type("amount", value, "a number or a numeric string")
    # Numbers are already in JSON's grammar; strings may drift ("300.00").
    text = value if isinstance(value, _JsonNumber) else value.strip(" ")
    pattern = _NUMBER if isinstance(value, _JsonNumber) else _LENIENT_AMOUNT
    if not pattern.fullmatch(text):
        msg = f"'amount' is not a decimal number ({value[:24]!r})"
        raise MalformedNotification(msg)
    try:
        amount = Decimal(text)
    # An exponent beyond Decimal's range ("1e99999999999999999999").
    except InvalidOperation as exc:
        msg = "'amount' is out of range"
        raise MalformedNotification(msg) from exc
    # No amount of money needs more; a wilder one would only fail later, in
    # the handler's arithmetic or database, as something other than ours.
    exponent = amount.as_tuple().exponent
    if amount.adjusted() > _MAX_AMOUNT_DIGITS or (
        isinstance(exponent, int) and exponent < -_MAX_AMOUNT_DIGITS
    ):
        msg = "'amount' is out of range"
        raise MalformedNotification(msg)
    return amount


def _timestamp(fields: Mapping[str, Any]) -> int | None:
    # Cosmetic unless max_age is on: an odd timestamp reads as None.
    value = fields.get("timestamp")
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        return int(value)
    return None


def _time(fields: Mapping[str, Any], key: str) -> datetime | None:
    value = fields.get(key)
    if isinstance(value, str) and not isinstance(value, _JsonNumber):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def _looks_like_deposit(fields: Mapping[str, Any]) -> bool:
    return _has_signed(fields, _PAYIN_FIELDS)


def _has_signed(fields: Mapping[str, Any], names: tuple[str, ...]) -> bool:
    # Only signed values count: an empty or nested value is left out of the
    # sign, so anyone could add one to turn a payout into a "deposit".
    return any(
        isinstance(fields.get(key), str) and fields.get(key) != "" for key in names
    )


def _check_kind(fields: Mapping[str, Any], kind: NotificationKind | None) -> None:
    # The sign does not bind the kind: a pay-in's callback, replayed to a
    # payout's notify URL, verifies there. Fields that belong to the other
    # kind give it away.
    if kind == "payout" and _has_signed(fields, _PAYIN_FIELDS):
        msg = (
            "a pay-in notification (it carries channelCode or wayCode) reached a "
            "payout receiver; give payouts and pay-ins separate notify URLs"
        )
        raise MalformedNotification(msg)
    if kind == "deposit" and _has_signed(fields, _PAYOUT_FIELDS):
        msg = (
            "a payout notification (it carries bankCode or bankNumber) reached a "
            "pay-in receiver; give payouts and pay-ins separate notify URLs"
        )
        raise MalformedNotification(msg)


def check_age(
    notification: Notification, *, max_age: float, now: float | None = None
) -> None:
    """Raise :class:`~vexora_async.StaleNotification` if it is too old.

    *max_age* is in seconds; *now* is epoch seconds (default: the clock). A
    notification without a usable ``timestamp``, or dated more than
    *max_age* in the future, is refused as well.
    """
    if notification.timestamp is None:
        msg = "the notification has no usable timestamp"
        raise StaleNotification(msg)
    current = time.time() if now is None else now
    age = current - notification.timestamp / 1000
    if abs(age) > max_age:
        direction = "old" if age > 0 else "in the future"
        msg = f"the notification is {abs(age):.0f} s {direction} (limit {max_age} s)"
        raise StaleNotification(msg)


def parse_notification(
    body: bytes | bytearray | memoryview,
    app_secret: str | Secret,
    *,
    kind: NotificationKind | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_age: float | None = None,
    now: float | None = None,
) -> Notification:
    """Verify a callback body and return it as a typed record.

    Checks, in order: size, UTF-8, JSON object, the ``sign``
    (constant-time, over the fields as received), the required fields
    ``tradeNo``, ``status`` and ``amount`` and, if asked, the
    ``timestamp``'s age. A refusal carries no traceback below this function
    and no ``__cause__`` traceback: those frames hold the body, which may
    carry an account number or a name, and error reporters record frame
    locals. An option of the wrong type or value raises
    :class:`~vexora_async.InvalidRequestError` naming it.

    :param body: The request body exactly as received (bytes, never a
        re-serialised dict).
    :param app_secret: A ``str`` or a :class:`~vexora_async.Secret`; this
        function's frame holds only the masked wrapper. Valid: non-empty
        text.
    :param kind: ``"payout"`` or ``"deposit"``: the record you expect.
        Give it, and give payouts and pay-ins their own ``notifyUrl``: the
        sign does not say which kind a body is, so with *kind* a body
        carrying the other kind's fields (``channelCode``/``wayCode`` for
        pay-ins, ``bankCode``/``bankNumber`` for payouts) is refused with
        :class:`~vexora_async.MalformedNotification`. Default ``None``: a
        :class:`DepositNotification` when the body carries a non-empty
        ``channelCode`` or ``wayCode``, a :class:`PayoutNotification`
        otherwise (the gateway documents those two fields for pay-in
        callbacks only, and says they *may* be present, so a pay-in
        callback without them reads as a payout).
    :param max_bytes: The largest body taken; a larger one is refused with
        :class:`~vexora_async.NotificationTooLarge` before it is decoded.
        Default ``65536`` (64 KiB). Valid: an ``int`` from 1 to 16 MiB.
    :param max_age: Refuse a ``timestamp`` older than this many seconds
        (:class:`~vexora_async.StaleNotification`). Default ``None``: not
        checked. Valid: over 0, at most 604,800 (a week). The gateway
        redelivers for up to 24 hours, so a short limit refuses its
        legitimate retries.
    :param now: The time *max_age* is judged against, in epoch seconds.
        Default ``None``: the system clock. Valid: 0 or more, before the
        year 5000.
    :returns: The verified notification, as its kind's record.
    :raises ~vexora_async.SignatureError: The ``sign`` is missing or
        wrong (a receiver answers 403).
    :raises ~vexora_async.MalformedNotification: The body is not a
        readable callback (400), or too large:
        :class:`~vexora_async.NotificationTooLarge` (413).
    :raises ~vexora_async.StaleNotification: Older than *max_age* (400).
    """
    try:
        secret = as_secret(app_secret)
    finally:  # from here on this frame holds only the masked wrapper
        del app_secret
    check_notification_options(kind=kind, max_bytes=max_bytes, max_age=max_age, now=now)
    try:
        return _parse(
            body, secret, kind=kind, max_bytes=max_bytes, max_age=max_age, now=now
        )
    except NotificationError as exc:
        refusal = exc
    del body
    # Drop the frames below (and the cause's): their locals hold the body.
    raise _without_tracebacks(refusal)


def _without_tracebacks(error: NotificationError) -> NotificationError:
    link: BaseException | None = error
    while link is not None:
        link.with_traceback(None)
        link = link.__cause__ or link.__context__
    return error


def _parse(
    body: bytes | bytearray | memoryview,
    secret: Secret,
    *,
    kind: NotificationKind | None,
    max_bytes: int,
    max_age: float | None,
    now: float | None,
) -> Notification:
    fields = decode_fields(body, max_bytes=max_bytes)
    check_sign(fields, secret)
    _check_kind(fields, kind)
    common: dict[str, Any] = {
        "trade_no": _text(fields, "tradeNo", required=True),
        "status": _status(fields),
        "amount": _amount(fields),
        "platform_trade_no": _text(fields, "platFormTradeNo"),
        "message": _text(fields, "message"),
        "success_time": _time(fields, "successTime"),
        "timestamp": _timestamp(fields),
        "raw": _plain(fields),
    }
    if kind == "deposit" or (kind is None and _looks_like_deposit(fields)):
        way_code = _text(fields, "wayCode")
        notification: Notification = DepositNotification(
            **common,
            channel_code=_text(fields, "channelCode"),
            way_code=None if way_code is None else BankCode(way_code),
        )
    else:
        notification = PayoutNotification(**common)
    if max_age is not None:
        check_age(notification, max_age=max_age, now=now)
    return notification


def describe(
    body: bytes | bytearray | memoryview,
    app_secret: str | Secret,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> tuple[str, str, object]:
    """Return the canonical string, the expected and the received sign.

    For diagnosis only (the ``verify`` command): the expected sign must
    never be shown to whoever sent the body. Raises like
    :func:`decode_fields`.
    """
    try:
        secret = as_secret(app_secret)
    finally:
        del app_secret
    fields = decode_fields(body, max_bytes=max_bytes)
    return (
        canonical_string(fields),
        sign(fields, secret),
        _plain(fields.get(SIGN_FIELD)),
    )
