"""Tests for the sandbox gateway's state: it must refuse what the real one does."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from vexora_async import InvalidRequestError, Operation, sign, verify
from vexora_async.testing import (
    SANDBOX_APP_SECRET,
    SANDBOX_MERCHANT_NO,
    FakeGateway,
    SandboxConfig,
    TransactionKind,
)


if TYPE_CHECKING:
    from vexora_async.testing._gateway import Reply


NOW_MS = 1_774_953_271_000
NOTIFY = "http://127.0.0.1:9/notify"
HEADERS = {"merchantno": SANDBOX_MERCHANT_NO, "content-type": "application/json"}
PAYOUT = Operation.CREATE_PAYOUT.path


class Clock:
    """A monotonic clock a test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        """Tell the time."""
        return self.now


def make_gateway(clock: Clock | None = None, **config: Any) -> FakeGateway:
    """Return a gateway on fixed clocks that settles only when told."""
    config.setdefault("settle_delay", None)
    return FakeGateway(
        SandboxConfig(**config),
        clock=clock or Clock(),
        wall_clock=lambda: NOW_MS,
    )


def body(
    fields: dict[str, Any],
    *,
    secret: str = SANDBOX_APP_SECRET,
    timestamp: object = str(NOW_MS),
) -> bytes:
    """Return a signed request body, as a correct client sends it."""
    params = dict(fields)
    if timestamp is not None:
        params["timestamp"] = timestamp
    params["sign"] = sign(
        {k: v for k, v in params.items() if isinstance(v, str)}, secret
    )
    return json.dumps(params).encode()


def payout(trade_no: str = "T1", **overrides: str) -> dict[str, str]:
    """Return a payout's wire fields."""
    fields = {
        "tradeNo": trade_no,
        "amount": "1000",
        "bankCode": "KBZPAY",
        "bankNumber": "3560123456789012",
        "name": "Ko Min Thu",
        "notifyUrl": NOTIFY,
    }
    fields.update(overrides)
    return fields


def answer(reply: Reply) -> dict[str, Any]:
    """Decode a reply's envelope."""
    assert reply.status == 200
    decoded: dict[str, Any] = json.loads(reply.body)
    return decoded


def post(
    gateway: FakeGateway,
    path: str,
    raw: bytes,
    headers: dict[str, str] = HEADERS,
) -> dict[str, Any]:
    """POST a body to the gateway and decode the envelope."""
    return answer(gateway.handle("POST", path, headers, raw))


def test_accepts_a_signed_payout_and_freezes_its_amount() -> None:
    """A correct payout is accepted as processing; its amount moves to frozen."""
    gateway = make_gateway()
    reply = post(gateway, PAYOUT, body(payout()))
    assert reply["code"] == "0000"
    assert reply["success"] is True
    assert isinstance(reply["timestamp"], int)
    assert reply["data"]["tradeNo"] == "T1"
    assert reply["data"]["status"] == "0015"
    assert gateway.stats.executions["T1"] == 1
    balance = gateway.balance
    assert balance.freeze_amount == 1000
    assert balance.available_amount == gateway.config.initial_balance - 1000


@pytest.mark.parametrize(
    "raw",
    [
        body(payout(), secret="another-secret"),
        body(payout()).replace(b'"amount": "1000"', b'"amount": "9000"'),
        json.dumps({**payout(), "timestamp": str(NOW_MS)}).encode(),
        json.dumps(
            {
                **payout(),
                "timestamp": str(NOW_MS),
                "sign": sign(
                    {**payout(), "timestamp": str(NOW_MS)}, SANDBOX_APP_SECRET
                ).upper(),
            }
        ).encode(),
        json.dumps({**payout(), "timestamp": str(NOW_MS), "sign": "0" * 32}).encode(),
    ],
    ids=["other-secret", "tampered", "missing", "uppercase", "zeros"],
)
def test_refuses_a_bad_signature(raw: bytes) -> None:
    """A wrong, tampered, missing or uppercase sign is refused with 8000."""
    gateway = make_gateway()
    reply = post(gateway, PAYOUT, raw)
    assert reply["code"] == "8000"
    assert reply["success"] is False
    assert "sign" in reply["msg"]
    assert gateway.stats.rejections["sign"] == 1
    assert not gateway.payouts
    assert gateway.balance.freeze_amount == 0


@pytest.mark.parametrize(
    "timestamp",
    [
        str(NOW_MS - 300_001),
        str(NOW_MS + 300_001),
        str(NOW_MS // 1000),
        "",
        "abc",
        "1.774953271e12",
        " 1774953271000",
        None,
    ],
    ids=["stale", "future", "seconds", "empty", "letters", "float", "space", "none"],
)
def test_refuses_a_stale_or_malformed_timestamp(timestamp: str | None) -> None:
    """Outside the window, in seconds, empty, or not digits: refused."""
    gateway = make_gateway()
    reply = post(gateway, PAYOUT, body(payout(), timestamp=timestamp))
    assert reply["code"] == "8000"
    assert "timestamp" in reply["msg"]
    assert gateway.stats.rejections["timestamp"] == 1
    assert not gateway.payouts


def test_timestamp_window_is_configurable() -> None:
    """A request 5 s old passes a 10 s window and fails a 1 s one."""
    old = str(NOW_MS - 5_000)
    assert post(make_gateway(), PAYOUT, body(payout(), timestamp=old))["code"] == "0000"
    narrow = make_gateway(timestamp_window=1)
    assert post(narrow, PAYOUT, body(payout(), timestamp=old))["code"] == "8000"


@pytest.mark.parametrize(
    "headers",
    [
        {"content-type": "application/json"},
        {"merchantno": "1000000002"},
        {"merchantno": ""},
    ],
    ids=["missing", "other", "empty"],
)
def test_refuses_a_wrong_merchant_no(headers: dict[str, str]) -> None:
    """The merchantNo header must name the sandbox's merchant."""
    gateway = make_gateway()
    reply = post(gateway, PAYOUT, body(payout()), headers)
    assert reply["code"] == "8000"
    assert gateway.stats.rejections["merchant"] == 1
    assert not gateway.payouts


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[1, 2]",
        b"",
        json.dumps({**payout(), "amount": 1000, "timestamp": str(NOW_MS)}).encode(),
        json.dumps(
            {**payout(), "extra": {"a": "b"}, "timestamp": str(NOW_MS)}
        ).encode(),
    ],
    ids=["text", "array", "empty", "number-value", "nested"],
)
def test_refuses_a_body_that_is_not_an_object_of_strings(raw: bytes) -> None:
    """The wire is a flat JSON object of strings; anything else is refused."""
    gateway = make_gateway()
    reply = post(gateway, PAYOUT, raw)
    assert reply["code"] == "8000"
    assert gateway.stats.rejections["malformed"] == 1


def test_refuses_a_duplicate_trade_no_and_executes_once() -> None:
    """A repeated tradeNo is refused with 8000; the money moves once."""
    gateway = make_gateway()
    assert post(gateway, PAYOUT, body(payout()))["code"] == "0000"
    again = post(gateway, PAYOUT, body(payout(amount="5000")))
    assert again["code"] == "8000"
    assert gateway.stats.duplicates["T1"] == 1
    assert gateway.stats.executions["T1"] == 1
    assert gateway.stats.double_executions == []
    assert gateway.balance.freeze_amount == 1000


def test_without_duplicate_checks_a_repeat_executes_twice() -> None:
    """reject_duplicates=False models a gateway that would pay twice."""
    gateway = make_gateway(reject_duplicates=False)
    post(gateway, PAYOUT, body(payout()))
    post(gateway, PAYOUT, body(payout()))
    assert gateway.stats.executions["T1"] == 2
    assert gateway.stats.double_executions == ["T1"]
    assert gateway.balance.freeze_amount == 2000


@pytest.mark.parametrize(
    "fields",
    [
        payout(amount="99"),
        payout(amount="100.50"),
        payout(amount="-100"),
        payout(bankCode="KPZPAY"),
        payout(notifyUrl="ftp://127.0.0.1/x"),
        payout(name=""),
        {k: v for k, v in payout().items() if k != "bankNumber"},
        payout(trade_no="T" * 65),
    ],
    ids=[
        "below-minimum",
        "fraction",
        "negative",
        "bank-code",
        "notify-url",
        "empty-name",
        "no-account",
        "long-trade-no",
    ],
)
def test_refuses_invalid_payout_fields(fields: dict[str, str]) -> None:
    """The documented field rules are enforced."""
    gateway = make_gateway()
    assert post(gateway, PAYOUT, body(fields))["code"] == "8000"
    assert gateway.stats.rejections["invalid"] == 1
    assert not gateway.payouts


def test_accepts_both_amount_readings() -> None:
    """``"100"`` (the rule) and ``"100.00"`` (the docs' example) both pass."""
    gateway = make_gateway()
    assert post(gateway, PAYOUT, body(payout("A", amount="100")))["code"] == "0000"
    assert post(gateway, PAYOUT, body(payout("B", amount="100.00")))["code"] == "0000"
    assert gateway.payouts["B"].amount == 100


def test_refuses_a_payout_above_the_available_balance() -> None:
    """Insufficient balance is a refusal; nothing is frozen."""
    gateway = make_gateway(initial_balance=500)
    reply = post(gateway, PAYOUT, body(payout(amount="1000")))
    assert reply["code"] == "8000"
    assert gateway.stats.rejections["balance"] == 1
    assert gateway.balance.available_amount == 500


def test_status_query_of_an_unknown_trade_no_answers_8000() -> None:
    """As the gateway does: the query fails, which says nothing about a payout."""
    gateway = make_gateway()
    for operation in (Operation.GET_PAYOUT, Operation.GET_DEPOSIT):
        reply = post(gateway, operation.path, body({"tradeNo": "NOPE"}))
        assert reply["code"] == "8000"
    assert gateway.stats.rejections["not_found"] == 2


def test_status_query_reports_the_payout_with_drifting_types() -> None:
    """The query answers the state, with the documented string and float amounts."""
    gateway = make_gateway()
    post(gateway, PAYOUT, body(payout(remark="salary")))
    data = post(gateway, Operation.GET_PAYOUT.path, body({"tradeNo": "T1"}))["data"]
    assert data["status"] == "0015"
    assert data["amount"] == "1000.00"
    assert data["orderAmount"] == 1000.0
    assert data["remark"] == "salary"
    assert "successTime" not in data


def test_balance_answers_numbers() -> None:
    """Balance data are JSON numbers, as documented."""
    gateway = make_gateway(initial_balance=50_000)
    post(gateway, PAYOUT, body(payout()))
    data = post(gateway, Operation.GET_BALANCE.path, body({}))["data"]
    assert data == {
        "availableAmount": 49_000,
        "freezeAmount": 1000,
        "unsettledAmount": 0,
    }


def test_unknown_path_and_wrong_method() -> None:
    """An unknown path is 404; GET is 405; any base-URL prefix is accepted."""
    gateway = make_gateway()
    assert gateway.handle("POST", "/v1/vexora/other", HEADERS, b"").status == 404
    assert gateway.handle("GET", PAYOUT, HEADERS, b"").status == 405
    reply = post(gateway, "/myanmar" + PAYOUT, body(payout()))
    assert reply["code"] == "0000"
    assert gateway.stats.requests[PAYOUT] == 2


def test_deposit_lifecycle_with_partial_payment() -> None:
    """A deposit is created, refused when repeated, and settles partially."""
    gateway = make_gateway(initial_balance=0)
    fields = {
        "tradeNo": "D1",
        "amount": "2000",
        "name": "Daw Aye",
        "notifyUrl": NOTIFY,
        "wayCode": "WAVEPAY",
        "channelCode": "EWALLET",
    }
    created = post(gateway, Operation.CREATE_DEPOSIT.path, body(fields))
    assert created["code"] == "0000"
    assert created["data"]["payUrl"].startswith("http://127.0.0.1/checkout/")
    assert post(gateway, Operation.CREATE_DEPOSIT.path, body(fields))["code"] == "8000"
    gateway.settle_deposit("D1", "0001")
    data = post(gateway, Operation.GET_DEPOSIT.path, body({"tradeNo": "D1"}))["data"]
    assert data["status"] == "0001"
    assert data["receivedAmount"] == 1000.0
    assert gateway.balance.available_amount == 1000
    (delivery,) = gateway.advance()
    callback = json.loads(delivery.body)
    assert callback["amount"] == "1000"
    assert callback["wayCode"] == "WAVEPAY"
    assert delivery.kind is TransactionKind.DEPOSIT


@pytest.mark.parametrize(
    ("account", "status", "available_change"),
    [
        ("3560123456780029", "00029", 0),
        ("3560123456780015", "0015", -1000),
        ("3560123456789012", "0000", -1000),
    ],
    ids=["fails", "stays-processing", "succeeds"],
)
def test_scenario_rules_settle_after_the_delay(
    account: str, status: str, available_change: int
) -> None:
    """The account number's suffix picks the fate; the delay picks the time."""
    clock = Clock()
    gateway = make_gateway(clock, settle_delay=2.0)
    post(gateway, PAYOUT, body(payout(bankNumber=account)))
    clock.now += 1.9
    assert gateway.advance() == []
    assert gateway.payouts["T1"].status == "0015"
    clock.now += 0.2
    deliveries = gateway.advance()
    assert gateway.payouts["T1"].status == status
    initial = gateway.config.initial_balance
    assert gateway.balance.available_amount == initial + available_change
    if status == "0015":
        assert deliveries == []
        assert gateway.balance.freeze_amount == 1000
    else:
        (delivery,) = deliveries
        assert delivery.url == NOTIFY
        assert delivery.attempt == 1
        assert gateway.balance.freeze_amount == 0


def test_callback_is_signed_with_the_request_rule() -> None:
    """A callback carries the documented fields and a valid sign."""
    gateway = make_gateway()
    post(gateway, PAYOUT, body(payout()))
    gateway.settle("T1")
    (delivery,) = gateway.advance()
    fields = json.loads(delivery.body)
    assert verify(fields, SANDBOX_APP_SECRET, fields["sign"])
    assert not verify(fields, "another-secret", fields["sign"])
    assert fields["status"] == "0000"
    assert fields["tradeNo"] == "T1"
    assert fields["platFormTradeNo"] == gateway.payouts["T1"].platform_trade_no
    assert fields["amount"] == "1000"
    assert fields["timestamp"] == str(NOW_MS)
    assert "successTime" in fields


def test_settle_on_demand_checks_its_arguments() -> None:
    """settle() refuses unknown tradeNos, final payouts and 0015."""
    gateway = make_gateway()
    post(gateway, PAYOUT, body(payout()))
    with pytest.raises(InvalidRequestError, match="0015"):
        gateway.settle("T1", "0015")
    with pytest.raises(InvalidRequestError, match="no payout"):
        gateway.settle("NOPE")
    gateway.settle("T1", "00032")
    assert gateway.payouts["T1"].status == "00032"
    # An unknown code leaves the money frozen: nobody knows where it went.
    assert gateway.balance.freeze_amount == 1000
    with pytest.raises(InvalidRequestError, match="already final"):
        gateway.settle("T1")


def test_callback_retries_follow_the_schedule_until_delivered() -> None:
    """Failed deliveries are retried after 2, 5, 10... seconds (scaled)."""
    clock = Clock()
    gateway = make_gateway(clock, time_scale=0.5)
    post(gateway, PAYOUT, body(payout()))
    gateway.settle("T1")
    (first,) = gateway.advance()
    gateway.record_delivery(first, delivered=False)
    assert gateway.next_due() == clock.now + 1.0
    clock.now += 1.0
    (second,) = gateway.advance()
    assert second.attempt == 2
    gateway.record_delivery(second, delivered=False)
    assert gateway.next_due() == clock.now + 2.5
    clock.now += 2.5
    (third,) = gateway.advance()
    gateway.record_delivery(third, delivered=True)
    assert gateway.next_due() is None
    assert gateway.stats.callback_attempts["T1"] == 3
    assert gateway.stats.callbacks_delivered["T1"] == 1


def test_callbacks_give_up_after_eight_retries() -> None:
    """One attempt plus the eight documented retries, then the query API."""
    clock = Clock()
    gateway = make_gateway(clock)
    post(gateway, PAYOUT, body(payout()))
    gateway.settle("T1")
    attempts = 0
    while (due := gateway.next_due()) is not None:
        clock.now = due
        for delivery in gateway.advance():
            attempts += 1
            gateway.record_delivery(delivery, delivered=False)
    assert attempts == 9
    assert clock.now - 1000.0 == sum(gateway.config.callback_schedule)
    assert gateway.stats.callbacks_exhausted["T1"] == 1


def test_callbacks_can_be_turned_off() -> None:
    """With callbacks=False, settling sends nothing."""
    gateway = make_gateway(callbacks=False)
    post(gateway, PAYOUT, body(payout()))
    gateway.settle("T1")
    assert gateway.advance() == []


@settings(max_examples=50, deadline=None)
@given(
    key=st.sampled_from(sorted(payout())),
    value=st.text(min_size=1, max_size=12),
)
def test_any_change_after_signing_is_refused(key: str, value: str) -> None:
    """Changing any signed field after signing makes the request fail."""
    fields = payout()
    signed = json.loads(body(fields))
    if signed[key] == value:
        return
    signed[key] = value
    gateway = make_gateway()
    reply = post(gateway, PAYOUT, json.dumps(signed).encode())
    assert reply["code"] == "8000"
    assert not gateway.payouts


@settings(max_examples=40, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.integers(min_value=100, max_value=5000),
            st.sampled_from(["0000", "00029", None]),
        ),
        max_size=20,
    )
)
def test_money_is_conserved(steps: list[tuple[int, str | None]]) -> None:
    """Available + frozen + paid out always equals the initial balance."""
    gateway = make_gateway(initial_balance=40_000)
    for index, (amount, final) in enumerate(steps):
        trade_no = f"P{index}"
        post(gateway, PAYOUT, body(payout(trade_no, amount=str(amount))))
        if final is not None and trade_no in gateway.payouts:
            gateway.settle(trade_no, final)
    paid = sum(
        (t.amount for t in gateway.payouts.values() if t.status.is_success),
        Decimal(0),
    )
    balance = gateway.balance
    assert balance.freeze_amount is not None
    assert balance.available_amount + balance.freeze_amount + paid == 40_000
    assert balance.available_amount >= 0
