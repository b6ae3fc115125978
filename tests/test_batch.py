"""Tests for batch payouts: one outcome per request, bounded, lazy, cancellable."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from typing import TYPE_CHECKING

import pytest
from vexora_async import (
    BatchProgress,
    ConnectError,
    HTTPStatusError,
    InvalidRequestError,
    OutcomeKind,
    PayoutOutcomeUnknown,
    PayoutRequest,
    PayoutResult,
    RequestRejected,
    TransactionStatus,
    VexoraClient,
)
from vexora_async._batch import create_payouts
from vexora_async.testing import (
    SANDBOX_APP_SECRET,
    SANDBOX_MERCHANT_NO,
    FakeGateway,
    Fault,
    FaultKind,
    SandboxConfig,
    serve_sandbox,
)


if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

from conftest import make_payout


def requests(count: int, prefix: str = "B") -> Iterator[PayoutRequest]:
    """Yield *count* distinct payout requests."""
    for i in range(count):
        yield make_payout(trade_no=f"{prefix}{i:06d}", amount=100 + i)


class FakeSender:
    """A client stand-in: answers after *delay*, by a rule on the tradeNo."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.in_flight = 0
        self.peak = 0
        self.sent: list[str] = []

    async def create_payout(self, request: PayoutRequest) -> PayoutResult:
        """Answer like a gateway whose tradeNo suffix picks the outcome."""
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
            self.sent.append(request.trade_no)
            return self.answer(request)
        finally:
            self.in_flight -= 1

    def answer(self, request: PayoutRequest) -> PayoutResult:
        """Map the last digit of the tradeNo to an outcome."""
        trade_no = request.trade_no
        last = trade_no[-1]
        if last == "1":
            raise RequestRejected("8000", "refused", trade_no=trade_no)
        if last == "2":
            raise PayoutOutcomeUnknown("lost", trade_no=trade_no)
        if last == "3":
            raise ConnectError("refused", trade_no=trade_no)
        return PayoutResult(trade_no=trade_no, status=TransactionStatus.PROCESSING)


def batch_workers() -> list[asyncio.Task[object]]:
    """Return the batch worker tasks still alive."""
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("vexora-batch")]


async def test_one_outcome_per_request_of_the_right_kind() -> None:
    """Each error becomes its outcome; none stops the batch."""
    sender = FakeSender()
    outcomes = [o async for o in create_payouts(sender, list(requests(40)))]
    assert sorted(o.trade_no for o in outcomes) == sorted(sender.sent)
    assert len(outcomes) == 40
    kinds = {o.trade_no: o.kind for o in outcomes}
    assert kinds["B000001"] is OutcomeKind.REJECTED
    assert kinds["B000002"] is OutcomeKind.UNKNOWN
    assert kinds["B000003"] is OutcomeKind.ERROR
    assert kinds["B000004"] is OutcomeKind.ACCEPTED
    for outcome in outcomes:
        assert (outcome.result is None) == (outcome.kind is not OutcomeKind.ACCEPTED)
        assert (outcome.error is None) == (outcome.kind is OutcomeKind.ACCEPTED)
        assert outcome.accepted == (outcome.kind is OutcomeKind.ACCEPTED)
    unknown = next(o for o in outcomes if o.kind is OutcomeKind.UNKNOWN)
    assert isinstance(unknown.error, PayoutOutcomeUnknown)
    assert unknown.error.trade_no == unknown.trade_no


async def test_concurrency_is_bounded_by_a_fixed_pool_of_workers() -> None:
    """At most *concurrency* sends at once, by that many tasks, not one per request."""
    sender = FakeSender(delay=0.001)
    tasks_seen = 0

    async for _ in create_payouts(sender, requests(300), concurrency=7):
        tasks_seen = max(tasks_seen, len(asyncio.all_tasks()))
    assert sender.peak == 7
    # The consumer, the workers and nothing else.
    assert tasks_seen <= 1 + 7


async def test_input_is_consumed_lazily() -> None:
    """A slow consumer pauses the input: memory stays flat for any length."""
    pulled = 0

    def endless() -> Iterator[PayoutRequest]:
        nonlocal pulled
        for request in requests(1_000_000):
            pulled += 1
            yield request

    consumed = 0
    async with contextlib.aclosing(
        create_payouts(FakeSender(), endless(), concurrency=5)
    ) as batch:
        async for _ in batch:
            consumed += 1
            await asyncio.sleep(0)
            # Workers hold one request each; the queue holds five outcomes.
            assert pulled <= consumed + 2 * 5 + 1
            if consumed == 200:
                break
    assert pulled < 250


async def test_async_iterable_input_with_many_workers() -> None:
    """An async generator is read by one worker at a time, never concurrently."""

    async def source() -> AsyncIterator[PayoutRequest]:
        for request in requests(100):
            await asyncio.sleep(0)
            yield request

    outcomes = [o async for o in create_payouts(FakeSender(), source(), concurrency=10)]
    assert len({o.trade_no for o in outcomes}) == 100


async def test_outcomes_come_in_completion_order() -> None:
    """A slow first request does not hold back the fast ones after it."""

    class Slow(FakeSender):
        async def create_payout(self, request: PayoutRequest) -> PayoutResult:
            if request.trade_no.endswith("0"):
                await asyncio.sleep(0.05)
            return self.answer(request)

    order = [
        o.trade_no
        async for o in create_payouts(Slow(), requests(5, "X"), concurrency=5)
    ]
    assert order[-1] == "X000000"
    assert sorted(order) == [f"X00000{i}" for i in range(5)]


async def test_progress_is_reported_after_each_outcome() -> None:
    """on_progress sees done grow by one, with the totals by kind."""
    seen: list[BatchProgress] = []
    batch = list(requests(20))
    async for _ in create_payouts(FakeSender(), batch, on_progress=seen.append):
        pass
    assert [p.done for p in seen] == list(range(1, 21))
    last = seen[-1]
    assert last.total == 20
    assert last.started == 20
    assert last.in_flight == 0
    assert (last.accepted, last.rejected, last.unknown, last.errors) == (14, 2, 2, 2)
    assert all(p.started >= p.done for p in seen)


async def test_total_is_unknown_for_a_generator() -> None:
    """A generator has no length: progress says total None."""
    seen: list[BatchProgress] = []
    async for _ in create_payouts(FakeSender(), requests(3), on_progress=seen.append):
        pass
    assert {p.total for p in seen} == {None}


async def test_an_item_that_is_not_a_request_is_an_error_outcome() -> None:
    """Garbage in the input becomes an ERROR outcome; the rest goes on."""
    mixed: list[object] = [make_payout(trade_no="OK0"), "not a request"]
    outcomes = [o async for o in create_payouts(FakeSender(), mixed)]  # type: ignore[arg-type]  # the point
    kinds = Counter(o.kind for o in outcomes)
    assert kinds == {OutcomeKind.ACCEPTED: 1, OutcomeKind.ERROR: 1}
    bad = next(o for o in outcomes if o.kind is OutcomeKind.ERROR)
    assert isinstance(bad.error, InvalidRequestError)


@pytest.mark.parametrize("concurrency", [0, -1, 1.5, True, "3"])
def test_refuses_a_bad_concurrency(concurrency: object) -> None:
    """Concurrency must be a positive int; checked before anything runs."""
    with pytest.raises(InvalidRequestError, match="concurrency"):
        create_payouts(FakeSender(), [], concurrency=concurrency)  # type: ignore[arg-type]  # the point


def test_refuses_input_that_is_not_iterable() -> None:
    """A number is not a batch."""
    with pytest.raises(InvalidRequestError, match="iterable"):
        create_payouts(FakeSender(), 42)  # type: ignore[arg-type]  # the point


async def test_an_unexpected_error_stops_the_batch_and_its_workers() -> None:
    """A bug (not a VexoraError) propagates; no worker is left running."""

    class Buggy(FakeSender):
        async def create_payout(self, request: PayoutRequest) -> PayoutResult:
            if request.trade_no == "B000005":
                msg = "a bug"
                raise KeyError(msg)
            await asyncio.sleep(0.01)
            return self.answer(request)

    with pytest.raises(KeyError, match="a bug"):
        async for _ in create_payouts(Buggy(), requests(50), concurrency=4):
            pass
    await asyncio.sleep(0)
    assert not [
        t for t in asyncio.all_tasks() if t.get_name().startswith("vexora-batch")
    ]


async def test_a_failing_input_stops_the_batch() -> None:
    """An exception from the input iterator reaches the consumer."""

    def broken() -> Iterator[PayoutRequest]:
        yield make_payout(trade_no="OK1")
        msg = "the database went away"
        raise RuntimeError(msg)

    with pytest.raises(RuntimeError, match="database"):
        async for _ in create_payouts(FakeSender(), broken()):
            pass


async def test_cancelling_the_consumer_cancels_the_workers() -> None:
    """A cancelled consumer leaves no worker and no request in flight."""
    sender = FakeSender(delay=10.0)

    async def consume() -> None:
        async for _ in create_payouts(
            sender, requests(100), concurrency=8, on_progress=lambda _: None
        ):
            pass

    task = asyncio.create_task(consume())
    for _ in range(1000):
        if sender.in_flight == 8:
            break
        await asyncio.sleep(0.001)
    assert sender.in_flight == 8
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sender.in_flight == 0
    assert not [
        t for t in asyncio.all_tasks() if t.get_name().startswith("vexora-batch")
    ]


async def test_leaving_early_with_aclosing_stops_the_workers() -> None:
    """Breaking out under aclosing() stops everything at once."""
    sender = FakeSender(delay=0.001)
    async with contextlib.aclosing(
        create_payouts(sender, requests(1000), concurrency=6)
    ) as batch:
        async for _ in batch:
            break
    assert sender.in_flight == 0
    assert not [
        t for t in asyncio.all_tasks() if t.get_name().startswith("vexora-batch")
    ]


async def test_client_method_delegates(
    sandbox_client: VexoraClient, gateway: FakeGateway
) -> None:
    """client.create_payouts sends through the client, to the gateway."""
    gateway.faults.for_trade_no("B000003", Fault.http_error(503))
    kinds = Counter(
        [
            o.kind
            async for o in sandbox_client.create_payouts(requests(10), concurrency=3)
        ]
    )
    assert kinds == {OutcomeKind.ACCEPTED: 9, OutcomeKind.ERROR: 1}
    assert len(gateway.payouts) == 9


async def test_ten_thousand_payouts_with_faults_over_a_socket() -> None:
    """10,000 payouts, 5% faults: every one accounted for, none paid twice.

    Every request has exactly one outcome; accepted ones were executed
    once; refused and not-sent ones were not executed; every unknown one
    carries its tradeNo and is resolved afterwards by get_payout: found
    (executed once) or not known to the gateway (never executed).
    """
    count = 10_000
    gateway = FakeGateway(SandboxConfig(settle_delay=None, callbacks=False))
    gateway.faults.at_rate(0.05, seed=20260331)
    batch = list(requests(count, "K"))
    async with (
        serve_sandbox(gateway) as url,
        VexoraClient(SANDBOX_MERCHANT_NO, SANDBOX_APP_SECRET, url) as client,
    ):
        outcomes = [o async for o in client.create_payouts(batch, concurrency=8)]
        gateway.faults.clear()
        resolved: dict[str, bool] = {}
        for outcome in outcomes:
            if outcome.kind is OutcomeKind.UNKNOWN:
                assert isinstance(outcome.error, PayoutOutcomeUnknown)
                assert outcome.error.trade_no == outcome.trade_no
                try:
                    status = await client.get_payout(outcome.trade_no)
                except RequestRejected:
                    resolved[outcome.trade_no] = False
                else:
                    assert status.trade_no == outcome.trade_no
                    resolved[outcome.trade_no] = True
    assert sorted(o.trade_no for o in outcomes) == [r.trade_no for r in batch]
    assert gateway.stats.max_executions == 1
    assert gateway.stats.double_executions == []
    kinds = Counter(o.kind for o in outcomes)
    assert kinds[OutcomeKind.REJECTED] == 0
    assert kinds[OutcomeKind.UNKNOWN] > 0
    assert kinds[OutcomeKind.ERROR] > 0
    for outcome in outcomes:
        executed = gateway.stats.executions[outcome.trade_no]
        if outcome.kind is OutcomeKind.ACCEPTED:
            assert executed == 1
        elif outcome.kind is OutcomeKind.UNKNOWN:
            assert executed == int(resolved[outcome.trade_no])
        else:
            # Only 503 and 429 are refused before executing.
            assert isinstance(outcome.error, HTTPStatusError)
            assert outcome.error.status_code in {429, 503}
            assert executed == 0
    assert sum(gateway.stats.faults.values()) > 0.04 * count
    assert gateway.stats.faults[FaultKind.DROP] > 0
