"""Fencing tokens and the claim lease, seen from the client.

A worker that stalls past its lease cannot overwrite the record of the
worker that took its tradeNo over; the store failing is never a second
payment; the lease is a validated client option.
"""

from __future__ import annotations

import asyncio
import logging
import math
import socket
from typing import Any

import httpx
import pytest
from vexora_async import (
    InvalidRequestError,
    LedgerError,
    MemoryLedger,
    PostgresLedger,
    RedisLedger,
    RetryPolicy,
    VexoraClient,
)
from vexora_async.ledgers import EntryState, new_token

from tests.helpers import (
    BASE_URL,
    MERCHANT_NO,
    SECRET,
    make_payout,
    ok,
)
from tests.servers import drop_table, postgres_pool, unique


PAYOUT = "/myanmar/v1/vexora/disbursements"
QUERY = "/myanmar/v1/vexora/queryPayOutResult"
KEY = f"{MERCHANT_NO}:create_payout:VX20260331004567"
FAST = RetryPolicy(backoff_initial=0.001, backoff_max=0.002, deadline=5.0)


def client_over(handler: Any, **options: Any) -> VexoraClient:
    """Return a client whose requests go to *handler*."""
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    options.setdefault("retry", FAST)
    return VexoraClient(MERCHANT_NO, SECRET, BASE_URL, http_client=http, **options)


class Gateway:
    """Counts payouts and queries; a payout may be held until released."""

    def __init__(self) -> None:
        self.posts = 0
        self.queries = 0
        self.hold = False
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        """Answer one request."""
        if request.url.path == QUERY:
            self.queries += 1
            return ok()
        assert request.url.path == PAYOUT
        self.posts += 1
        self.started.set()
        if self.hold:
            await self.release.wait()
        return ok()


async def test_a_stalled_worker_is_fenced_off_and_still_gets_its_result(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Worker A stalls past its lease; B takes over; A's late record is refused."""
    now = [1000.0]
    ledger = MemoryLedger(clock=lambda: now[0])
    gateway = Gateway()
    gateway.hold = True
    a = client_over(gateway, ledger=ledger)
    b = client_over(gateway, ledger=ledger)
    async with a.http_client, a, b.http_client, b:
        stalled = asyncio.create_task(a.create_payout(make_payout()))
        await gateway.started.wait()
        now[0] += a.claim_lease + 1  # A's lease ran out while it stalled

        taken_over = await b.create_payout(make_payout())  # reconciles
        gateway.release.set()
        late = await stalled

    assert late.status.is_processing  # A's caller still learns the outcome
    assert taken_over.trade_no == late.trade_no
    assert (gateway.posts, gateway.queries) == (1, 1)  # B asked, never re-sent
    assert "fenced off a stale claim" in caplog.text
    entry = await ledger.get(KEY)
    assert entry is not None
    assert entry.state is EntryState.ACCEPTED


@pytest.mark.slow
async def test_a_fenced_release_is_logged_and_changes_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A stalled worker whose attempt provably failed cannot drop B's claim."""
    now = [1000.0]
    ledger = MemoryLedger(clock=lambda: now[0])
    refused = asyncio.Event()
    resume = asyncio.Event()

    async def refuse(request: httpx.Request) -> httpx.Response:
        refused.set()
        await resume.wait()
        return httpx.Response(400)  # not executed: the claim is released

    client = client_over(refuse, ledger=ledger, retry=RetryPolicy(max_retries=0))
    async with client.http_client, client:
        task = asyncio.create_task(client.create_payout(make_payout()))
        await refused.wait()
        now[0] += client.claim_lease + 1
        # Another payload: refused.
        other = await ledger.claim(KEY, "fingerprint", lease=1, token=new_token())
        assert not other.granted
        from vexora_async._idempotency import fingerprint

        print_ = fingerprint(client._codec.encode(make_payout()))
        owner = await ledger.claim(
            KEY, print_, lease=client.claim_lease, token=new_token()
        )
        assert owner.granted
        resume.set()
        with caplog.at_level(logging.WARNING), pytest.raises(Exception, match="400"):
            await task

    assert "fenced off a stale claim" in caplog.text
    entry = await ledger.get(KEY)
    assert entry is not None
    assert entry.state is EntryState.IN_FLIGHT  # the new owner's claim stands


def test_claim_lease_defaults_to_twice_the_deadline_plus_a_minute() -> None:
    """The lease a client claims with: its option, else the old default."""
    assert VexoraClient(MERCHANT_NO, SECRET, BASE_URL, deadline=30).claim_lease == 120
    custom = VexoraClient(MERCHANT_NO, SECRET, BASE_URL, deadline=30, claim_lease=75)
    assert custom.claim_lease == 75.0
    assert custom._idempotency._lease == 75.0


@pytest.mark.parametrize(
    "lease", [math.nan, math.inf, -1, 0, 39.9, "120", True, None.__class__]
)
def test_claim_lease_is_validated(lease: Any) -> None:
    """Not a number, not finite, or under deadline + 10 s: refused."""
    with pytest.raises(InvalidRequestError, match="claim_lease"):
        VexoraClient(MERCHANT_NO, SECRET, BASE_URL, deadline=30, claim_lease=lease)


async def test_a_call_deadline_must_stay_under_the_lease() -> None:
    """A create whose deadline could outlast its claim is refused, unsent."""
    gateway = Gateway()
    client = client_over(gateway, claim_lease=40, retry=RetryPolicy(deadline=30))
    async with client.http_client, client:
        with pytest.raises(InvalidRequestError, match="claim lease"):
            await client.create_payout(make_payout(), deadline=31)
        await client.get_payout("VX20260331004567", deadline=300)  # not a create
        await client.create_payout(make_payout(), deadline=30)

    assert gateway.posts == 1


async def test_a_claim_uses_the_configured_lease() -> None:
    """The ledger is asked with the client's claim_lease."""
    leases: list[float] = []

    class Spy(MemoryLedger):
        async def claim(
            self, key: str, fingerprint: str, *, lease: float, token: str
        ) -> Any:
            leases.append(lease)
            return await super().claim(key, fingerprint, lease=lease, token=token)

    client = client_over(Gateway(), ledger=Spy(), claim_lease=500)
    async with client.http_client, client:
        await client.create_payout(make_payout())

    assert leases == [500.0]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_redis_down_on_claim_sends_nothing() -> None:
    """No Redis, no claim: LedgerError, and no request goes out."""
    gateway = Gateway()
    ledger = RedisLedger.from_url(
        f"redis://127.0.0.1:{_closed_port()}/0", socket_connect_timeout=1
    )
    client = client_over(gateway, ledger=ledger)
    async with ledger, client.http_client, client:
        with pytest.raises(LedgerError, match="nothing was sent"):
            await client.create_payout(make_payout())

    assert gateway.posts == 0


@pytest.mark.slow
async def test_redis_down_on_settle_still_returns_the_outcome(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Redis gone after the claim: the payout's result still reaches the caller."""
    import fakeredis

    server = fakeredis.FakeServer()
    ledger = RedisLedger(fakeredis.FakeAsyncRedis(server=server))

    async def answer_then_fail(request: httpx.Request) -> httpx.Response:
        server.connected = False  # the store goes down mid-call
        return ok()

    client = client_over(answer_then_fail, ledger=ledger)
    async with client.http_client, client:
        result = await client.create_payout(make_payout())

    assert result.status.is_processing
    assert "the ledger failed to record" in caplog.text
    server.connected = True
    entry = await ledger.get(KEY)
    assert entry is not None
    assert entry.state is EntryState.IN_FLIGHT  # reconciled after the lease


async def _cancel_mid_flight(ledger: Any) -> EntryState:
    gateway = Gateway()
    gateway.hold = True
    client = client_over(gateway, ledger=ledger)
    async with client.http_client, client:
        task = asyncio.create_task(client.create_payout(make_payout()))
        await gateway.started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    entry = await ledger.get(KEY)
    assert entry is not None
    state: EntryState = entry.state
    return state


async def test_cancellation_leaves_no_redis_claim_in_flight() -> None:
    """A cancelled call's tradeNo is UNKNOWN in Redis, never stuck IN_FLIGHT."""
    import fakeredis

    ledger = RedisLedger(fakeredis.FakeAsyncRedis(), prefix=unique("c:"))
    assert await _cancel_mid_flight(ledger) is EntryState.UNKNOWN


async def test_cancellation_leaves_no_postgres_claim_in_flight() -> None:
    """The same on a real PostgreSQL server."""
    pool = await postgres_pool()
    table = unique("ledger_")
    try:
        ledger = PostgresLedger(pool, table=table)
        await ledger.create_table()
        assert await _cancel_mid_flight(ledger) is EntryState.UNKNOWN
    finally:
        await drop_table(pool, table)
        await pool.close()


async def test_cancelled_while_claiming_gives_the_claim_back() -> None:
    """Cancelled while the store answers: the claim is released, not left."""
    entered = asyncio.Event()
    proceed = asyncio.Event()

    class Slow(MemoryLedger):
        async def claim(
            self, key: str, fingerprint: str, *, lease: float, token: str
        ) -> Any:
            entered.set()
            await proceed.wait()
            return await super().claim(key, fingerprint, lease=lease, token=token)

    gateway = Gateway()
    ledger = Slow()
    client = client_over(gateway, ledger=ledger)
    async with client.http_client, client:
        task = asyncio.create_task(client.create_payout(make_payout()))
        await entered.wait()
        task.cancel()
        await asyncio.sleep(0)
        proceed.set()
        with pytest.raises(asyncio.CancelledError):
            await task

    assert await ledger.get(KEY) is None  # nothing sent, nothing held
    assert gateway.posts == 0
