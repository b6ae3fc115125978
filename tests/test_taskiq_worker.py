"""The taskiq worker recipe (docs/examples/taskiq_worker.py), end to end.

taskiq's in-memory broker everywhere; taskiq-redis's stream broker on the
real Redis server (``.ci/services.sh``). The sandbox gateway runs with
duplicate protection off, so only the ledger stops a redelivered job.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import fakeredis
import pytest
from taskiq import InMemoryBroker, ScheduledTask, ScheduleSource
from taskiq.receiver import Receiver
from taskiq_redis import RedisStreamBroker
from vexora_async import PayoutRequest, RedisLedger, RetryPolicy, VexoraClient
from vexora_async.testing import (
    SANDBOX_APP_SECRET,
    SANDBOX_MERCHANT_NO,
    FakeGateway,
    Fault,
    SandboxConfig,
    serve_sandbox,
)

from tests.helpers import make_payout
from tests.servers import redis_url, unique


if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from taskiq import AsyncBroker

EXAMPLE = Path(__file__).resolve().parent.parent / "docs" / "examples"
_spec = importlib.util.spec_from_file_location(
    "taskiq_worker", EXAMPLE / "taskiq_worker.py"
)
assert _spec is not None
assert _spec.loader is not None
recipe = importlib.util.module_from_spec(_spec)
sys.modules["taskiq_worker"] = recipe  # taskiq looks its tasks' module up
_spec.loader.exec_module(recipe)


class MemoryPayouts:
    """The merchant's payouts table, in memory: stored before enqueueing."""

    def __init__(self, count: int) -> None:
        self.requests = {
            i: make_payout(trade_no=f"TQ{i:010d}", bank_number=f"0979{i:07d}")
            for i in range(count)
        }
        self.states: dict[int, str] = {}

    async def request(self, payout_id: int) -> PayoutRequest:
        """Return the stored request."""
        return self.requests[payout_id]

    async def mark(self, payout_id: int, state: str) -> None:
        """Record the payout's state."""
        self.states[payout_id] = state


class MemorySchedule(ScheduleSource):
    """Delayed jobs, kept until the test fires them (the scheduler's part)."""

    def __init__(self) -> None:
        self.due: list[ScheduledTask] = []

    async def get_schedules(self) -> list[ScheduledTask]:
        """Return the scheduled jobs."""
        return list(self.due)

    async def add_schedule(self, schedule: ScheduledTask) -> None:
        """Keep a delayed job."""
        self.due.append(schedule)

    async def fire(self, broker: AsyncBroker) -> int:
        """Send every delayed job now; return how many."""
        due, self.due = self.due, []
        for job in due:
            task = broker.find_task(job.task_name)
            assert task is not None
            await task.kicker().with_labels(**job.labels).kiq(*job.args, **job.kwargs)
        return len(due)


@contextlib.asynccontextmanager
async def sandbox() -> AsyncIterator[tuple[FakeGateway, str]]:
    """A sandbox gateway that would execute a duplicate tradeNo twice."""
    gateway = FakeGateway(
        SandboxConfig(reject_duplicates=False, settle_delay=None, callbacks=False)
    )
    async with serve_sandbox(gateway) as url:
        yield gateway, url


def connector(url: str, ledger: RedisLedger) -> Any:
    """Return the recipe's *connect*: one client per worker, short deadline."""

    @contextlib.asynccontextmanager
    async def connect() -> AsyncIterator[VexoraClient]:
        async with VexoraClient(
            SANDBOX_MERCHANT_NO,
            SANDBOX_APP_SECRET,
            url,
            ledger=ledger,
            retry=RetryPolicy(backoff_initial=0.01, backoff_max=0.02, deadline=1),
        ) as client:
            yield client

    return connect


async def test_redelivered_jobs_pay_once_and_unknowns_are_resolved_later() -> None:
    """Every job twice, one lost answer, one refusal: each payout paid once."""
    payouts = MemoryPayouts(10)
    schedule = MemorySchedule()
    broker = InMemoryBroker()
    ledger = RedisLedger(fakeredis.FakeAsyncRedis())
    async with sandbox() as (gateway, url):
        send, _ = recipe.build(broker, schedule, payouts, connector(url, ledger))
        # Payout 3: executed, but every answer is lost within its deadline.
        gateway.faults.for_trade_no("TQ0000000003", *[Fault.drop()] * 60)
        # Payout 5: refused with 429 (not executed) on every attempt.
        gateway.faults.for_trade_no("TQ0000000005", *[Fault.rate_limited(0.01)] * 3)
        await broker.startup()
        try:
            for payout_id in payouts.requests:
                await send.kiq(payout_id)
                await send.kiq(payout_id)  # the queue delivers it again
            await broker.wait_all()

            assert payouts.states[3] == "processing"  # unknown: resolve later
            gateway.faults.clear()
            fired = await schedule.fire(broker)  # the scheduler's turn
            await broker.wait_all()
        finally:
            await broker.shutdown()

    assert fired >= 2  # a delayed resolve, and the retry of a 429'd job
    assert set(payouts.states.values()) == {"accepted"}
    assert gateway.stats.double_executions == []
    assert set(gateway.stats.executions) == {
        r.trade_no for r in payouts.requests.values()
    }


async def test_the_stream_broker_on_real_redis() -> None:
    """The same recipe over taskiq-redis's acknowledged stream broker."""
    url = redis_url()
    payouts = MemoryPayouts(20)
    broker = RedisStreamBroker(url=url, queue_name=unique("vexora-test-jobs:"))
    broker.is_worker_process = True
    async with (
        sandbox() as (gateway, gateway_url),
        RedisLedger.from_url(url, prefix=unique("vexora-test:")) as ledger,
    ):
        send, _ = recipe.build(
            broker, MemorySchedule(), payouts, connector(gateway_url, ledger)
        )
        finish = asyncio.Event()
        receiver = Receiver(broker, max_async_tasks=20)
        listening = asyncio.create_task(receiver.listen(finish))
        try:
            for payout_id in payouts.requests:
                await send.kiq(payout_id)
                await send.kiq(payout_id)
            # A bounded wait that works on 3.10 too (no asyncio.timeout).
            for _ in range(1200):
                if len(payouts.states) >= len(payouts.requests):
                    break
                await asyncio.sleep(0.05)
        finally:
            finish.set()
            await listening
            await broker.shutdown()

    assert set(payouts.states.values()) == {"accepted"}
    assert gateway.stats.double_executions == []
    assert len(gateway.stats.executions) == 20


@pytest.mark.parametrize("name", ["send_payout", "resolve_payout"])
def test_the_recipe_registers_its_tasks_on_the_stream_broker(name: str) -> None:
    """Imported for `taskiq worker`, the module wires the real broker."""
    assert isinstance(recipe.broker, RedisStreamBroker)
    assert recipe.broker.find_task(f"vexora.{name}") is not None
