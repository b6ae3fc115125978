"""Typed records: requests, results and the response envelope.

Records speak snake_case Python; the wire's camelCase lives only in
:mod:`vexora_async._converter`. Money is :class:`~decimal.Decimal`, never
float. Request records validate themselves when built, so an invalid
request never exists, let alone reaches the network.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar

import attrs

from . import _validation as v
from ._codes import StatusCode
from ._masking import mask_account, mask_name
from .exceptions import InvalidRequestError


class BankCode(str):
    """A wallet or bank the gateway pays to (``bankCode``, ``wayCode``).

    Compares equal to its code string. The documented codes are
    :attr:`KBZPAY` and :attr:`WAVEPAY`; plain strings equal to one of them
    are accepted too. A code the gateway adds later must be spelled out as
    ``BankCode("NEWCODE")``: a plain unknown string is refused, so that a
    typo like ``"KPZPAY"`` fails before sending, not at the gateway.
    """

    __slots__ = ()

    KBZPAY: ClassVar[BankCode]
    WAVEPAY: ClassVar[BankCode]

    def __repr__(self) -> str:
        return f"BankCode({str(self)!r})"


BankCode.KBZPAY = BankCode("KBZPAY")
BankCode.WAVEPAY = BankCode("WAVEPAY")
KNOWN_BANK_CODES = frozenset({BankCode.KBZPAY, BankCode.WAVEPAY})


def to_bank_code(value: object, field: str = "bank_code") -> BankCode:
    """Accept a :class:`BankCode`, or a plain string naming a documented one."""
    if isinstance(value, BankCode):
        v.check_account(field, value)
        return value
    if isinstance(value, str) and value in KNOWN_BANK_CODES:
        return BankCode(value)
    known = ", ".join(sorted(KNOWN_BANK_CODES))
    raise InvalidRequestError(
        field,
        f"unknown code {value!r} (known: {known}); "
        f"for a code the gateway added later, pass BankCode({value!r})",
    )


def _to_way_code(value: object) -> BankCode | None:
    return None if value is None else to_bank_code(value, "way_code")


class StatusKind(enum.Enum):
    """What a transaction status code means for the money."""

    SUCCESS = "success"
    PARTIAL = "partial"
    PROCESSING = "processing"
    FAILED = "failed"
    UNKNOWN = "unknown"


_STATUS_KINDS: dict[str, StatusKind] = {
    StatusCode.SUCCESS.value: StatusKind.SUCCESS,
    StatusCode.PARTIAL.value: StatusKind.PARTIAL,
    StatusCode.PROCESSING.value: StatusKind.PROCESSING,
    StatusCode.FAILED.value: StatusKind.FAILED,
    # Documented by a sister gateway on the same template.
    StatusCode.DAILY_LIMIT_REACHED.value: StatusKind.FAILED,
    StatusCode.UNKNOWN_ERROR.value: StatusKind.UNKNOWN,
}


class TransactionStatus(str):
    """A transaction's ``status`` code, as the gateway sent it.

    Compares equal to the raw code (``status == "0015"``) and tells what it
    means through :attr:`kind` and the ``is_*`` properties. A code we do not
    know is kept and reads as :attr:`StatusKind.UNKNOWN`: never as failed,
    because treating an unknown payout as failed invites paying it twice.
    """

    __slots__ = ()

    SUCCESS: ClassVar[TransactionStatus]
    PARTIAL: ClassVar[TransactionStatus]
    PROCESSING: ClassVar[TransactionStatus]
    FAILED: ClassVar[TransactionStatus]

    @property
    def kind(self) -> StatusKind:
        """The meaning of this code."""
        return _STATUS_KINDS.get(self, StatusKind.UNKNOWN)

    @property
    def is_success(self) -> bool:
        """The money moved in full (``0000``)."""
        return self.kind is StatusKind.SUCCESS

    @property
    def is_failed(self) -> bool:
        """The transaction definitely failed; no money moved."""
        return self.kind is StatusKind.FAILED

    @property
    def is_processing(self) -> bool:
        """Still in progress (``0015``): wait for the callback or query."""
        return self.kind is StatusKind.PROCESSING

    @property
    def is_final(self) -> bool:
        """The state will not change any more (success, partial, failed)."""
        return self.kind in {StatusKind.SUCCESS, StatusKind.PARTIAL, StatusKind.FAILED}

    def __repr__(self) -> str:
        return f"TransactionStatus({str(self)!r}, {self.kind.value})"


TransactionStatus.SUCCESS = TransactionStatus(StatusCode.SUCCESS.value)
TransactionStatus.PARTIAL = TransactionStatus(StatusCode.PARTIAL.value)
TransactionStatus.PROCESSING = TransactionStatus(StatusCode.PROCESSING.value)
TransactionStatus.FAILED = TransactionStatus(StatusCode.FAILED.value)


def _payout_amount(value: object) -> Decimal:
    return v.to_amount(value, minimum=v.MIN_PAYOUT_AMOUNT)


def _deposit_amount(value: object) -> Decimal:
    return v.to_amount(value, minimum=1)


@attrs.frozen(kw_only=True)
class PayoutRequest:
    """A payout (disbursement) to a beneficiary's wallet.

    Validated when built: an invalid one raises
    :class:`~vexora_async.InvalidRequestError` (a ``ValueError``) naming the
    field, and never reaches the network. Nothing is trimmed or rewritten:
    a value with stray whitespace is refused, because a trimmed account
    number is a different account. Text is any Unicode but control
    characters and lone surrogates (names may be in Myanmar script), sent
    and signed as UTF-8. Its ``repr`` masks the account and the name.

    :param trade_no: Your own, unique id of this payout (``tradeNo``):
        derive it from your payout's primary key, so that a retry after a
        crash reuses it (:func:`~vexora_async.new_trade_no` makes one).
        Required. Valid: 1 to 64 printable ASCII characters, no whitespace.
    :param amount: Whole kyat. Required. Valid: an ``int`` or an integral
        ``Decimal`` (``Decimal("100.00")`` is fine) from 100 to
        999,999,999,999,999 (15 digits); a ``float``, a ``bool``, a string,
        NaN and infinities are refused.
    :param bank_code: The wallet paid to: :attr:`BankCode.KBZPAY` or
        :attr:`BankCode.WAVEPAY`, or the same as plain strings. Required.
        Valid: those two; a code the gateway added later only spelled out
        as ``BankCode("NEWCODE")``, so that a typo fails here.
    :param bank_number: The beneficiary's account or wallet number
        (``bankNumber``). Required. Valid: 1 to 64 characters, no
        whitespace anywhere.
    :param name: The beneficiary's name. Required. Valid: 1 to 256
        characters, no leading or trailing whitespace.
    :param notify_url: Where the gateway sends this payout's callback
        (``notifyUrl``). Required. Valid: an absolute ``http://`` or
        ``https://`` URL with a host, no whitespace, at most 1,024
        characters.
    :param remark: A note sent with the payout. Default ``None``: not sent.
        Valid: as *name*; an empty string is refused (pass ``None``).
    """

    trade_no: str = attrs.field(validator=v.validator(v.check_trade_no))
    amount: Decimal = attrs.field(converter=_payout_amount)
    bank_code: BankCode = attrs.field(converter=to_bank_code)
    bank_number: str = attrs.field(
        validator=v.validator(v.check_account), repr=mask_account
    )
    name: str = attrs.field(validator=v.validator(v.check_text), repr=mask_name)
    notify_url: str = attrs.field(validator=v.validator(v.check_url))
    remark: str | None = attrs.field(
        default=None, validator=v.validator(v.check_optional_text)
    )


@attrs.frozen(kw_only=True)
class DepositRequest:
    """A pay-in (deposit / checkout) from a payer's wallet.

    Validated when built, as :class:`PayoutRequest` is: an invalid one
    raises :class:`~vexora_async.InvalidRequestError` naming the field.

    :param trade_no: Your own, unique id of this pay-in. Required. Valid:
        as :class:`PayoutRequest`'s.
    :param amount: Whole kyat. Required. Valid: an ``int`` or an integral
        ``Decimal`` from 1 to 999,999,999,999,999; a minimum the gateway
        enforces comes back as :class:`~vexora_async.RequestRejected`.
    :param name: The payer's name. Required. Valid: 1 to 256 characters,
        no leading or trailing whitespace.
    :param notify_url: Where the gateway sends this pay-in's callback.
        Required. Valid: as :class:`PayoutRequest`'s.
    :param channel_code: The payment channel, ``"EWALLET"`` in the
        gateway's docs. Default ``None``: not sent. Valid: as *name*.
    :param way_code: The wallet paid from (:attr:`BankCode.KBZPAY`,
        :attr:`BankCode.WAVEPAY`). Default ``None``: not sent. Valid: as
        :class:`PayoutRequest`'s *bank_code*.
    :param return_url: Where the payer's browser goes after the checkout.
        Default ``None``: not sent. Valid: as *notify_url*.
    :param remark: A note sent with the pay-in. Default ``None``: not
        sent. Valid: as *name*.
    """

    trade_no: str = attrs.field(validator=v.validator(v.check_trade_no))
    amount: Decimal = attrs.field(converter=_deposit_amount)
    name: str = attrs.field(validator=v.validator(v.check_text), repr=mask_name)
    notify_url: str = attrs.field(validator=v.validator(v.check_url))
    channel_code: str | None = attrs.field(
        default=None, validator=v.validator(v.check_optional_text)
    )
    way_code: BankCode | None = attrs.field(default=None, converter=_to_way_code)
    return_url: str | None = attrs.field(
        default=None, validator=v.validator(v.check_optional_url)
    )
    remark: str | None = attrs.field(
        default=None, validator=v.validator(v.check_optional_text)
    )


def _raw_field() -> Any:
    return attrs.field(factory=dict, repr=False, eq=False)


@attrs.frozen(kw_only=True)
class PayoutResult:
    """The gateway's answer to a payout: accepted, usually still processing."""

    trade_no: str
    status: TransactionStatus
    platform_trade_no: str | None = None
    message: str | None = None
    remark: str | None = None
    amount: Decimal | None = None
    #: The ``data`` object exactly as received, for fields we do not model.
    raw: Mapping[str, Any] = _raw_field()


@attrs.frozen(kw_only=True)
class PayoutStatus:
    """A payout's state, as a status query reports it."""

    trade_no: str
    status: TransactionStatus
    platform_trade_no: str | None = None
    message: str | None = None
    remark: str | None = None
    amount: Decimal | None = None
    order_amount: Decimal | None = None
    pay_amount: Decimal | None = None
    #: Gateway-local time, naive: the gateway does not say which zone.
    success_time: datetime | None = None
    create_time: datetime | None = None
    raw: Mapping[str, Any] = _raw_field()


@attrs.frozen(kw_only=True)
class DepositResult:
    """The gateway's answer to a pay-in.

    Fields we do not model (a checkout URL, for one) are in :attr:`raw`.
    """

    trade_no: str
    status: TransactionStatus | None = None
    platform_trade_no: str | None = None
    message: str | None = None
    remark: str | None = None
    amount: Decimal | None = None
    raw: Mapping[str, Any] = _raw_field()


@attrs.frozen(kw_only=True)
class DepositStatus:
    """A pay-in's state, as a status query reports it."""

    trade_no: str
    status: TransactionStatus
    platform_trade_no: str | None = None
    message: str | None = None
    remark: str | None = None
    amount: Decimal | None = None
    order_amount: Decimal | None = None
    pay_amount: Decimal | None = None
    received_amount: Decimal | None = None
    success_time: datetime | None = None
    create_time: datetime | None = None
    raw: Mapping[str, Any] = _raw_field()


@attrs.frozen(kw_only=True)
class Balance:
    """The merchant's balance, in kyat."""

    available_amount: Decimal
    freeze_amount: Decimal | None = None
    unsettled_amount: Decimal | None = None
    raw: Mapping[str, Any] = _raw_field()


@attrs.frozen(kw_only=True)
class Envelope:
    """The envelope every gateway answer comes in.

    *code* is about the request, never about the money; the transaction's
    state is in ``data["status"]``.
    """

    code: str
    msg: str = ""
    success: bool | None = None
    timestamp: int | None = None
    data: Mapping[str, Any] | None = None
