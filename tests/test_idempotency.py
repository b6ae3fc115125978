"""Tests for tradeNo idempotency: one logical payout, one execution.

The concurrency and property tests run the client against a model gateway
(``gateway_model.py``) that injects faults and counts executions per tradeNo.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from vexora_async import (
    ConflictingRequestError,
    ConnectError,
    HTTPStatusError,
    InvalidRequestError,
    LedgerError,
    MemoryLedger,
    PayoutOutcomeUnknown,
    PayoutRequest,
    PayoutResult,
    RequestRejected,
    RetryPolicy,
    VexoraClient,
)
from vexora_async._idempotency import fingerprint
from vexora_async.ledgers import EntryState, new_token

from tests.gateway_model import Fault, ModelGateway
from tests.helpers import (
    BASE_URL,
    MERCHANT_NO,
    SECRET,
    envelope,
    make_deposit,
    make_payout,
    payout_data,
)


if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    import respx


PAYOUT = "/v1/vexora/disbursements"
QUERY = "/v1/vexora/queryPayOutResult"
FAST = RetryPolicy(backoff_initial=0.001, backoff_max=0.002, deadline=5.0)
KEY = f"{MERCHANT_NO}:create_payout:VX20260331004567"


def make_client(handler: Any, **options: Any) -> VexoraClient:
    """Return a client over a MockTransport calling *handler*."""
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    options.setdefault("retry", FAST)
    return VexoraClient(MERCHANT_NO, SECRET, BASE_URL, http_client=http, **options)


@pytest.fixture
async def fast(router: respx.MockRouter) -> AsyncIterator[VexoraClient]:
    """A client with near-zero backoff, talking to *router*."""
    client = make_client(router.async_handler)
    async with client.http_client, client:
        yield client


def ok() -> httpx.Response:
    """Return an accepted payout answer."""
    return httpx.Response(200, json=envelope(payout_data()))


async def test_ledger_key_and_fingerprint_find_what_a_payout_recorded(
    fast: VexoraClient, router: respx.MockRouter
) -> None:
    """client.ledger_key and ledger_fingerprint name the entry create_payout left."""
    router.post(PAYOUT).mock(return_value=ok())
    request = make_payout()
    await fast.create_payout(request)

    entry = await fast.ledger.get(fast.ledger_key(request))

    assert fast.ledger_key(request) == KEY
    assert entry is not None
    assert entry.state is EntryState.ACCEPTED
    assert entry.fingerprint == fast.ledger_fingerprint(request)
    # Another payout under the same tradeNo: same key, another fingerprint.
    other = make_payout(amount=200)
    assert fast.ledger_key(other) == KEY
    assert fast.ledger_fingerprint(other) != entry.fingerprint
    # Fields that are not the payment do not change it.
    assert fast.ledger_fingerprint(make_payout(remark="again")) == entry.fingerprint


async def test_ledger_key_keeps_merchants_and_calls_apart() -> None:
    """Another merchant, or a pay-in under the same tradeNo, is another key."""
    request = make_payout()
    deposit = make_deposit(trade_no=request.trade_no)
    async with (
        VexoraClient(MERCHANT_NO, SECRET, BASE_URL) as one,
        VexoraClient("1000000002", SECRET, BASE_URL) as other,
    ):
        keys = {
            one.ledger_key(request),
            other.ledger_key(request),
            one.ledger_key(deposit),
        }
        assert len(keys) == 3
        assert one.ledger_fingerprint(deposit) != one.ledger_fingerprint(request)
        for method in (one.ledger_key, one.ledger_fingerprint):
            with pytest.raises(InvalidRequestError, match="takes a PayoutRequest"):
                method(request.trade_no)  # type: ignore[arg-type]


async def test_concurrent_identical_calls_share_one_execution(
    fast: VexoraClient, router: respx.MockRouter
) -> None:
    """Fifty concurrent calls with one tradeNo and payload send one request."""
    release = asyncio.Event()

    async def slow(request: httpx.Request) -> httpx.Response:
        await release.wait()
        return ok()

    route = router.post(PAYOUT).mock(side_effect=slow)
    tasks = [asyncio.create_task(fast.create_payout(make_payout())) for _ in range(50)]
    await asyncio.sleep(0.01)
    release.set()
    results = await asyncio.gather(*tasks)

    assert route.call_count == 1
    assert len(set(results)) == 1


async def test_conflicting_payload_is_refused_with_nothing_sent(
    fast: VexoraClient, router: respx.MockRouter
) -> None:
    """Same tradeNo, different amount: refused before any request."""
    route = router.post(PAYOUT).mock(return_value=ok())
    await fast.create_payout(make_payout())

    for change in (
        {"amount": 200},
        {"bank_number": "3560999999999999"},
        {"name": "Ma Aye"},
        {"bank_code": "WAVEPAY"},
    ):
        with pytest.raises(ConflictingRequestError, match="nothing was sent"):
            await fast.create_payout(make_payout(**change))

    assert route.call_count == 1


async def test_conflicting_payload_while_in_flight_is_refused(
    fast: VexoraClient, router: respx.MockRouter
) -> None:
    """A conflicting call during the first one's flight is refused at once."""
    release = asyncio.Event()

    async def slow(request: httpx.Request) -> httpx.Response:
        await release.wait()
        return ok()

    route = router.post(PAYOUT).mock(side_effect=slow)
    first = asyncio.create_task(fast.create_payout(make_payout()))
    await asyncio.sleep(0.01)

    with pytest.raises(ConflictingRequestError):
        await fast.create_payout(make_payout(amount=999))

    release.set()
    await first
    assert route.call_count == 1


async def test_remark_and_notify_url_are_not_part_of_the_payload(
    fast: VexoraClient, router: respx.MockRouter
) -> None:
    """A retry may change the remark or notify URL; the money is the same."""
    route = router.post(PAYOUT).mock(return_value=ok())
    await fast.create_payout(make_payout(remark="first"))

    await fast.create_payout(
        make_payout(remark="second", notify_url="http://127.0.0.1:9999/other")
    )

    assert route.call_count == 1


async def test_settled_trade_no_is_answered_from_the_ledger(
    fast: VexoraClient, router: respx.MockRouter
) -> None:
    """A repeat of an accepted payout costs no request and returns the record."""
    route = router.post(PAYOUT).mock(return_value=ok())
    first = await fast.create_payout(make_payout())

    again = await fast.create_payout(make_payout())

    assert again == first
    assert route.call_count == 1
    entry = await fast.ledger.get(KEY)
    assert entry is not None
    assert entry.state is EntryState.ACCEPTED


async def test_rejected_trade_no_is_answered_from_the_ledger(
    fast: VexoraClient, router: respx.MockRouter
) -> None:
    """A confirmed rejection is remembered: the repeat is refused locally."""
    post = router.post(PAYOUT).mock(
        return_value=httpx.Response(
            200, json=envelope(None, code="8000", msg="invalid bankNumber")
        )
    )
    router.post(QUERY).mock(
        return_value=httpx.Response(200, json=envelope(None, code="8000"))
    )
    with pytest.raises(RequestRejected):
        await fast.create_payout(make_payout())

    with pytest.raises(RequestRejected, match="invalid bankNumber"):
        await fast.create_payout(make_payout())

    assert post.call_count == 1


async def test_cancellation_mid_flight_leaves_the_entry_unknown(
    fast: VexoraClient, router: respx.MockRouter
) -> None:
    """A cancelled call is never stuck in flight; the next one reconciles."""
    started = asyncio.Event()
    posts: list[httpx.Request] = []

    async def hang(request: httpx.Request) -> httpx.Response:
        posts.append(request)
        started.set()
        await asyncio.sleep(3600)
        raise AssertionError  # pragma: no cover - cancelled before

    router.post(PAYOUT).mock(side_effect=hang)
    query = router.post(QUERY).mock(return_value=ok())
    task = asyncio.create_task(fast.create_payout(make_payout()))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    entry = await fast.ledger.get(KEY)
    assert entry is not None
    assert entry.state is EntryState.UNKNOWN

    result = await fast.create_payout(make_payout())

    assert result.trade_no == "VX20260331004567"
    assert query.call_count == 1  # asked first ...
    assert len(posts) == 1  # ... and did not send again


async def test_cancelled_leader_hands_over_to_a_waiting_follower(
    fast: VexoraClient, router: respx.MockRouter
) -> None:
    """If the task executing a shared call is cancelled, a follower finishes."""
    started = asyncio.Event()

    async def hang(request: httpx.Request) -> httpx.Response:
        started.set()
        await asyncio.sleep(3600)
        raise AssertionError  # pragma: no cover - cancelled before

    router.post(PAYOUT).mock(side_effect=hang)
    router.post(QUERY).mock(return_value=ok())
    leader = asyncio.create_task(fast.create_payout(make_payout()))
    await started.wait()
    follower = asyncio.create_task(fast.create_payout(make_payout()))
    await asyncio.sleep(0.01)
    leader.cancel()

    result = await follower

    assert result.trade_no == "VX20260331004567"
    assert leader.cancelled()


async def test_cancellation_releases_the_connection() -> None:
    """A call cancelled while the server is silent leaves no connection busy."""
    accepted = asyncio.Event()
    hung_up = asyncio.Event()

    async def silent(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        accepted.set()
        while await reader.read(65536):
            pass  # never answer; wait for the client to hang up
        hung_up.set()
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with (
        server,
        VexoraClient(
            MERCHANT_NO, SECRET, f"http://127.0.0.1:{port}/myanmar", retry=FAST
        ) as client,
    ):
        task = asyncio.create_task(client.create_payout(make_payout()))
        await accepted.wait()
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The client hung up: the cancelled request's connection is closed.
        await asyncio.wait_for(hung_up.wait(), 5)
        assert client._limiter._value == 20  # every permit is back


async def test_worker_in_flight_elsewhere_is_not_sent_twice(
    router: respx.MockRouter,
) -> None:
    """Two workers sharing a ledger: the second does not send while the first is."""
    now = [1000.0]
    ledger = MemoryLedger(clock=lambda: now[0])
    route = router.post(PAYOUT).mock(return_value=ok())
    query = router.post(QUERY).mock(return_value=ok())
    print_ = fingerprint(_wire(make_payout()))
    await ledger.claim(KEY, print_, lease=180.0, token=new_token())
    client = make_client(router.async_handler, ledger=ledger)
    async with client.http_client, client:
        with pytest.raises(PayoutOutcomeUnknown, match="another worker"):
            await client.create_payout(make_payout())
        assert route.call_count == 0

        now[0] += 10_000  # the other worker's lease ran out: presumed dead
        result = await client.create_payout(make_payout())

    assert result.trade_no == "VX20260331004567"
    assert (route.call_count, query.call_count) == (0, 1)


def _wire(request: PayoutRequest) -> dict[str, str]:
    client = make_client(lambda r: ok())
    return client._codec.encode(request)


async def test_gather_of_1000_with_20_percent_faults_never_pays_twice() -> None:
    """1,000 concurrent payouts, 20% faults: none twice, none lost."""
    gateway = ModelGateway(fault_rate=0.2, seed=7)
    client = make_client(
        gateway, retry=RetryPolicy(backoff_initial=0.001, backoff_max=0.01, deadline=10)
    )
    requests = [
        make_payout(trade_no=f"G{i:06d}", bank_number=f"35601234{i:08d}")
        for i in range(1, 1001)
    ]
    async with client.http_client, client:
        outcomes = await asyncio.gather(
            *(client.create_payout(r) for r in requests), return_exceptions=True
        )
        unknown, not_sent = [], []
        for request, outcome in zip(requests, outcomes, strict=True):
            if isinstance(outcome, PayoutOutcomeUnknown):
                assert outcome.trade_no == request.trade_no
                unknown.append(request)
            elif isinstance(outcome, (ConnectError, HTTPStatusError)):
                # Refused, 429 or 503 on every attempt: provably not paid.
                assert gateway.executions[request.trade_no] == 0
                not_sent.append(request)
            else:
                assert isinstance(outcome, PayoutResult), outcome
                assert outcome.trade_no == request.trade_no
        # Every unknown is resolvable once the faults stop, and what was
        # not sent can simply be sent again.
        gateway.fault_rate = 0.0
        for request in unknown:
            await client.resolve_payout(request)
        for request in not_sent:
            await client.create_payout(request)

    assert max(gateway.executions.values()) == 1
    assert set(gateway.executions) == {r.trade_no for r in requests}


class PayoutMachine(RuleBasedStateMachine):
    """Random payouts, repeats and faults against the model gateway."""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.gateway = ModelGateway(seed=1)
        self.client = make_client(
            self.gateway,
            retry=RetryPolicy(backoff_initial=0.0, backoff_max=0.0, deadline=5.0),
        )
        self.requests: dict[str, PayoutRequest] = {}
        self.unknown: set[str] = set()
        self.rejected: set[str] = set()

    def _request(self, index: int) -> PayoutRequest:
        trade_no = f"P{index:04d}"
        # Account numbers ending in 0000 are refused by the model gateway.
        suffix = "0000" if index % 7 == 0 else f"{index:04d}1"[-4:]
        return self.requests.setdefault(
            trade_no,
            make_payout(trade_no=trade_no, bank_number=f"356012345678{suffix}"),
        )

    async def _send(self, request: PayoutRequest) -> None:
        try:
            result = await self.client.create_payout(request)
        except PayoutOutcomeUnknown as exc:
            assert exc.trade_no == request.trade_no
            self.unknown.add(request.trade_no)
        except RequestRejected:
            assert request.bank_number.endswith("0000")
            self.rejected.add(request.trade_no)
        except (ConnectError, HTTPStatusError):
            # Definitely not sent (refused, 429 or 503 on every attempt).
            assert self.gateway.executions[request.trade_no] == 0
        else:
            assert result.trade_no == request.trade_no
            self.unknown.discard(request.trade_no)

    @rule(
        indices=st.lists(st.integers(1, 30), min_size=1, max_size=12),
        faults=st.lists(st.sampled_from([None, *Fault]), max_size=10),
    )
    def send_concurrently(self, indices: list[int], faults: list[Fault | None]) -> None:
        """Send payouts (repeats included) at once, with scripted faults."""
        self.gateway.script.extend(faults)
        requests = [self._request(i) for i in indices]

        async def run() -> None:
            await asyncio.gather(*(self._send(r) for r in requests))

        self.loop.run_until_complete(run())
        self.gateway.script.clear()

    @rule(rate=st.sampled_from([0.0, 0.1, 0.3, 0.6]))
    def set_fault_rate(self, rate: float) -> None:
        """Change how often the gateway misbehaves."""
        self.gateway.fault_rate = rate

    @rule()
    def resolve_unknowns(self) -> None:
        """With faults off, every unknown payout resolves to a definite answer."""
        self.gateway.fault_rate = 0.0

        async def run() -> None:
            for trade_no in sorted(self.unknown):
                request = self.requests[trade_no]
                try:
                    await self.client.resolve_payout(request)
                except RequestRejected:
                    assert request.bank_number.endswith("0000")
                self.unknown.discard(trade_no)

        self.loop.run_until_complete(run())
        assert not self.unknown

    @invariant()
    def never_executed_twice(self) -> None:
        """No tradeNo is ever executed more than once."""
        assert all(count == 1 for count in self.gateway.executions.values())

    @invariant()
    def nothing_left_in_flight(self) -> None:
        """Between calls, no ledger entry is stuck in flight."""
        ledger = self.client.ledger
        assert isinstance(ledger, MemoryLedger)
        assert all(e.state is not EntryState.IN_FLIGHT for e in ledger.entries())

    @invariant()
    def refused_accounts_never_execute(self) -> None:
        """The model's refused accounts are never paid."""
        assert not any(
            self.requests[t].bank_number.endswith("0000")
            for t in self.gateway.executions
        )

    def teardown(self) -> None:
        """Close the client and the loop."""

        async def close() -> None:
            await self.client.aclose()
            await self.client.http_client.aclose()

        self.loop.run_until_complete(close())
        self.loop.close()


TestPayoutMachine = PayoutMachine.TestCase
TestPayoutMachine.settings = settings(
    max_examples=40,
    stateful_step_count=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


class BrokenLedger(MemoryLedger):
    """A ledger whose store fails on *fail_on*."""

    def __init__(self, fail_on: str) -> None:
        super().__init__()
        self.fail_on = fail_on

    async def claim(
        self, key: str, fingerprint: str, *, lease: float, token: str
    ) -> Any:
        """Fail or claim."""
        if self.fail_on == "claim":
            msg = "database is locked"
            raise OSError(msg)
        return await super().claim(key, fingerprint, lease=lease, token=token)

    async def settle(self, key: str, entry: Any, *, token: str) -> bool:
        """Fail or settle."""
        if self.fail_on == "settle":
            msg = "disk full"
            raise OSError(msg)
        return await super().settle(key, entry, token=token)


async def test_ledger_failing_to_claim_sends_nothing(router: respx.MockRouter) -> None:
    """A broken ledger store is a LedgerError, and no request goes out."""
    route = router.post(PAYOUT).mock(return_value=ok())
    client = make_client(router.async_handler, ledger=BrokenLedger("claim"))
    async with client.http_client, client:
        with pytest.raises(LedgerError, match="nothing was sent"):
            await client.create_payout(make_payout())

    assert route.call_count == 0


@pytest.mark.slow
async def test_ledger_failing_to_record_still_returns_the_result(
    router: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    """A payout that was accepted is reported accepted even if recording fails."""
    router.post(PAYOUT).mock(return_value=ok())
    client = make_client(router.async_handler, ledger=BrokenLedger("settle"))
    async with client.http_client, client:
        result = await client.create_payout(make_payout())

    assert result.status.is_processing
    assert "the ledger failed to record" in caplog.text
