"""Tests for the sandbox configuration: defaults from the docs, checked values."""

from __future__ import annotations

from decimal import Decimal

import pytest
from vexora_async import InvalidRequestError
from vexora_async.testing import (
    CALLBACK_SCHEDULE,
    SANDBOX_APP_SECRET,
    SandboxConfig,
)


def test_defaults_follow_the_gateway() -> None:
    """The retry schedule is the documented one; the secret stays out of repr."""
    config = SandboxConfig()
    hours = 3600.0
    assert config.callback_schedule == (2.0, 5.0, 10.0, 30.0, hours, *[3 * hours] * 3)
    assert config.callback_schedule == CALLBACK_SCHEDULE
    assert config.callback_timeout == 10
    assert SANDBOX_APP_SECRET not in repr(config)
    assert config.initial_balance == Decimal(10_000_000_000)


@pytest.mark.parametrize(
    "changes",
    [
        {"timestamp_window": 0},
        {"time_scale": -1},
        {"time_scale": float("inf")},
        {"settle_delay": -0.1},
        {"callback_timeout": True},
        {"callback_schedule": ("soon",)},
        {"callback_schedule": (-1,)},
        {"initial_balance": 1.5},
        {"initial_balance": -1},
        {"merchant_no": ""},
        {"app_secret": None},
    ],
)
def test_refuses_bad_values(changes: dict[str, object]) -> None:
    """Nonsense settings fail when the config is built, naming the field."""
    with pytest.raises(InvalidRequestError, match=next(iter(changes))):
        SandboxConfig(**changes)  # type: ignore[arg-type]  # the point


def test_schedule_accepts_any_sequence_of_numbers() -> None:
    """A list of ints becomes a tuple of floats."""
    assert SandboxConfig(callback_schedule=[1, 2]).callback_schedule == (1.0, 2.0)
