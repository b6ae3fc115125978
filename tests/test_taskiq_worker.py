"""The taskiq worker recipe (docs/examples/taskiq_worker.py), end to end.

taskiq's in-memory broker everywhere; taskiq-redis's stream broker on the
real Redis server, the recipe's payouts table on the real PostgreSQL
(``.ci/services.sh``). The sandbox gateway runs with duplicate protection
off, so only the ledger stops a redelivered job.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import socket
import sys
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import fakeredis
import pytest
from psycopg import sql
from taskiq import InMemoryBroker, ScheduledTask, ScheduleSource
from taskiq.receiver import Receiver
from taskiq_redis import RedisStreamBroker
from vexora_async import (
    ConflictingRequestError,
    InvalidRequestError,
    PayoutRequest,
    PayoutResult,
    RedisLedger,
    RequestRejected,
    RetryPolicy,
    TradeNoCollision,
    VexoraClient,
)
from vexora_async.testing import (
    SANDBOX_APP_SECRET,
    SANDBOX_MERCHANT_NO,
    FakeGateway,
    Fault,
    SandboxConfig,
    serve_sandbox,
)

from tests.helpers import make_payout
from tests.servers import drop_table, postgres_pool, redis_url, unique


if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import AsyncIterator

    import psycopg_pool
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


def request_of(i: int) -> PayoutRequest:
    """Return the *i*-th payout of a test."""
    return make_payout(trade_no=f"TQ{i:010d}", bank_number=f"0979{i:07d}")


class MemoryPayouts:
    """The merchant's payouts table, in memory: stored before enqueueing."""

    def __init__(self, count: int) -> None:
        self.requests = {i: request_of(i) for i in range(count)}
        self.states: dict[int, str] = dict.fromkeys(self.requests, "new")

    async def insert(self, request: PayoutRequest) -> int:
        """Store a new payout."""
        payout_id = len(self.requests)
        self.requests[payout_id] = request
        self.states[payout_id] = "new"
        return payout_id

    async def request(self, payout_id: int) -> PayoutRequest:
        """Return the stored request."""
        return self.requests[payout_id]

    async def advance(self, payout_id: int, state: str) -> bool:
        """Move the payout forward only, by the recipe's rule."""
        if self.states[payout_id] not in recipe.MAY_LEAVE[state]:
            return False
        self.states[payout_id] = state
        return True

    async def stuck(
        self,
        new_after: dt.timedelta,  # noqa: ARG002 - every test row is old enough
        sending_after: dt.timedelta,  # noqa: ARG002
    ) -> list[int]:
        """Every row not yet sent (the tests' rows are all old enough)."""
        return [i for i, state in self.states.items() if state in {"new", "sending"}]


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
        send, _, _ = recipe.build(broker, schedule, payouts, connector(url, ledger))
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

            assert payouts.states[3] == "unknown"  # resolve later
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
        send, _, _ = recipe.build(
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
                if set(payouts.states.values()) == {"accepted"}:
                    break
                await asyncio.sleep(0.05)
        finally:
            finish.set()
            await listening
            await broker.shutdown()

    assert set(payouts.states.values()) == {"accepted"}
    assert gateway.stats.double_executions == []
    assert len(gateway.stats.executions) == 20


@pytest.mark.parametrize("name", ["send_payout", "resolve_payout", "sweep_payouts"])
def test_the_recipe_registers_its_tasks_on_the_stream_broker(name: str) -> None:
    """Imported for `taskiq worker`, the module wires the real broker."""
    assert isinstance(recipe.broker, RedisStreamBroker)
    assert recipe.broker.find_task(f"vexora.{name}") is not None


def test_a_dead_workers_job_comes_back_within_minutes_not_ten() -> None:
    """idle_timeout (ms) is lowered from taskiq-redis's 10 minutes, not below a job.

    A job fetched waits at most behind one batch of CONCURRENCY others.
    """
    assert recipe.broker.idle_timeout <= 5 * 60_000
    assert recipe.broker.idle_timeout > 60_000  # the default deadline, 60 s
    assert recipe.broker.count == recipe.CONCURRENCY


def test_the_sweeper_runs_every_minute() -> None:
    """The scheduler reads the sweeper's schedule from its label."""
    task = recipe.broker.find_task("vexora.sweep_payouts")
    assert task is not None
    assert task.labels["schedule"] == [{"cron": "* * * * *"}]


# -- the payouts table in PostgreSQL ---------------------------------------------------


@pytest.fixture
async def table() -> AsyncIterator[Any]:
    """The recipe's PostgresPayouts on a table of its own, dropped after."""
    pool = await postgres_pool()
    name = unique("payouts_")
    payouts = recipe.PostgresPayouts(pool, table=name)
    await payouts.create_table()
    try:
        yield payouts
    finally:
        await drop_table(pool, name)
        await pool.close()


async def state(payouts: Any, payout_id: int) -> str:
    """Read a payout's state from its row."""
    pool: psycopg_pool.AsyncConnectionPool[Any] = payouts.pool
    async with pool.connection() as conn:
        cursor = await conn.execute(
            sql.SQL("SELECT state FROM {} WHERE id = %s").format(payouts.table),
            (payout_id,),
        )
        (row,) = await cursor.fetchall()
    return str(row[0])


async def test_a_job_delivered_again_after_paid_leaves_it_paid(table: Any) -> None:
    """The recipe's SQL is forward-only: a late job never moves paid back.

    With a plain UPDATE the job delivered again would take the row back to
    sending and, the ledger answering "accepted", record accepted.
    """
    broker = InMemoryBroker()
    ledger = RedisLedger(fakeredis.FakeAsyncRedis())
    async with sandbox() as (gateway, url):
        send, _, _ = recipe.build(
            broker, MemorySchedule(), table, connector(url, ledger)
        )
        payout_id = await table.insert(request_of(1))
        await broker.startup()
        try:
            await send.kiq(payout_id)
            await broker.wait_all()
            assert await state(table, payout_id) == "accepted"
            assert await table.advance(payout_id, "paid")  # the callback
            await send.kiq(payout_id)  # the queue delivers it again
            await broker.wait_all()
        finally:
            await broker.shutdown()

    assert await state(table, payout_id) == "paid"
    assert len(gateway.stats.executions) == 1


async def test_no_state_moves_back(table: Any) -> None:
    """Each advance moves a payout only out of the states it may leave."""
    payout_id = await table.insert(request_of(2))
    assert not await table.advance(payout_id, "accepted")  # never sent
    for step in ("sending", "accepted", "paid"):
        assert await table.advance(payout_id, step)
    for back in ("sending", "unknown", "accepted", "failed"):
        assert not await table.advance(payout_id, back)
    assert await state(table, payout_id) == "paid"


def closed_port() -> int:
    """Return a loopback port nothing listens on (a Redis that is down)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_rows_whose_enqueue_failed_are_swept_and_paid_once(table: Any) -> None:
    """Redis down at enqueue: the rows stay new, the sweeper sends each once."""
    down = RedisStreamBroker(url=f"redis://127.0.0.1:{closed_port()}/0")

    @down.task(task_name="vexora.send_payout")
    async def unreachable(payout_id: int) -> None:
        raise AssertionError(payout_id)

    ids = [await recipe.submit(table, unreachable, request_of(i)) for i in range(5)]
    await down.shutdown()
    assert [await state(table, i) for i in ids] == ["new"] * 5

    broker = InMemoryBroker()
    ledger = RedisLedger(fakeredis.FakeAsyncRedis())
    async with sandbox() as (gateway, url):
        send, _, sweep = recipe.build(
            broker, MemorySchedule(), table, connector(url, ledger)
        )
        await broker.startup()
        try:
            fresh = await sweep.kiq()
            await broker.wait_all()
            assert (await fresh.wait_result()).return_value == 0  # not old yet
            async with table.pool.connection() as conn:
                await conn.execute(
                    sql.SQL("UPDATE {} SET updated_at = now() - %s").format(
                        table.table
                    ),
                    (recipe.SWEEP_NEW_AFTER * 2,),
                )
            swept = await sweep.kiq()
            await send.kiq(ids[0])  # a late original job as well: harmless
            await broker.wait_all()  # the sweeper, which kicked the jobs
            await broker.wait_all()  # the jobs it kicked
            assert (await swept.wait_result()).return_value == 5
        finally:
            await broker.shutdown()

    assert [await state(table, i) for i in ids] == ["accepted"] * 5
    assert gateway.stats.double_executions == []
    assert len(gateway.stats.executions) == 5


class RaisingClient:
    """Stands in for the worker's client: its create raises *error*."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    async def create_payout(self, request: PayoutRequest) -> PayoutResult:
        """Raise the error, as the SDK would."""
        del request
        raise self.error


@pytest.mark.parametrize(
    ("confirmed", "state", "resolves"), [(True, "failed", []), (False, "unknown", [0])]
)
async def test_a_refusal_is_failed_only_when_confirmed(
    confirmed: bool, state: str, resolves: list[int]
) -> None:
    """An unverified 8000 (verify_rejections=False) may be a duplicate's: unknown."""
    payouts = MemoryPayouts(1)
    later: list[int] = []

    async def resolve_later(payout_id: int) -> None:
        later.append(payout_id)

    refusal = RequestRejected(
        "8000", "refused", trade_no="TQ0000000000", confirmed=confirmed
    )
    await recipe.pay(payouts, RaisingClient(refusal), 0, resolve_later)
    assert payouts.states[0] == state
    assert later == resolves


@pytest.mark.parametrize(
    "error",
    [
        InvalidRequestError("amount", "must be at least 100"),
        ConflictingRequestError("another payload", trade_no="TQ0000000000"),
        TradeNoCollision(
            "held by another payout",
            trade_no="TQ0000000000",
            field="amount",
            requested_amount=Decimal(100),
            found_amount=Decimal(25000),
        ),
    ],
    ids=lambda error: type(error).__name__,
)
async def test_requests_a_resend_cannot_fix_go_to_a_human(
    error: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    """Not failed, not retried by the queue: logged at ERROR, the row left as is."""
    payouts = MemoryPayouts(1)

    async def resolve_later(payout_id: int) -> None:
        raise AssertionError(payout_id)

    with caplog.at_level("ERROR", logger="shop.payouts"):
        await recipe.pay(payouts, RaisingClient(error), 0, resolve_later)
    assert payouts.states[0] == "sending"
    [record] = caplog.records
    assert "TQ0000000000 needs a human" in record.getMessage()
