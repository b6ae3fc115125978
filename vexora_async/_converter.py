"""The one place where records meet the wire.

:func:`make_converter` builds the project's cattrs converter (never the
global one): snake_case fields on the Python side, the gateway's camelCase
on the wire, and hooks that are lenient where the gateway's types drift and
strict where a wrong shape could hide a money fact. :class:`WireCodec`
wraps it with the envelope decoding and the amount format.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from . import _json
from ._models import (
    Balance,
    BankCode,
    DepositRequest,
    DepositResult,
    DepositStatus,
    Envelope,
    PayoutRequest,
    PayoutResult,
    PayoutStatus,
    TransactionStatus,
)
from .exceptions import DecodingError, InvalidRequestError


if TYPE_CHECKING:
    from collections.abc import Callable, Mapping


T = TypeVar("T")
AmountFormat = Literal["integer", "decimal2"]

# Names whose camelCase is not the mechanical one.
_WIRE_NAMES = {"platform_trade_no": "platFormTradeNo"}
_RAW = "raw"
_AMOUNT_SPECS = {"integer": ".0f", "decimal2": ".2f"}
_RESULT_TYPES = (PayoutResult, PayoutStatus, DepositResult, DepositStatus, Balance)
# Amounts in answers: up to 18 digits before the point and 18 after (as
# callbacks), and no longer than this as text. No amount of money needs more.
_MAX_AMOUNT_DIGITS = 18
_AMOUNT_LIMIT = 10**_MAX_AMOUNT_DIGITS
_MAX_AMOUNT_CHARS = 64
# An epoch in milliseconds has 13 digits; int() of thousands is an error.
_MAX_INT_DIGITS = 19


def wire_name(field: str) -> str:
    """Return the gateway's name for a record field."""
    if field in _WIRE_NAMES:
        return _WIRE_NAMES[field]
    head, *rest = field.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _structure_decimal(value: object, _: object) -> Decimal:
    # Amounts arrive as "300.00", "3000", 3000 or 3.0000 (parsed as Decimal).
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        msg = f"expected an amount, got {type(value).__name__}"
        raise TypeError(msg)
    # Sizes first: "1e999999" parses in no time, but any arithmetic on it
    # (int(), quantize, a database driver) works on a million digits.
    if isinstance(value, str):
        value = value.strip()
        if len(value) > _MAX_AMOUNT_CHARS:
            msg = f"not an amount: {len(value)} characters"
            raise ValueError(msg)
    elif isinstance(value, int) and abs(value) >= _AMOUNT_LIMIT:
        msg = "the amount is out of range"
        raise ValueError(msg)
    try:
        amount = Decimal(value)
    except InvalidOperation:
        msg = f"not an amount: {value!r}"
        raise ValueError(msg) from None
    if not amount.is_finite():
        msg = f"not a finite amount: {value!r}"
        raise ValueError(msg)
    exponent = amount.as_tuple().exponent
    if amount.adjusted() >= _MAX_AMOUNT_DIGITS or (
        isinstance(exponent, int) and exponent < -_MAX_AMOUNT_DIGITS
    ):
        msg = "the amount is out of range"
        raise ValueError(msg)
    return amount


def _structure_str(value: object, _: object) -> str:
    # cattrs' default would str() a dict; a number-like id is fine.
    if isinstance(value, str):
        return value
    if isinstance(value, (int, Decimal)) and not isinstance(value, bool):
        return str(value)
    msg = f"expected a string, got {type(value).__name__}"
    raise TypeError(msg)


def _structure_status(value: object, _: object) -> TransactionStatus:
    # An int would have lost its leading zeros ("0015" -> 15): refuse it.
    if not isinstance(value, str) or not value:
        msg = f"expected a status code string, got {value!r}"
        raise TypeError(msg)
    return TransactionStatus(value)


def _structure_time(value: object, _: object) -> datetime | None:
    # A cosmetic field must never turn a readable money fact into an error:
    # an unparseable time reads as None (it is still in ``raw``).
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def _structure_optional_decimal(value: object, _: object) -> Decimal | None:
    # An empty amount on an otherwise readable answer reads as "not given":
    # it must not hide the status next to it.
    if value is None or value == "":
        return None
    return _structure_decimal(value, _)


def _is_optional_datetime(tp: object) -> bool:
    return tp == (datetime | None)


def make_converter(amount_format: AmountFormat = "integer") -> cattrs.Converter:
    """Build the project's converter.

    *amount_format* is how request amounts go on the wire: ``"integer"``
    (``"100"``, the docs' rule) or ``"decimal2"`` (``"100.00"``, the docs'
    example). See "Gateway assumptions".
    """
    conv = cattrs.Converter(detailed_validation=True)
    conv.register_structure_hook(Decimal, _structure_decimal)
    conv.register_structure_hook(str, _structure_str)
    conv.register_structure_hook(TransactionStatus, _structure_status)
    conv.register_structure_hook_func(_is_optional_datetime, _structure_time)
    conv.register_structure_hook_func(
        lambda tp: tp == (Decimal | None), _structure_optional_decimal
    )
    conv.register_structure_hook_func(
        lambda tp: tp == dict[str, Any] or getattr(tp, "__origin__", None) is dict,
        lambda value, _: value,
    )
    for result_type in _RESULT_TYPES:
        conv.register_structure_hook(result_type, _result_hook(conv, result_type))

    # A tuple's "in" compares with ==: a list or dict is refused, not hashed.
    if amount_format not in tuple(_AMOUNT_SPECS):
        raise InvalidRequestError("amount_format", "must be 'integer' or 'decimal2'")
    amount_spec = _AMOUNT_SPECS[amount_format]
    conv.register_unstructure_hook(Decimal, lambda d: format(d, amount_spec))
    conv.register_unstructure_hook(BankCode, str)
    for request_type in (PayoutRequest, DepositRequest):
        renames: dict[str, Any] = {
            a.name: override(rename=wire_name(a.name))
            for a in attrs.fields(request_type)
        }
        conv.register_unstructure_hook(
            request_type,
            make_dict_unstructure_fn(
                request_type, conv, _cattrs_omit_if_default=True, **renames
            ),
        )
    return conv


def _result_hook(
    conv: cattrs.Converter, cls: type[T]
) -> Callable[[Mapping[str, Any], Any], T]:
    overrides: dict[str, Any] = {
        a.name: override(rename=wire_name(a.name))
        for a in attrs.fields(cls)  # type: ignore[arg-type]  # an attrs class
        if a.name != _RAW
    }
    overrides[_RAW] = override(omit=True)
    structure = make_dict_structure_fn(cls, conv, **overrides)

    def hook(data: Mapping[str, Any], _: object) -> T:
        result = structure(data, cls)
        # The record was built just now and no one else holds it: set raw in
        # place, as attrs' own __init__ does, instead of building it twice
        # with attrs.evolve.
        object.__setattr__(result, _RAW, data)
        return result

    return hook


def _decode_json(body: bytes) -> object:
    try:
        return _json.loads(body)
    # ValueError covers bad JSON, bad UTF-8 and oversized ints; deep nesting
    # raises RecursionError.
    except (ValueError, RecursionError) as exc:
        duplicated = str(exc) == "duplicated key"
        reason = "a duplicated key" if duplicated else type(exc).__name__
        msg = f"the answer is not JSON ({reason})"
        raise DecodingError(msg) from exc


def _lenient_bool(value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in {"true", "false"}:
        return value.lower() == "true"
    return None


def _lenient_int(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if (
        isinstance(value, str)
        and len(value) <= _MAX_INT_DIGITS
        and value.isdigit()
        and value.isascii()
    ):
        return int(value)
    return None


def _code(value: object) -> str:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return f"{value:04d}"
    msg = f"the answer has no usable code ({value!r:.40})"
    raise DecodingError(msg)


@attrs.frozen
class WireCodec:
    """Encode requests and decode answers for one client's settings."""

    converter: cattrs.Converter

    @classmethod
    def create(cls, amount_format: AmountFormat = "integer") -> WireCodec:
        """Build a codec with its own converter."""
        return cls(make_converter(amount_format))

    def encode(self, request: PayoutRequest | DepositRequest) -> dict[str, str]:
        """Return the request's wire fields, without ``timestamp`` and ``sign``."""
        fields: dict[str, str] = self.converter.unstructure(request)
        return fields

    def decode_envelope(self, body: bytes) -> Envelope:
        """Decode the envelope of an answer, strictly where it matters."""
        obj = _decode_json(body)
        if not isinstance(obj, dict):
            msg = f"the answer is a JSON {type(obj).__name__}, not an object"
            raise DecodingError(msg)
        data = obj.get("data")
        if data is not None and not isinstance(data, dict):
            msg = f"'data' is a JSON {type(data).__name__}, not an object"
            raise DecodingError(msg)
        msg_value = obj.get("msg")
        return Envelope(
            code=_code(obj.get("code")),
            msg=msg_value if isinstance(msg_value, str) else "",
            success=_lenient_bool(obj.get("success")),
            timestamp=_lenient_int(obj.get("timestamp")),
            data=data,
        )

    def decode_data(self, envelope: Envelope, cls: type[T]) -> T:
        """Structure a successful envelope's ``data`` into a result record."""
        if envelope.data is None:
            msg = "the answer has code 0000 but no 'data'"
            raise DecodingError(msg)
        try:
            return self.converter.structure(envelope.data, cls)
        # The boundary of the converter: whatever a hook or cattrs raised,
        # the caller learns one thing, that the data had the wrong shape.
        except Exception as exc:
            raise DecodingError(
                f"'data' does not fit {cls.__name__}: {_describe(exc)}"
            ) from exc


def _describe(exc: BaseException) -> str:
    if isinstance(exc, cattrs.BaseValidationError):
        notes = cattrs.transform_error(exc)
        return "; ".join(notes[:3])
    return f"{type(exc).__name__}: {exc}"
