"""The cancellation campaign: thousands of calls, a third cancelled at random.

A real sandbox gateway on a loopback socket, both transports, both built-in
ledgers. Afterwards nothing may be left behind: every connection slot and
limiter permit back, no ledger entry in flight, no tradeNo executed twice,
and a plain sequential call goes through at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from typing import TYPE_CHECKING

import pytest
from vexora_async import (
    MemoryLedger,
    PayoutOutcomeUnknown,
    RetryPolicy,
    SQLiteLedger,
    VexoraClient,
    VexoraError,
)
from vexora_async.ledgers import EntryState
from vexora_async.testing import (
    SANDBOX_APP_SECRET,
    SANDBOX_MERCHANT_NO,
    FakeGateway,
    Fault,
    SandboxApp,
    SandboxConfig,
    serve_app,
)

from tests.helpers import make_payout


if TYPE_CHECKING:
    from pathlib import Path

    from vexora_async import Ledger
    from vexora_async.testing._app import ASGIApp, Receive, Scope, Send

# Judged by the clock (a plain call afterwards goes through at once): run
# alone, not beside other tests on the same cores (noxfile: campaigns).
pytestmark = pytest.mark.campaign

CALLS = 1200
MAX_CONNECTIONS = 20
POLICY = RetryPolicy(backoff_initial=0.001, backoff_max=0.01, deadline=10)


def entries(ledger: Ledger) -> list[EntryState]:
    """Return the states of every entry the ledger holds."""
    if isinstance(ledger, MemoryLedger):
        return [entry.state for entry in ledger.entries()]
    assert isinstance(ledger, SQLiteLedger)
    rows = ledger._db.execute("SELECT state FROM vexora_ledger").fetchall()
    return [EntryState(state) for (state,) in rows]


class Gathering:
    """ASGI middleware: once armed, hold each request until *parties* are in.

    Every connection the client has is then in use at once: were one
    leaked (held by a cancelled call, or counted as busy by the pool), the
    last request could never arrive and the gathering would not happen.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.parties = 0
        self.arrived = 0
        self.met = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve *scope*, after the gathering once armed."""
        if self.parties and scope["type"] == "http":
            self.arrived += 1
            if self.arrived >= self.parties:
                self.met.set()
            # Never forever: the test fails on the flag, not on a hang.
            with contextlib.suppress(asyncio.TimeoutError):  # 3.10: not TimeoutError
                await asyncio.wait_for(self.met.wait(), 10)
        await self.app(scope, receive, send)


@pytest.fixture(params=["memory", "sqlite"])
async def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Ledger:
    """Each ledger the SDK ships."""
    if request.param == "memory":
        return MemoryLedger()
    return SQLiteLedger(tmp_path / "ledger.sqlite3")


@pytest.mark.parametrize("transport", ["httpx", "aiohttp"])
async def test_cancelled_calls_leave_nothing_behind(
    transport: str, ledger: Ledger
) -> None:
    """1,500 payouts, a third cancelled mid-flight: nothing leaked, none twice."""
    gateway = FakeGateway(SandboxConfig(settle_delay=None, callbacks=False))
    # Spread the answers out so that cancellations land in every phase.
    gateway.faults.at_rate(0.3, [Fault.delay(0.002), Fault.delay(0.02)], seed=7)
    rng = random.Random(11)
    gathering = Gathering(SandboxApp(gateway))
    async with (
        serve_app(gathering) as url,
        VexoraClient(
            SANDBOX_MERCHANT_NO,
            SANDBOX_APP_SECRET,
            url,
            retry=POLICY,
            ledger=ledger,
            max_connections=MAX_CONNECTIONS,
            transport=transport,  # type: ignore[arg-type]
        ) as client,
    ):
        requests = [make_payout(trade_no=f"CX-{i:05d}") for i in range(CALLS)]
        tasks = [asyncio.create_task(client.create_payout(r)) for r in requests]
        doomed = rng.sample(tasks, CALLS // 3)
        for task in doomed:
            asyncio.get_running_loop().call_later(rng.uniform(0, 0.5), task.cancel)
        results = await asyncio.gather(*tasks, return_exceptions=True)

        cancelled = sum(isinstance(r, asyncio.CancelledError) for r in results)
        foreign = [
            r
            for r in results
            if isinstance(r, BaseException)
            and not isinstance(r, (asyncio.CancelledError, VexoraError))
        ]
        assert cancelled > CALLS // 10  # the campaign really cancelled calls
        assert foreign == []
        # Nothing left behind: every permit back, and every connection
        # usable at once (the gateway holds each request until all are in).
        assert client._limiter._value == MAX_CONNECTIONS
        gathering.parties = MAX_CONNECTIONS
        balances = await asyncio.gather(
            *(client.get_balance(deadline=20) for _ in range(MAX_CONNECTIONS))
        )
        assert gathering.met.is_set()
        assert len(balances) == MAX_CONNECTIONS
        gathering.parties = 0
        # Ledger writes of cancelled calls finish on their own, at once.
        for _ in range(100):
            if EntryState.IN_FLIGHT not in entries(ledger):
                break
            await asyncio.sleep(0.01)
        assert EntryState.IN_FLIGHT not in entries(ledger)
        assert gateway.stats.double_executions == []

        # A later sequential call succeeds at once.
        started = time.perf_counter()
        result = await client.create_payout(
            make_payout(trade_no="CX-AFTER"), deadline=3
        )
        assert result.trade_no == "CX-AFTER"
        assert time.perf_counter() - started < 1.0

        # And every cancelled payout settles by resolve_payout, exactly once.
        for request, outcome in zip(requests, results, strict=True):
            if isinstance(outcome, BaseException):
                try:
                    await client.resolve_payout(request)
                except PayoutOutcomeUnknown:  # pragma: no cover - shown below
                    pytest.fail(f"{request.trade_no} still unknown")
        assert gateway.stats.double_executions == []
        assert set(gateway.stats.executions) == {r.trade_no for r in requests} | {
            "CX-AFTER"
        }
    if isinstance(ledger, SQLiteLedger):
        await ledger.aclose()
