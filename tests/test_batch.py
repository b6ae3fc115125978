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
    InvalidRequestError,
    Operation,
    OutcomeKind,
    PayoutOutcomeUnknown,
    PayoutRequest,
    PayoutResult,
    RequestRejected,
    RetryPolicy,
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

from tests.helpers import make_payout


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
            raise RequestRejected("8000", "refused", trade_no=trade_no, confirmed=True)
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
    """client.create_payouts sends through the client and its retry layer.

    A 503 on a create may come from a proxy that forwarded it, so it is
    reconciled, never read as "not executed": one before the gateway took
    the payout is sent again after the query found nothing, and 503s after
    it took one (on the create and the first queries) end with the query
    finding it. Every payout is accepted and executed once.
    """
    attempts = sandbox_client.retry_policy.max_retries + 1
    gateway.faults.for_trade_no("B000003", Fault.http_error(503))
    gateway.faults.for_trade_no(
        "B000005", *[Fault.http_error(503, executed=True)] * attempts
    )
    outcomes = [
        o async for o in sandbox_client.create_payouts(requests(10), concurrency=3)
    ]
    assert Counter(o.kind for o in outcomes) == {OutcomeKind.ACCEPTED: 10}
    assert sorted(gateway.payouts) == sorted(o.trade_no for o in outcomes)
    assert gateway.stats.max_executions == 1
    assert gateway.stats.faults[FaultKind.HTTP_ERROR] == 1 + attempts


#: The default layers with near-zero backoff, so that 10,000 payouts with
#: retries and reconciliation stay quick.
BATCH_RETRY = RetryPolicy(backoff_initial=0.001, backoff_max=0.01, deadline=20)


@pytest.mark.slow
async def test_ten_thousand_payouts_with_faults_over_a_socket() -> None:
    """10,000 payouts, 5% faults on every call: every one accounted for, none twice.

    The retry layer turns nearly every fault into an acceptance. Every
    request has exactly one outcome, and its kind agrees with the gateway:
    accepted ones were executed once, refused and not-sent ones never.
    A few tradeNos are scripted to stay unknown (every query fails) or to
    be refused on every attempt; each unknown one is settled afterwards by
    ``client.resolve_payout`` under its own tradeNo, executed exactly once.
    """
    count = 10_000
    gateway = FakeGateway(SandboxConfig(settle_delay=None, callbacks=False))
    gateway.faults.at_rate(0.05, seed=20260331)
    # Lost answers with every reconciliation query lost too: unknown, once
    # after the gateway paid and once after it did not.
    lost = BATCH_RETRY.max_reconcile_queries + 1
    gateway.faults.for_trade_no("K000100", *[Fault.drop()] * lost)
    gateway.faults.for_trade_no("K000200", *[Fault.drop(executed=False)] * lost)
    # A proxy's 503 after forwarding, on the create and the next queries:
    # found by a query, never sent again.
    refused = BATCH_RETRY.max_retries + 1
    gateway.faults.for_trade_no(
        "K000300", *[Fault.http_error(503, executed=True)] * refused
    )
    # Above the balance: refused with 8000, and the confirming query finds
    # nothing. Two harmless scripted faults keep random ones off both calls.
    too_big = make_payout(trade_no="K000400", amount=10**12)
    gateway.faults.for_trade_no("K000400", Fault.delay(0), Fault.delay(0))
    batch = [too_big if r.trade_no == "K000400" else r for r in requests(count, "K")]
    async with (
        serve_sandbox(gateway) as url,
        VexoraClient(
            SANDBOX_MERCHANT_NO, SANDBOX_APP_SECRET, url, retry=BATCH_RETRY
        ) as client,
    ):
        outcomes = [o async for o in client.create_payouts(batch, concurrency=8)]
        executed_before = dict(gateway.stats.executions)
        gateway.faults.clear()
        unknown = [o for o in outcomes if o.kind is OutcomeKind.UNKNOWN]
        resolved = {o.trade_no: await client.resolve_payout(o.request) for o in unknown}

    assert sorted(o.trade_no for o in outcomes) == [r.trade_no for r in batch]
    assert gateway.stats.double_executions == []
    by_kind: dict[OutcomeKind, set[str]] = {kind: set() for kind in OutcomeKind}
    for outcome in outcomes:
        by_kind[outcome.kind].add(outcome.trade_no)
        executed = executed_before.get(outcome.trade_no, 0)
        if outcome.kind is OutcomeKind.ACCEPTED:
            assert outcome.result is not None
            assert executed == 1
            transaction = gateway.payouts[outcome.trade_no]
            assert outcome.result.platform_trade_no == transaction.platform_trade_no
        elif outcome.kind is OutcomeKind.UNKNOWN:
            assert isinstance(outcome.error, PayoutOutcomeUnknown)
            assert outcome.error.trade_no == outcome.trade_no
            assert resolved[outcome.trade_no].trade_no == outcome.trade_no
            assert gateway.stats.executions[outcome.trade_no] == 1
        else:
            assert executed == 0
            assert outcome.trade_no not in gateway.payouts
    assert by_kind[OutcomeKind.REJECTED] == {"K000400"}
    assert gateway.stats.rejections["balance"] == 1
    assert {"K000100", "K000200"} <= by_kind[OutcomeKind.UNKNOWN]
    assert (executed_before.get("K000100"), executed_before.get("K000200")) == (1, None)
    assert "K000300" in by_kind[OutcomeKind.ACCEPTED]
    # Every answer came from the gateway: no outcome is "not executed".
    assert by_kind[OutcomeKind.ERROR] == set()
    # The random faults were many, and nearly all ended accepted.
    assert sum(gateway.stats.faults.values()) > 0.04 * count
    assert gateway.stats.faults[FaultKind.DROP] > 0
    assert len(by_kind[OutcomeKind.ACCEPTED]) >= 0.999 * count
    assert gateway.stats.requests[Operation.GET_PAYOUT.path] > 0.01 * count
