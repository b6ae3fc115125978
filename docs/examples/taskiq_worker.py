"""A payout worker on taskiq, with taskiq-redis's stream broker.

Run the workers with ``taskiq worker taskiq_worker:broker`` (as many
processes and hosts as you like) and the scheduler that fires delayed
jobs with ``taskiq scheduler taskiq_worker:scheduler``. Enqueue a payout
*after* its row (with its tradeNo) is committed::

    await send_payout.kiq(payout.id)

The rules it follows (see "Running many workers"):

- one ``VexoraClient`` and one ``RedisLedger`` per worker process, made in
  the worker's startup event and closed in its shutdown event;
- the job's argument is the payout's id: the tradeNo is read from your
  database, never made up by the job, so a redelivered job is the same
  payout;
- the queue retries only errors that mean "nothing was sent";
- ``PayoutOutcomeUnknown`` marks the payout processing and schedules a
  delayed ``resolve_payout`` under the same tradeNo.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from typing import TYPE_CHECKING, Any, Protocol

from taskiq import (
    Context,
    SmartRetryMiddleware,
    TaskiqDepends,
    TaskiqEvents,
    TaskiqScheduler,
)
from taskiq_redis import ListRedisScheduleSource, RedisStreamBroker
from vexora_async import (
    ClientClosedError,
    ConnectError,
    LedgerError,
    PayoutOutcomeUnknown,
    PayoutRequest,
    RedisLedger,
    RequestRejected,
    VexoraClient,
)


if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from taskiq import AsyncBroker, ScheduleSource, TaskiqState

#: Errors after which nothing was sent: safe to run the job again. (Their
#: may_have_executed is False; so is a bad request's, which a rerun won't fix.)
NOTHING_SENT = (ConnectError, LedgerError, ClientClosedError)
#: How long after an unknown outcome to ask the gateway again.
RESOLVE_AFTER = dt.timedelta(minutes=5)
#: Jobs at once per worker process: at most the client's max_connections.
#: 20 is the default transport's default; past it httpx's pool costs more
#: CPU than it adds throughput (docs/performance.md). For more, run more
#: worker processes, or pass transport="aiohttp" with the aiohttp extra.
CONCURRENCY = 20


class Payouts(Protocol):
    """Your payouts table: the request (with its tradeNo) by payout id."""

    async def request(self, payout_id: int) -> PayoutRequest:
        """Return the payout's request, tradeNo included, as stored."""
        ...

    async def mark(self, payout_id: int, state: str) -> None:
        """Record the payout's state: accepted, rejected or processing."""
        ...


def build(
    broker: AsyncBroker,
    schedule_source: ScheduleSource,
    payouts: Payouts,
    connect: Callable[[], contextlib.AbstractAsyncContextManager[VexoraClient]],
) -> tuple[Any, Any]:
    """Register the worker's events and tasks on *broker*; return the tasks.

    *connect* opens the worker process's one client (and its ledger).
    """
    broker.add_middlewares(
        SmartRetryMiddleware(
            types_of_exceptions=NOTHING_SENT,  # nothing else is retried
            default_retry_label=True,
            default_retry_count=5,
            default_delay=10,
            use_delay_exponent=True,
            max_delay_exponent=300,
            schedule_source=schedule_source,
        )
    )

    @broker.on_event(TaskiqEvents.WORKER_STARTUP)
    async def startup(state: TaskiqState) -> None:
        state.resources = contextlib.AsyncExitStack()
        state.client = await state.resources.enter_async_context(connect())

    @broker.on_event(TaskiqEvents.WORKER_SHUTDOWN)
    async def shutdown(state: TaskiqState) -> None:
        await state.resources.aclose()

    async def pay(payout_id: int, client: VexoraClient, *, resolve: bool) -> None:
        request = await payouts.request(payout_id)
        try:
            if resolve:
                await client.resolve_payout(request)
            else:
                await client.create_payout(request)
        except RequestRejected:
            await payouts.mark(payout_id, "rejected")  # final: not paid
        except PayoutOutcomeUnknown:
            # May be paid: never "failed", never a new tradeNo. Ask later.
            await payouts.mark(payout_id, "processing")
            await resolve_payout.kicker().schedule_by_time(
                schedule_source,
                dt.datetime.now(dt.timezone.utc) + RESOLVE_AFTER,
                payout_id,
            )
        else:
            await payouts.mark(payout_id, "accepted")
        # NOTHING_SENT errors propagate: the retry middleware runs the job again.

    @broker.task(task_name="vexora.send_payout")
    async def send_payout(payout_id: int, context: Context = TaskiqDepends()) -> None:  # noqa: B008 - taskiq injects it
        await pay(payout_id, context.state.client, resolve=False)

    @broker.task(task_name="vexora.resolve_payout")
    async def resolve_payout(
        payout_id: int,
        context: Context = TaskiqDepends(),  # noqa: B008 - taskiq injects it
    ) -> None:
        await pay(payout_id, context.state.client, resolve=True)

    return send_payout, resolve_payout


# -- production wiring ---------------------------------------------------------------

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


@contextlib.asynccontextmanager
async def connect() -> AsyncIterator[VexoraClient]:
    """Open this worker process's client over a shared Redis ledger."""
    async with (
        RedisLedger.from_url(REDIS_URL) as ledger,
        VexoraClient(
            os.environ.get("VEXORA_MERCHANT_NO", ""),
            os.environ.get("VEXORA_APP_SECRET", ""),
            os.environ.get("VEXORA_BASE_URL", ""),
            ledger=ledger,
            max_connections=CONCURRENCY,
        ) as client,
    ):
        yield client


class YourPayouts:
    """Your payouts table (replace with your database access)."""

    async def request(self, payout_id: int) -> PayoutRequest:
        """Load the payout's stored request."""
        raise NotImplementedError(payout_id)

    async def mark(self, payout_id: int, state: str) -> None:
        """Store the payout's state."""
        raise NotImplementedError(payout_id, state)


#: Acknowledged, at-least-once delivery: a job whose worker died is
#: delivered again (to the same tradeNo, which the ledger recognises).
broker = RedisStreamBroker(url=REDIS_URL)
schedule_source = ListRedisScheduleSource(url=REDIS_URL)
scheduler = TaskiqScheduler(broker, sources=[schedule_source])
send_payout, resolve_payout = build(broker, schedule_source, YourPayouts(), connect)
