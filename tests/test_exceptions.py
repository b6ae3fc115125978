"""Tests for the exception tree and what each error says."""

from __future__ import annotations

import inspect

import pytest
import vexora_async
from vexora_async import exceptions
from vexora_async.exceptions import (
    ConnectError,
    DecodingError,
    GatewayError,
    HTTPStatusError,
    InvalidRequestError,
    OutcomeUnknown,
    PayoutOutcomeUnknown,
    RequestRejected,
    RequestTimeout,
    TransportError,
    VexoraError,
)


ALL_ERRORS = [
    obj
    for _, obj in inspect.getmembers(exceptions, inspect.isclass)
    if issubclass(obj, BaseException)
]


def test_every_error_derives_from_vexora_error() -> None:
    """Catching VexoraError catches everything the SDK raises."""
    assert {ConnectError, GatewayError, PayoutOutcomeUnknown} <= set(ALL_ERRORS)
    for cls in ALL_ERRORS:
        assert issubclass(cls, VexoraError), cls


def test_every_error_is_exported() -> None:
    """Each error is importable from the package and named in __all__."""
    for cls in ALL_ERRORS:
        assert getattr(vexora_async, cls.__name__) is cls
        assert cls.__name__ in exceptions.__all__


def test_every_error_is_drawn_in_the_tree() -> None:
    """The module docstring's tree names every class."""
    tree = exceptions.__doc__ or ""
    for cls in ALL_ERRORS:
        assert f" {cls.__name__} " in tree, cls


@pytest.mark.parametrize(
    ("child", "parent"),
    [
        (ConnectError, TransportError),
        (RequestTimeout, TransportError),
        (RequestRejected, GatewayError),
        (PayoutOutcomeUnknown, OutcomeUnknown),
        (InvalidRequestError, ValueError),
    ],
)
def test_tree_shape(child: type[Exception], parent: type[Exception]) -> None:
    """The subclasses sit where the tree draws them."""
    assert issubclass(child, parent)


@pytest.mark.parametrize(
    "not_a_parent",
    [GatewayError, RequestRejected, TransportError, HTTPStatusError, DecodingError],
)
def test_unknown_outcome_is_never_a_failure_class(
    not_a_parent: type[Exception],
) -> None:
    """An unknown outcome is not caught by handlers for refused or failed calls."""
    assert not issubclass(PayoutOutcomeUnknown, not_a_parent)
    assert not issubclass(OutcomeUnknown, not_a_parent)
    try:
        _lose_a_payout()
    except not_a_parent:  # pragma: no cover - must not match
        pytest.fail("an unknown outcome was caught as a failure")
    except PayoutOutcomeUnknown as exc:
        assert exc.trade_no == "T1"


def _lose_a_payout() -> None:
    raise PayoutOutcomeUnknown("lost", trade_no="T1")


def test_str_includes_operation_and_trade_no() -> None:
    """The message names the call and the tradeNo it belongs to."""
    error = VexoraError("boom", operation="get_payout", trade_no="T1")
    assert str(error) == "boom (operation=get_payout, trade_no=T1)"
    assert str(VexoraError("boom", operation="get_balance")) == (
        "boom (operation=get_balance)"
    )
    assert str(VexoraError("boom")) == "boom"
    assert error.message == "boom"


def test_payout_outcome_unknown_carries_the_trade_no() -> None:
    """The unknown outcome keeps the tradeNo to resolve it under."""
    error = PayoutOutcomeUnknown("timed out", trade_no="VX1", operation="create_payout")
    assert error.trade_no == "VX1"
    assert "trade_no=VX1" in str(error)
    assert "operation=create_payout" in str(error)


def test_gateway_error_carries_code_and_msg() -> None:
    """GatewayError and RequestRejected keep the gateway's code and msg."""
    error = RequestRejected("8000", "sign error", operation="create_payout")
    assert (error.code, error.msg) == ("8000", "sign error")
    assert str(error) == (
        "gateway answered code 8000: sign error (operation=create_payout)"
    )


def test_http_status_error_carries_status_excerpt_and_retry_after() -> None:
    """HTTPStatusError keeps the status, the excerpt and Retry-After."""
    error = HTTPStatusError(
        "HTTP 429", status_code=429, body_excerpt="slow down", retry_after=3.0
    )
    assert (error.status_code, error.body_excerpt, error.retry_after) == (
        429,
        "slow down",
        3.0,
    )
    assert HTTPStatusError("x", status_code=500, body_excerpt="").retry_after is None


def test_invalid_request_error_names_the_field() -> None:
    """InvalidRequestError says which field is wrong and why."""
    error = InvalidRequestError("amount", "must be at least 100")
    assert (error.field, error.reason) == ("amount", "must be at least 100")
    assert str(error) == "amount: must be at least 100"
    assert str(InvalidRequestError(None, "closed")) == "closed"


def test_transport_errors_say_whether_anything_was_sent() -> None:
    """ConnectError is the one transport error that proves nothing was sent."""
    assert ConnectError("x").sent is False
    assert RequestTimeout("x").sent is True
    assert TransportError("x").sent is True


def test_every_error_documents_itself() -> None:
    """Each class has its own docstring, which the API reference shows."""
    for cls in ALL_ERRORS:
        assert vars(cls).get("__doc__"), cls
