"""The sandbox's settings: credentials, clocks' windows, timers and balance."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import attrs

from vexora_async._validation import to_amount
from vexora_async.exceptions import InvalidRequestError


#: The merchant number the sandbox expects by default.
SANDBOX_MERCHANT_NO = "1000000001"
#: The sandbox's default app secret. Public on purpose: it signs nothing real.
SANDBOX_APP_SECRET = "sandbox-app-secret"  # noqa: S105 - a published test value
#: Seconds after which an accepted payout or deposit reaches its final
#: status, by default: the same for :class:`SandboxConfig`, the pytest
#: fixtures and ``vexora sandbox``.
DEFAULT_SETTLE_DELAY = 0.5
#: The gateway's documented callback retry delays, in seconds: 2 s, 5 s,
#: 10 s, 30 s, 1 h, 3 h, 3 h, 3 h (eight retries after the first attempt).
CALLBACK_SCHEDULE: tuple[float, ...] = (
    2.0,
    5.0,
    10.0,
    30.0,
    3600.0,
    10800.0,
    10800.0,
    10800.0,
)


def _non_negative(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not 0 <= value < float("inf")
    ):
        raise InvalidRequestError(attribute.name, "must be a finite number >= 0")


def _positive(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    _non_negative(instance, attribute, value)
    if value == 0:
        raise InvalidRequestError(attribute.name, "must be > 0")


def _optional_non_negative(
    instance: object, attribute: attrs.Attribute[Any], value: object
) -> None:
    if value is not None:
        _non_negative(instance, attribute, value)


def _schedule(value: object) -> tuple[float, ...]:
    try:
        delays = tuple(float(d) for d in value)  # type: ignore[attr-defined]  # checked below
    except (TypeError, ValueError):
        raise InvalidRequestError(
            "callback_schedule", "must be a sequence of seconds"
        ) from None
    if not all(0 <= d < float("inf") for d in delays):
        raise InvalidRequestError("callback_schedule", "delays must be finite and >= 0")
    return delays


def _balance(value: object) -> Decimal:
    return to_amount(value, field="initial_balance", minimum=0)


def _credential(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not value:
        raise InvalidRequestError(attribute.name, "must be a non-empty str")


@attrs.frozen(kw_only=True)
class SandboxConfig:
    """How a :class:`~vexora_async.testing.FakeGateway` behaves.

    Checked when built: a bad value raises
    :class:`~vexora_async.InvalidRequestError` naming the field. Seconds
    are an ``int`` or ``float``, finite; ``bool`` is refused.

    :param merchant_no: The merchant number the sandbox expects. Default
        :data:`SANDBOX_MERCHANT_NO` (``"1000000001"``). Valid: a non-empty
        ``str``.
    :param app_secret: The secret it signs and verifies with. Default
        :data:`SANDBOX_APP_SECRET` (``"sandbox-app-secret"``, public on
        purpose). Valid: a non-empty ``str``.
    :param timestamp_window: How far (seconds, either way) a request's
        ``timestamp`` may be from the sandbox's clock; further is refused
        with code ``8000``. Default ``300.0``. Valid: over 0.
    :param settle_delay: Seconds after which an accepted transaction
        reaches its scenario's final status. Default
        :data:`DEFAULT_SETTLE_DELAY` (``0.5``). Valid: 0 or more, or
        ``None``: only when a test calls ``settle``.
    :param callback_schedule: The retry delays after a failed callback
        delivery, in seconds, each multiplied by *time_scale*. Default
        :data:`CALLBACK_SCHEDULE`, the gateway's documented 2 s, 5 s, 10 s,
        30 s, 1 h, then 3 h three times. Valid: a sequence of numbers, each
        finite and 0 or more.
    :param time_scale: Multiplies the callback retry delays: ``0.001``
        turns the gateway's ten hours of retries into 36 seconds. Default
        ``1.0``. Valid: over 0.
    :param callback_timeout: Seconds a delivery waits for the merchant's
        ``OK``. Default ``10.0``, as the gateway. Valid: over 0.
    :param initial_balance: The available balance, in whole kyat. Default
        10,000,000,000. Valid: an ``int`` or integral ``Decimal``, 0 or
        more, at most 15 digits.
    :param reject_duplicates: Refuse a repeated ``tradeNo`` with code
        ``8000``, as the gateway does. Default ``True``. ``False`` models a
        gateway that would execute it twice, to test a client's own
        idempotency.
    :param callbacks: Send callbacks at all. Default ``True``.
    :param allow_remote_callbacks: POST callbacks to hosts other than
        loopback. Default ``False``: a notify URL elsewhere gets none.
    """

    merchant_no: str = attrs.field(default=SANDBOX_MERCHANT_NO, validator=_credential)
    app_secret: str = attrs.field(
        default=SANDBOX_APP_SECRET, validator=_credential, repr=False
    )
    timestamp_window: float = attrs.field(default=300.0, validator=_positive)
    settle_delay: float | None = attrs.field(
        default=DEFAULT_SETTLE_DELAY, validator=_optional_non_negative
    )
    callback_schedule: tuple[float, ...] = attrs.field(
        default=CALLBACK_SCHEDULE, converter=_schedule
    )
    time_scale: float = attrs.field(default=1.0, validator=_positive)
    callback_timeout: float = attrs.field(default=10.0, validator=_positive)
    initial_balance: Decimal = attrs.field(
        default=Decimal(10_000_000_000), converter=_balance
    )
    reject_duplicates: bool = True
    callbacks: bool = True
    allow_remote_callbacks: bool = False
