"""Every public error pickles as itself, with its attributes, across processes."""

from __future__ import annotations

import concurrent.futures
import copy
import multiprocessing
import pickle
from decimal import Decimal

import pytest
from vexora_async import exceptions
from vexora_async.exceptions import (
    ClientClosedError,
    ConflictingRequestError,
    ConnectError,
    DecodingError,
    GatewayError,
    HTTPStatusError,
    InvalidRequestError,
    LedgerError,
    MalformedNotification,
    NotificationError,
    NotificationTooLarge,
    OutcomeUnknown,
    PayoutOutcomeUnknown,
    RequestRejected,
    RequestTimeout,
    SignatureError,
    StaleNotification,
    TradeNoCollision,
    TransportError,
    VexoraError,
)


TRADE_NO = "PO000000004567"

#: One instance of every public error, every attribute set to a non-default.
SAMPLES: dict[str, VexoraError] = {
    "VexoraError": VexoraError("base", operation="get_balance", trade_no=TRADE_NO),
    "InvalidRequestError": InvalidRequestError("amount", "must be at least 100"),
    "ConflictingRequestError": ConflictingRequestError(
        "another payload", operation="create_payout", trade_no=TRADE_NO
    ),
    "TradeNoCollision": TradeNoCollision(
        "held for another payout",
        trade_no=TRADE_NO,
        field="amount",
        requested_amount=Decimal(100),
        found_amount=Decimal("250.50"),
        operation="create_payout",
    ),
    "LedgerError": LedgerError("sqlite is locked", trade_no=TRADE_NO),
    "ClientClosedError": ClientClosedError(
        operation="create_payout", trade_no=TRADE_NO
    ),
    "TransportError": TransportError("connection lost", operation="get_payout"),
    "ConnectError": ConnectError("refused", operation="create_payout"),
    "RequestTimeout": RequestTimeout("read timeout", operation="get_balance"),
    "HTTPStatusError": HTTPStatusError(
        "HTTP 502",
        status_code=502,
        body_excerpt="bad gateway ****9012",
        retry_after=1.5,
        operation="get_payout",
        trade_no=TRADE_NO,
    ),
    "DecodingError": DecodingError("not JSON", operation="get_balance"),
    "GatewayError": GatewayError(
        "5000", "system busy", operation="get_payout", trade_no=TRADE_NO
    ),
    "RequestRejected": RequestRejected(
        "8000",
        "insufficient balance",
        operation="create_payout",
        trade_no=TRADE_NO,
        confirmed=True,
    ),
    "OutcomeUnknown": OutcomeUnknown(
        "no answer", trade_no=TRADE_NO, operation="create_deposit"
    ),
    "PayoutOutcomeUnknown": PayoutOutcomeUnknown(
        "read timeout after sending", trade_no=TRADE_NO, operation="create_payout"
    ),
    "NotificationError": NotificationError("refused"),
    "SignatureError": SignatureError("the sign does not match"),
    "MalformedNotification": MalformedNotification("not JSON"),
    "NotificationTooLarge": NotificationTooLarge("over 65536 bytes"),
    "StaleNotification": StaleNotification("900 s old"),
}


def _state(error: BaseException) -> tuple[object, ...]:
    return (type(error), error.args, str(error), vars(error))


def test_every_public_error_has_a_sample() -> None:
    """The samples cover exceptions.__all__ exactly: a new class needs one."""
    assert set(SAMPLES) == set(exceptions.__all__)
    for name, sample in SAMPLES.items():
        assert type(sample).__name__ == name


@pytest.mark.parametrize("name", sorted(exceptions.__all__))
@pytest.mark.parametrize(
    "protocol", [2, pickle.DEFAULT_PROTOCOL, pickle.HIGHEST_PROTOCOL]
)
def test_round_trip(name: str, protocol: int) -> None:
    """Each error unpickles as its own class with every attribute intact."""
    error = SAMPLES[name]
    copied = pickle.loads(pickle.dumps(error, protocol=protocol))  # noqa: S301 - our own bytes
    assert type(copied) is type(error)
    assert _state(copied) == _state(error)
    assert copy.copy(error).__dict__ == error.__dict__
    assert copy.deepcopy(error).__dict__ == error.__dict__


def test_named_attributes_survive() -> None:
    """The attributes a handler reads are there after a round trip."""
    collision = pickle.loads(pickle.dumps(SAMPLES["TradeNoCollision"]))  # noqa: S301
    assert isinstance(collision, TradeNoCollision)
    assert (collision.requested_amount, collision.found_amount) == (
        Decimal(100),
        Decimal("250.50"),
    )
    assert (collision.field, collision.trade_no) == ("amount", TRADE_NO)
    rejected = pickle.loads(pickle.dumps(SAMPLES["RequestRejected"]))  # noqa: S301
    assert isinstance(rejected, RequestRejected)
    assert (rejected.code, rejected.msg, rejected.confirmed) == (
        "8000",
        "insufficient balance",
        True,
    )
    status = pickle.loads(pickle.dumps(SAMPLES["HTTPStatusError"]))  # noqa: S301
    assert isinstance(status, HTTPStatusError)
    assert (status.status_code, status.retry_after) == (502, 1.5)
    invalid = pickle.loads(pickle.dumps(SAMPLES["InvalidRequestError"]))  # noqa: S301
    assert isinstance(invalid, InvalidRequestError)
    assert (invalid.field, invalid.reason) == ("amount", "must be at least 100")
    assert pickle.loads(pickle.dumps(SignatureError("x"))).http_status == 403  # noqa: S301
    assert pickle.loads(pickle.dumps(ConnectError("x"))).sent is False  # noqa: S301


def test_attributes_set_after_construction_survive() -> None:
    """Attributes the SDK fills in later (operation, trade_no) are kept too."""
    error = DecodingError("not JSON")
    error.operation, error.trade_no = "get_payout", TRADE_NO
    copied = pickle.loads(pickle.dumps(error))  # noqa: S301
    assert (copied.operation, copied.trade_no) == ("get_payout", TRADE_NO)
    assert str(copied) == str(error)


def raise_unknown_payout(trade_no: str) -> None:
    """Fail in a worker process the way a lost answer to a create does."""
    raise PayoutOutcomeUnknown(
        "read timeout after sending", trade_no=trade_no, operation="create_payout"
    )


@pytest.mark.subprocess
def test_process_pool_worker_error_reaches_the_parent_as_itself() -> None:
    """A PayoutOutcomeUnknown in a worker is that error in the parent.

    Before, unpickling it in the parent failed (its __init__ wants
    trade_no), which broke the whole pool: BrokenProcessPool, and the
    payout's tradeNo was lost with it.
    """
    # spawn: fork in a process with threads is deprecated (3.12+).
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        future = pool.submit(raise_unknown_payout, TRADE_NO)
        with pytest.raises(PayoutOutcomeUnknown) as info:
            future.result(timeout=60)
        # The pool is still usable: nothing broke.
        assert pool.submit(str, 7).result(timeout=60) == "7"
    assert type(info.value) is PayoutOutcomeUnknown
    assert info.value.trade_no == TRADE_NO
    assert info.value.operation == "create_payout"
