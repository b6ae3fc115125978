"""A payout worker on taskiq: taskiq-redis's stream broker, payouts in PostgreSQL.

Run the workers, the scheduler (delayed resolves, retries and the
sweeper) and, once per deployment, the migration::

    python docs/examples/taskiq_worker.py migrate
    taskiq worker taskiq_worker:broker --workers 2 --max-async-tasks 20
    taskiq scheduler taskiq_worker:scheduler

Your web request commits the payout's row (state ``new``, its tradeNo
with it) and only then enqueues it: ``await submit(payouts, send_payout,
request)``. See "Running many workers" for why each rule below is there:

- one ``VexoraClient`` (and its ledger) per worker process, made in the
  worker's startup event and closed in its shutdown event;
- the job's argument is the payout's id: the tradeNo is read from your
  database, never made up by the job, so a redelivered job is the same
  payout;
- the worker makes the claim (the row's ``new`` -> ``sending``, then the
  ledger's in ``create_payout``), never the web request;
- every state change is forward-only: ``UPDATE ... WHERE state IN (the
  states it may leave)``, so a redelivered or late job never moves a
  payout back;
- the queue retries only errors that mean "nothing was sent";
- ``PayoutOutcomeUnknown`` marks the payout ``unknown`` and schedules a
  delayed ``resolve_payout`` under the same tradeNo;
- a sweeper enqueues again the rows left in ``new`` (their enqueue failed:
  Redis was down) or stale in ``sending`` (their job was lost).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
from typing import TYPE_CHECKING, Any, Protocol

from psycopg import sql
from psycopg_pool import AsyncConnectionPool
from taskiq import (
    Context,
    SmartRetryMiddleware,
    TaskiqDepends,
    TaskiqEvents,
    TaskiqScheduler,
)
from taskiq.exceptions import SendTaskError
from taskiq.schedule_sources import LabelScheduleSource
from taskiq_redis import ListRedisScheduleSource, RedisStreamBroker
from vexora_async import (
    ClientClosedError,
    ConflictingRequestError,
    ConnectError,
    InvalidRequestError,
    LedgerError,
    PayoutOutcomeUnknown,
    PayoutRequest,
    PayoutResult,
    RedisLedger,
    RequestRejected,
    TradeNoCollision,
    VexoraClient,
)


if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    from taskiq import AsyncBroker, ScheduleSource, TaskiqState


logger = logging.getLogger("shop.payouts")

#: Errors after which nothing was sent: safe to run the job again. (Their
#: may_have_executed is False; so is a bad request's, which a rerun won't fix.)
NOTHING_SENT = (ConnectError, LedgerError, ClientClosedError)
#: Nothing sent either, but sending again as it is would not help: a wrong
#: request, another request under this tradeNo, or a tradeNo the gateway
#: holds for another payout. The row stays where it is; a human decides.
NEEDS_A_HUMAN = (InvalidRequestError, ConflictingRequestError, TradeNoCollision)
#: How long after an unknown outcome to ask the gateway again.
RESOLVE_AFTER = dt.timedelta(minutes=5)
#: Jobs at once per worker process, and the client's max_connections: run
#: the worker with ``--max-async-tasks`` this number (taskiq's default is
#: 100; the 80 jobs past the connections would only queue inside the SDK,
#: their deadline running). 20 is the default transport's default; past it
#: httpx's pool costs more CPU than it adds throughput (docs/performance.md).
#: For more, run more worker processes, or pass transport="aiohttp".
CONCURRENCY = 20
#: A row still ``new`` this long after it was committed lost its enqueue.
SWEEP_NEW_AFTER = dt.timedelta(minutes=1)
#: A row ``sending`` untouched this long lost its job: longer than the
#: stream broker's own redelivery (idle_timeout, 10 minutes) and the claim
#: lease (3 minutes by default), so the sweeper rarely races them.
SWEEP_SENDING_AFTER = dt.timedelta(minutes=15)

#: The forward-only rule: each state, and the states a payout may leave for
#: it. ``sending`` may be taken again (a job redelivered after its worker
#: died sends the same tradeNo, which the ledger recognises); ``unknown``
#: again by each resolve that still cannot tell. Nothing leaves ``paid``
#: or ``failed``.
MAY_LEAVE: dict[str, tuple[str, ...]] = {
    "sending": ("new", "sending"),
    "unknown": ("sending", "unknown"),
    "accepted": ("sending", "unknown"),
    "paid": ("sending", "unknown", "accepted"),
    "failed": ("sending", "unknown", "accepted"),
}


class Payouts(Protocol):
    """Your payouts table: one row per payout, its tradeNo stored with it."""

    async def insert(self, request: PayoutRequest) -> int:
        """Commit a new payout (state ``new``); return its id."""
        ...

    async def request(self, payout_id: int) -> PayoutRequest:
        """Return the payout's request, tradeNo included, as stored."""
        ...

    async def advance(self, payout_id: int, state: str) -> bool:
        """Move the payout to *state* if it may leave its state for it.

        Return whether it moved; never moves a payout back.
        """
        ...

    async def stuck(
        self, new_after: dt.timedelta, sending_after: dt.timedelta
    ) -> list[int]:
        """Return the ids of rows ``new`` or ``sending`` for longer than that."""
        ...


def state_of(result: PayoutResult) -> str:
    """Return the state a gateway's answer puts the payout in."""
    if result.status.is_success:
        return "paid"
    if result.status.is_failed:
        return "failed"
    return "accepted"  # processing: the callback (or a query) settles it


async def submit(payouts: Payouts, send_payout: Any, request: PayoutRequest) -> int:
    """Store a payout, then enqueue its job; return its id.

    The row is committed first, so a job never finds no row. If the
    enqueue fails (Redis is down), the row stays ``new`` and the sweeper
    enqueues it later: the payout is delayed, never lost.
    """
    payout_id = await payouts.insert(request)
    try:
        await send_payout.kiq(payout_id)
    except SendTaskError:  # taskiq's wrapper of whatever the broker raised
        logger.warning("payout %s not enqueued; the sweeper will", payout_id)
    return payout_id


async def pay(
    payouts: Payouts,
    client: VexoraClient,
    payout_id: int,
    resolve_later: Callable[[int], Awaitable[None]],
    *,
    resolve: bool = False,
) -> None:
    """Send (or resolve) one payout and record its outcome, forward only."""
    # The claim on the row, made here in the worker: a job delivered again
    # after the outcome was recorded (or a resolve after the callback
    # settled it) finds the row past this state and does nothing.
    if not await payouts.advance(payout_id, "unknown" if resolve else "sending"):
        return
    request = await payouts.request(payout_id)
    try:
        if resolve:
            result = await client.resolve_payout(request)
        else:
            result = await client.create_payout(request)  # the ledger's claim
    except RequestRejected as exc:
        if exc.confirmed:
            await payouts.advance(payout_id, "failed")  # final: not paid
        elif await payouts.advance(payout_id, "unknown"):
            # Unverified (verify_rejections=False): it may be the duplicate
            # refusal of a payout paid before. Resolve it like an unknown.
            await resolve_later(payout_id)
    except NEEDS_A_HUMAN:
        # Logged at ERROR for your alerting; the sweeper's next pass sends
        # it again and, until someone fixes it, logs it again.
        logger.exception("payout %s needs a human", request.trade_no)
    except PayoutOutcomeUnknown:
        # May be paid: never "failed", never a new tradeNo. Ask later,
        # unless a callback settled it meanwhile.
        if await payouts.advance(payout_id, "unknown"):
            await resolve_later(payout_id)
    else:
        await payouts.advance(payout_id, state_of(result))
    # NOTHING_SENT errors propagate: the retry middleware runs the job again.


def build(
    broker: AsyncBroker,
    schedule_source: ScheduleSource,
    payouts: Payouts,
    connect: Callable[[], contextlib.AbstractAsyncContextManager[VexoraClient]],
) -> tuple[Any, Any, Any]:
    """Register the worker's events and tasks on *broker*; return the tasks.

    *connect* opens the worker process's one client (and its ledger).
    Returns the tasks ``send_payout``, ``resolve_payout`` and
    ``sweep_payouts`` (the last is run every minute by the scheduler).
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

    async def resolve_later(payout_id: int) -> None:
        when = dt.datetime.now(dt.timezone.utc) + RESOLVE_AFTER
        await resolve_payout.kicker().schedule_by_time(schedule_source, when, payout_id)

    @broker.task(task_name="vexora.send_payout")
    async def send_payout(payout_id: int, context: Context = TaskiqDepends()) -> None:  # noqa: B008 - taskiq injects it
        await pay(payouts, context.state.client, payout_id, resolve_later)

    @broker.task(task_name="vexora.resolve_payout")
    async def resolve_payout(
        payout_id: int,
        context: Context = TaskiqDepends(),  # noqa: B008 - taskiq injects it
    ) -> None:
        await pay(payouts, context.state.client, payout_id, resolve_later, resolve=True)

    @broker.task(task_name="vexora.sweep_payouts", schedule=[{"cron": "* * * * *"}])
    async def sweep_payouts() -> int:
        # A duplicate job is harmless (the row's claim and the ledger see to
        # it), so enqueueing a row whose job is merely slow costs nothing.
        stuck = await payouts.stuck(SWEEP_NEW_AFTER, SWEEP_SENDING_AFTER)
        for payout_id in stuck:
            await send_payout.kiq(payout_id)
        if stuck:
            logger.warning("sweeper enqueued %d stuck payouts again", len(stuck))
        return len(stuck)

    return send_payout, resolve_payout, sweep_payouts


# -- your payouts table, in PostgreSQL ------------------------------------------------

SCHEMA = """
CREATE TABLE IF NOT EXISTS {table} (
    id          bigserial PRIMARY KEY,
    trade_no    text NOT NULL UNIQUE,
    amount      numeric NOT NULL,
    bank_code   text NOT NULL,
    bank_number text NOT NULL,
    name        text NOT NULL,
    notify_url  text NOT NULL,
    state       text NOT NULL DEFAULT 'new' CHECK (state IN
                ('new', 'sending', 'accepted', 'unknown', 'paid', 'failed')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS {index} ON {table} (updated_at)
    WHERE state IN ('new', 'sending');
"""


class PostgresPayouts:
    """The payouts table on a ``psycopg_pool.AsyncConnectionPool``."""

    def __init__(self, pool: AsyncConnectionPool[Any], table: str = "payouts") -> None:
        self.pool = pool
        self.table = sql.Identifier(table)
        self.index = sql.Identifier(f"{table}_pending_idx")

    async def create_table(self) -> None:
        """Create the table: from a migration, once per deployment."""
        async with self.pool.connection() as conn:
            await conn.execute(
                sql.SQL(SCHEMA).format(table=self.table, index=self.index)
            )

    async def insert(self, request: PayoutRequest) -> int:
        """Commit a new payout (state ``new``); return its id."""
        query = sql.SQL(
            "INSERT INTO {} (trade_no, amount, bank_code, bank_number, name,"
            " notify_url) VALUES (%s, %s, %s, %s, %s, %s) RETURNING id"
        ).format(self.table)
        async with self.pool.connection() as conn:
            cursor = await conn.execute(
                query,
                (
                    request.trade_no,
                    request.amount,
                    str(request.bank_code),
                    request.bank_number,
                    request.name,
                    request.notify_url,
                ),
            )
            (payout_id,) = await cursor.fetchall()
        return int(payout_id[0])

    async def request(self, payout_id: int) -> PayoutRequest:
        """Return the payout's stored request."""
        query = sql.SQL(
            "SELECT trade_no, amount, bank_code, bank_number, name, notify_url"
            " FROM {} WHERE id = %s"
        ).format(self.table)
        async with self.pool.connection() as conn:
            cursor = await conn.execute(query, (payout_id,))
            row = await cursor.fetchone()
        if row is None:
            raise LookupError(payout_id)
        trade_no, amount, bank_code, bank_number, name, notify_url = row
        return PayoutRequest(
            trade_no=trade_no,
            amount=amount,
            bank_code=bank_code,
            bank_number=bank_number,
            name=name,
            notify_url=notify_url,
        )

    async def advance(self, payout_id: int, state: str) -> bool:
        """Move the payout to *state*, forward only; return whether it moved."""
        # WHERE state IN (the states it may leave): a plain UPDATE let a
        # job delivered again move a paid payout back to accepted.
        query = sql.SQL(
            "UPDATE {} SET state = %s, updated_at = now()"
            " WHERE id = %s AND state = ANY(%s)"
        ).format(self.table)
        async with self.pool.connection() as conn:
            cursor = await conn.execute(
                query, (state, payout_id, list(MAY_LEAVE[state]))
            )
        moved: int = cursor.rowcount
        return moved == 1

    async def stuck(
        self, new_after: dt.timedelta, sending_after: dt.timedelta
    ) -> list[int]:
        """Return the ids of rows ``new`` or ``sending`` for longer than that."""
        query = sql.SQL(
            "SELECT id FROM {} WHERE (state = 'new' AND updated_at < now() - %s)"
            " OR (state = 'sending' AND updated_at < now() - %s)"
            " ORDER BY id LIMIT 1000"
        ).format(self.table)
        async with self.pool.connection() as conn:
            cursor = await conn.execute(query, (new_after, sending_after))
            return [row[0] for row in await cursor.fetchall()]


# -- production wiring ---------------------------------------------------------------

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
DATABASE_URL = os.environ.get("DATABASE_URL", "postgresql://127.0.0.1/shop")
#: Opened by the worker's startup (connect) or the web app's own lifespan;
#: a connection per job at once, so that no job waits for one.
pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
    DATABASE_URL, open=False, max_size=CONCURRENCY
)


@contextlib.asynccontextmanager
async def connect() -> AsyncIterator[VexoraClient]:
    """Open this worker process's database pool and client (Redis ledger)."""
    async with (
        pool,
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


#: Acknowledged, at-least-once delivery: a job whose worker died is
#: delivered again (to the same tradeNo, which the ledger recognises) once
#: it has gone unacknowledged for idle_timeout milliseconds (taskiq-redis's
#: default: 600,000, 10 minutes). 2 minutes is a little more than a job
#: (a payout's 60 s deadline, its database work) plus the wait of the jobs
#: fetched with it, which xread_count keeps to one batch of CONCURRENCY: a
#: live job delivered again is harmless, only wasted work.
broker = RedisStreamBroker(url=REDIS_URL, idle_timeout=120_000, xread_count=CONCURRENCY)
schedule_source = ListRedisScheduleSource(url=REDIS_URL)
scheduler = TaskiqScheduler(
    broker, sources=[schedule_source, LabelScheduleSource(broker)]
)
send_payout, resolve_payout, sweep_payouts = build(
    broker, schedule_source, PostgresPayouts(pool), connect
)


async def migrate() -> None:
    """Create the payouts table (run from your migrations, not at startup)."""
    async with pool:
        await PostgresPayouts(pool).create_table()


if __name__ == "__main__":
    import asyncio
    import sys

    if sys.argv[1:] == ["migrate"]:
        asyncio.run(migrate())
