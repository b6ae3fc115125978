"""The ledger at its edges: lost claims, stalled stores, named claims.

A claim whose answer was lost, a store that stalls past the call's
deadline, and what the ledger events call each kind of claim.

The real-Redis cases run on a redis-server of this module's own, on a free
loopback port, because they put it to sleep (``DEBUG SLEEP``) or pause its
clients (``CLIENT PAUSE``): the shared test server is never touched.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import redis.asyncio
from vexora_async import (
    LedgerError,
    MemoryLedger,
    RedisLedger,
    RetryPolicy,
    VexoraClient,
)
from vexora_async._idempotency import LEDGER_MARGIN, fingerprint
from vexora_async.events import Event, LedgerAction, LedgerEvent
from vexora_async.ledgers import EntryState, LedgerEntry, new_token

from tests.helpers import (
    BASE_URL,
    MERCHANT_NO,
    SECRET,
    make_payout,
    ok,
    payout_data,
)
from tests.servers import unique


if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator

    from vexora_async.ledgers import Claim

PAYOUT = "/myanmar/v1/vexora/disbursements"
QUERY = "/myanmar/v1/vexora/queryPayOutResult"
KEY = f"{MERCHANT_NO}:create_payout:VX20260331004567"
FAST = RetryPolicy(backoff_initial=0.001, backoff_max=0.002, deadline=5.0)
#: Scheduling slack on a loaded 2-core machine, on top of the margin.
SLACK = 0.4


class Gateway:
    """Counts payouts and status queries; *on_payout* runs before answering."""

    def __init__(self, on_payout: Callable[[], Any] | None = None) -> None:
        self.posts = 0
        self.queries = 0
        self.on_payout = on_payout

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        """Answer one request: accepted, and the query finds it."""
        answer = ok(payout_data(trade_no=json.loads(request.content)["tradeNo"]))
        if request.url.path == QUERY:
            self.queries += 1
            return answer
        assert request.url.path == PAYOUT
        self.posts += 1
        if self.on_payout is not None:
            await self.on_payout()
        return answer


def client_over(gateway: Gateway, **options: Any) -> VexoraClient:
    """Return a client whose requests go to *gateway*."""
    http = httpx.AsyncClient(transport=httpx.MockTransport(gateway))
    options.setdefault("retry", FAST)
    return VexoraClient(MERCHANT_NO, SECRET, BASE_URL, http_client=http, **options)


def print_of_payout() -> str:
    """The fingerprint the client records for make_payout()."""
    client = client_over(Gateway())
    return fingerprint(client._codec.encode(make_payout()))


async def eventually(check: Callable[[], Any], within: float = 5.0) -> bool:
    """Poll the coroutine function *check* until it is true, for *within* s."""
    until = time.monotonic() + within
    while time.monotonic() < until:
        if await check():
            return True
        await asyncio.sleep(0.02)
    return False


async def unknown_entry(ledger: MemoryLedger, print_: str) -> None:
    """Leave KEY unknown in *ledger*, as a lost answer does."""
    token = new_token()
    # The plain in-memory claim, whatever the test's subclass does.
    claim = await MemoryLedger.claim(ledger, KEY, print_, lease=180, token=token)
    assert claim.granted
    lost = LedgerEntry(state=EntryState.UNKNOWN, fingerprint=print_, updated_at=0)
    assert await ledger.settle(KEY, lost, token=token)


class LostAnswer(MemoryLedger):
    """Commits the first claim, then fails to answer (a timeout after the write)."""

    def __init__(self) -> None:
        super().__init__()
        self.lost = 0

    async def claim(
        self, key: str, fingerprint: str, *, lease: float, token: str
    ) -> Claim:
        """Claim; raise instead of answering the first time."""
        claim = await super().claim(key, fingerprint, lease=lease, token=token)
        if self.lost:
            return claim
        self.lost += 1
        msg = "Timeout reading from socket"
        raise ConnectionError(msg)


class SlowClaim(MemoryLedger):
    """Answers the claim after *delay* seconds, then commits it."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay
        self.committed = asyncio.Event()

    async def claim(
        self, key: str, fingerprint: str, *, lease: float, token: str
    ) -> Claim:
        """Wait, then claim."""
        await asyncio.sleep(self.delay)
        try:
            return await super().claim(key, fingerprint, lease=lease, token=token)
        finally:
            self.committed.set()


class SlowSettle(MemoryLedger):
    """Records outcomes *delay* seconds late (a locked table, a failover)."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    async def settle(self, key: str, entry: LedgerEntry, *, token: str) -> bool:
        """Wait, then settle."""
        await asyncio.sleep(self.delay)
        return await super().settle(key, entry, token=token)


# -- a claim whose answer was lost ----------------------------------------------


async def test_a_claim_committed_but_unanswered_does_not_block_the_trade_no() -> None:
    """LedgerError, nothing sent; the next call sends at once, once."""
    ledger = LostAnswer()
    gateway = Gateway()
    client = client_over(gateway, ledger=ledger)
    async with client.http_client, client:
        with pytest.raises(LedgerError, match="nothing was sent"):
            await client.create_payout(make_payout())
        assert gateway.posts == 0
        assert await eventually(lambda: _gone(ledger))
        result = await client.create_payout(make_payout())

    assert result.trade_no == "VX20260331004567"
    assert gateway.posts == 1


async def _gone(ledger: MemoryLedger) -> bool:
    return await ledger.get(KEY) is None


async def test_a_lost_claim_over_an_unknown_leaves_it_unknown() -> None:
    """Given back, a takeover of an unknown stays unknown: the next call asks."""
    ledger = LostAnswer()
    await unknown_entry(ledger, print_of_payout())
    gateway = Gateway()
    seen: list[Event] = []
    client = client_over(gateway, ledger=ledger, on_event=seen.append)
    async with client.http_client, client:
        with pytest.raises(LedgerError, match="nothing was sent"):
            await client.create_payout(make_payout())

        async def unknown_again() -> bool:
            entry = await ledger.get(KEY)
            return entry is not None and entry.state is EntryState.UNKNOWN

        assert await eventually(unknown_again)
        result = await client.create_payout(make_payout())

    assert result.trade_no == "VX20260331004567"
    assert (gateway.queries, gateway.posts) == (1, 0)  # found, not resent
    actions = [e.action for e in seen if isinstance(e, LedgerEvent)]
    assert actions == [LedgerAction.RESUMED]


async def test_giving_back_retries_while_the_store_fails() -> None:
    """The release is tried again until the store answers."""
    failures = [ConnectionError("down"), ConnectionError("still down")]

    class Flaky(LostAnswer):
        async def release(self, key: str, *, token: str) -> bool:
            if failures:
                raise failures.pop(0)
            return await super().release(key, token=token)

    ledger = Flaky()
    client = client_over(Gateway(), ledger=ledger)
    async with client.http_client, client:
        with pytest.raises(LedgerError):
            await client.create_payout(make_payout())
        assert await eventually(lambda: _gone(ledger))

    assert failures == []


async def test_a_settle_that_failed_is_tried_again_until_it_lands() -> None:
    """A paid payout's record is not left in flight by a store that failed once.

    Left in flight, the tradeNo would answer "another worker is sending" to
    every call for the whole lease (a Redis asleep past the socket timeout,
    a PostgreSQL connection killed as the settle went out).
    """
    failures = [ConnectionError("Timeout reading from socket")]

    class FlakySettle(MemoryLedger):
        async def settle(self, key: str, entry: LedgerEntry, *, token: str) -> bool:
            if failures:
                raise failures.pop(0)
            return await super().settle(key, entry, token=token)

    ledger = FlakySettle()
    gateway = Gateway()
    client = client_over(gateway, ledger=ledger)
    async with client.http_client, client:
        result = await client.create_payout(make_payout())

        async def accepted() -> bool:
            entry = await ledger.get(KEY)
            return entry is not None and entry.state is EntryState.ACCEPTED

        assert await eventually(accepted)
        again = await client.create_payout(make_payout())  # from the ledger

    assert failures == []
    assert result.trade_no == again.trade_no == "VX20260331004567"
    assert gateway.posts == 1


async def test_closing_the_client_stops_giving_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A store that never answers: aclose does not wait for the lease."""

    class Dead(LostAnswer):
        async def release(self, key: str, *, token: str) -> bool:  # noqa: ARG002
            msg = "connection refused"
            raise ConnectionError(msg)

    client = client_over(Gateway(), ledger=Dead())
    async with client.http_client:
        with pytest.raises(LedgerError):
            await client.create_payout(make_payout())
        await asyncio.sleep(0.3)  # a few tries
        started = time.monotonic()
        with caplog.at_level(logging.ERROR, "vexora_async"):
            await client.aclose()

    assert time.monotonic() - started < 1.0
    assert "failed to give back a claim" in caplog.text


# -- ledger work keeps to the deadline --------------------------------------------


async def test_a_claim_past_the_deadline_is_a_ledger_error_and_given_back() -> None:
    """The store answers late: the caller does not wait; the claim is undone."""
    ledger = SlowClaim(delay=1.0)
    gateway = Gateway()
    client = client_over(gateway, ledger=ledger)
    async with client.http_client, client:
        started = time.monotonic()
        with pytest.raises(LedgerError, match=r"deadline.*nothing was sent"):
            await client.create_payout(make_payout(), deadline=0.3)
        elapsed = time.monotonic() - started
        await ledger.committed.wait()
        assert await eventually(lambda: _gone(ledger))

    assert elapsed < 0.3 + SLACK
    assert gateway.posts == 0


async def test_a_late_claim_over_an_unknown_is_given_back_unknown() -> None:
    """A claim that took an unknown over after its caller left stays unknown."""
    ledger = SlowClaim(delay=0.5)
    await unknown_entry(ledger, print_of_payout())
    client = client_over(Gateway(), ledger=ledger)
    async with client.http_client, client:
        with pytest.raises(LedgerError):
            await client.create_payout(make_payout(), deadline=0.1)
        await ledger.committed.wait()

        async def settled_unknown() -> bool:
            entry = await ledger.get(KEY)
            assert entry is not None
            return entry.state is EntryState.UNKNOWN

        assert await eventually(settled_unknown)


async def test_a_slow_settle_holds_the_answer_no_longer_than_the_margin() -> None:
    """The payout's answer comes by the deadline plus the margin; the record after."""
    ledger = SlowSettle(delay=1.5)
    gateway = Gateway()
    client = client_over(gateway, ledger=ledger)
    async with client.http_client:
        async with client:
            started = time.monotonic()
            result = await client.create_payout(make_payout(), deadline=0.5)
            elapsed = time.monotonic() - started
            in_flight = await ledger.get(KEY)
        # Closing waits for the record still under way.
        after = await ledger.get(KEY)

    assert result.trade_no == "VX20260331004567"
    assert result.status.is_processing
    assert elapsed < 0.5 + LEDGER_MARGIN + SLACK
    assert in_flight is not None
    assert in_flight.state is EntryState.IN_FLIGHT
    assert after is not None
    assert after.state is EntryState.ACCEPTED


# -- what the ledger events call a claim -----------------------------------------


async def test_resuming_an_unknown_is_not_a_takeover() -> None:
    """resolve_payout over an unknown: RESUMED, which the page alert ignores."""
    ledger = MemoryLedger()
    await unknown_entry(ledger, print_of_payout())
    seen: list[Event] = []
    client = client_over(Gateway(), ledger=ledger, on_event=seen.append)
    async with client.http_client, client:
        await client.resolve_payout(make_payout())

    actions = [e.action for e in seen if isinstance(e, LedgerEvent)]
    assert actions == [LedgerAction.RESUMED]


async def test_a_stale_claim_of_a_stalled_worker_is_taken_over() -> None:
    """An in-flight claim past its lease: TAKEN_OVER, worth a page."""
    now = [1000.0]
    ledger = MemoryLedger(clock=lambda: now[0])
    await ledger.claim(KEY, print_of_payout(), lease=180, token=new_token())
    seen: list[Event] = []
    client = client_over(Gateway(), ledger=ledger, on_event=seen.append)
    now[0] += client.claim_lease + 1
    async with client.http_client, client:
        await client.create_payout(make_payout())

    actions = [e.action for e in seen if isinstance(e, LedgerEvent)]
    assert actions == [LedgerAction.TAKEN_OVER]


def _paged_actions() -> re.Pattern[str]:
    """The action regex of the page alert (docs/observability/alerts.yml)."""
    rules = Path(__file__).parent.parent / "docs" / "observability" / "alerts.yml"
    doc = rules.read_text(encoding="utf-8")
    found = re.search(
        r'vexora_ledger_actions_total\{action=~"([^"]+)"\}', doc, flags=re.MULTILINE
    )
    assert found is not None
    return re.compile(found.group(1))


async def test_the_page_alert_stays_quiet_for_routine_reconciliation() -> None:
    """resolve_payout over unknowns all day: the documented page never fires."""
    from prometheus_client import CollectorRegistry
    from vexora_async.prometheus import PrometheusHook

    registry = CollectorRegistry()
    ledger = MemoryLedger()
    print_ = print_of_payout()
    await unknown_entry(ledger, print_)
    client = client_over(Gateway(), ledger=ledger, on_event=PrometheusHook(registry))
    async with client.http_client, client:
        await client.resolve_payout(make_payout())
        # A stalled worker's claim, past its lease: that one pages.
        now = [1000.0]
        stalled = MemoryLedger(clock=lambda: now[0])
        await stalled.claim(KEY, print_, lease=180, token=new_token())
        now[0] += client.claim_lease + 1
        other = client_over(
            Gateway(), ledger=stalled, on_event=PrometheusHook(registry)
        )
        async with other.http_client, other:
            await other.create_payout(make_payout())

    paged = _paged_actions()
    counts = {
        action.value: registry.get_sample_value(
            "vexora_ledger_actions_total", {"action": action.value}
        )
        for action in LedgerAction
    }
    firing = {a: n for a, n in counts.items() if n and paged.fullmatch(a)}
    assert counts["resumed"] == 1
    assert firing == {"taken_over": 1}
    doc = (Path(__file__).parent.parent / "docs" / "observability.md").read_text()
    assert all(f"`{action.value}`" in doc for action in LedgerAction)


# -- on a real Redis of our own ---------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[str]:
    """A redis-server of this test's own (it gets paused and put to sleep)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("needs redis-server on PATH (Debian: redis-server)")
    port = _free_port()
    server = subprocess.Popen(  # noqa: S603 - our own arguments
        [
            binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
            "--enable-debug-command",
            "local",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    pytest.fail("our own redis-server did not start")
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture
async def admin(own_redis: str) -> AsyncIterator[redis.asyncio.Redis]:
    """A separate connection to put the server to sleep or pause it."""
    client = redis.asyncio.Redis.from_url(own_redis)
    yield client
    await client.aclose()


async def test_redis_asleep_past_the_socket_timeout_blocks_nothing(
    own_redis: str, admin: redis.asyncio.Redis
) -> None:
    """The issue's case: the claim commits after redis-py gave up on it.

    The caller gets LedgerError (nothing was sent); the claim, written once
    the server wakes, is given back with the token chosen before it was
    sent, so the next call sends the payout instead of "another worker is
    sending" for the whole lease.
    """
    gateway = Gateway()
    ledger = RedisLedger.from_url(own_redis, prefix=unique("lost:"), socket_timeout=0.5)
    client = client_over(gateway, ledger=ledger)
    async with ledger, client.http_client, client:
        await client.create_payout(make_payout(trade_no="WARM-UP"))  # scripts loaded
        sleeper = asyncio.create_task(
            admin.execute_command("DEBUG", "SLEEP", "1.5")  # type: ignore[no-untyped-call]
        )
        await asyncio.sleep(0.1)
        with pytest.raises(LedgerError, match="nothing was sent"):
            await client.create_payout(make_payout())
        await sleeper
        await eventually(lambda: _none(ledger))

        result = await client.create_payout(make_payout())

    assert result.trade_no == "VX20260331004567"
    assert gateway.posts == 2  # the warm-up, and this payout once


async def _none(ledger: RedisLedger) -> bool:
    return await ledger.get(KEY) is None


async def test_redis_paused_before_the_claim_keeps_the_deadline(
    own_redis: str, admin: redis.asyncio.Redis
) -> None:
    """CLIENT PAUSE (a failover): LedgerError by the deadline, claim given back."""
    gateway = Gateway()
    ledger = RedisLedger.from_url(own_redis, prefix=unique("paused:"))
    client = client_over(gateway, ledger=ledger)
    async with ledger, client.http_client:
        async with client:
            await client.create_payout(make_payout(trade_no="WARM-UP"))
            await admin.execute_command(  # type: ignore[no-untyped-call]
                "CLIENT", "PAUSE", "2500"
            )
            started = time.monotonic()
            with pytest.raises(LedgerError, match=r"deadline.*nothing was sent"):
                await client.create_payout(make_payout(), deadline=1)
            elapsed = time.monotonic() - started
        # Closed: the claim, written once the pause ended, was given back.
        left = await ledger.get(KEY)

    assert elapsed < 1 + SLACK
    assert left is None
    assert gateway.posts == 1  # the warm-up only


async def test_redis_paused_after_the_send_delays_the_answer_by_the_margin_only(
    own_redis: str, admin: redis.asyncio.Redis
) -> None:
    """The settle waits out the pause in the background, not in the call."""

    async def pause() -> None:
        await admin.execute_command(  # type: ignore[no-untyped-call]
            "CLIENT", "PAUSE", "3000"
        )

    gateway = Gateway()
    ledger = RedisLedger.from_url(own_redis, prefix=unique("paused:"))
    client = client_over(gateway, ledger=ledger)
    async with ledger, client.http_client:
        async with client:
            await client.create_payout(make_payout(trade_no="WARM-UP"))
            gateway.on_payout = pause
            started = time.monotonic()
            result = await client.create_payout(make_payout(), deadline=2)
            elapsed = time.monotonic() - started
        recorded = await ledger.get(KEY)  # closing waited for the settle

    assert result.trade_no == "VX20260331004567"
    assert elapsed < 2 + LEDGER_MARGIN + SLACK
    assert recorded is not None
    assert recorded.state is EntryState.ACCEPTED
    assert gateway.posts == 2
