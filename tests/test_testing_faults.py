"""Tests for fault injection: the plan's rules, and what a client sees of each."""

from __future__ import annotations

import httpx
import pytest
from vexora_async import (
    DecodingError,
    GatewayError,
    HTTPStatusError,
    InvalidRequestError,
    Operation,
    PayoutOutcomeUnknown,
    RequestRejected,
    TransportError,
    VexoraClient,
)
from vexora_async.testing import (
    SANDBOX_APP_SECRET,
    SANDBOX_MERCHANT_NO,
    FakeGateway,
    Fault,
    FaultKind,
    FaultPlan,
)

from tests.helpers import FAST_RETRY, ONE_EXCHANGE, ClientPair, make_payout


CREATE, QUERY = Operation.CREATE_PAYOUT, Operation.GET_PAYOUT


def test_scripted_faults_take_precedence_over_the_queue() -> None:
    """A tradeNo's own faults come first, then the queue, then nothing."""
    plan = FaultPlan()
    plan.queue(Fault.drop(), Fault.garbage())
    plan.for_trade_no("T1", Fault.system_error())
    assert plan.pending == 3
    assert plan.pick(CREATE, "T1") == Fault.system_error()
    assert plan.pick(CREATE, "T1") == Fault.drop()
    assert plan.pick(CREATE, "T2") == Fault.garbage()
    assert plan.pick(CREATE, "T2") is None
    assert plan.pending == 0


def test_operations_narrow_who_takes_a_fault() -> None:
    """A fault queued for creates skips status queries and waits for a create."""
    plan = FaultPlan()
    plan.queue(Fault.drop(), operations=CREATE)
    plan.for_trade_no("T1", Fault.garbage(), operations=[QUERY])
    assert plan.pick(QUERY, "T9") is None
    assert plan.pick(CREATE, "T1") == Fault.drop()
    assert plan.pick(QUERY, "T1") == Fault.garbage()


def test_rate_faults_are_reproducible_by_seed() -> None:
    """The same seed and request order give the same faults; rate 0 gives none."""

    def draw(seed: int) -> list[Fault | None]:
        plan = FaultPlan()
        plan.at_rate(0.3, seed=seed)
        return [plan.pick(CREATE, f"T{i}") for i in range(200)]

    first, again, other = draw(7), draw(7), draw(8)
    assert first == again
    assert first != other
    hits = sum(fault is not None for fault in first)
    assert 30 < hits < 90
    plan = FaultPlan()
    plan.at_rate(0.5, [Fault.drop()], seed=1, operations=QUERY)
    assert all(plan.pick(CREATE, None) is None for _ in range(50))
    plan.clear()
    assert all(plan.pick(QUERY, None) is None for _ in range(50))


@pytest.mark.parametrize(
    ("call", "arguments"),
    [
        ("queue", ()),
        ("queue", ("drop",)),
        ("for_trade_no", ("", Fault.drop())),
        ("at_rate", (1.5,)),
        ("at_rate", (True,)),
        ("at_rate", (0.1, [])),
    ],
)
def test_plan_refuses_bad_arguments(call: str, arguments: tuple[object, ...]) -> None:
    """Misuse fails at once, naming the argument."""
    with pytest.raises(InvalidRequestError):
        getattr(FaultPlan(), call)(*arguments)


def test_fault_constructors_check_their_arguments() -> None:
    """Negative delays and non-error statuses are refused."""
    with pytest.raises(InvalidRequestError):
        Fault.delay(-1)
    with pytest.raises(InvalidRequestError):
        Fault.http_error(200)
    with pytest.raises(InvalidRequestError):
        FaultPlan().queue(Fault.drop(), operations=["create_payout"])  # type: ignore[list-item]  # the point
    assert Fault.http_error(503).executed is False
    assert Fault.http_error(500).executed is True
    assert Fault.http_error(502, executed=False).executed is False
    assert Fault.rate_limited(2).executed is False


@pytest.mark.parametrize(
    ("fault", "error", "executed"),
    [
        (Fault.drop(), PayoutOutcomeUnknown, True),
        (Fault.drop(executed=False), PayoutOutcomeUnknown, False),
        (Fault.http_error(500), PayoutOutcomeUnknown, True),
        (Fault.http_error(502, executed=False), PayoutOutcomeUnknown, False),
        (Fault.http_error(503), PayoutOutcomeUnknown, False),
        (Fault.http_error(503, executed=True), PayoutOutcomeUnknown, True),
        (Fault.system_error(), PayoutOutcomeUnknown, True),
        (Fault.system_error(executed=False), PayoutOutcomeUnknown, False),
        (Fault.garbage(), PayoutOutcomeUnknown, True),
        (Fault.rate_limited(1), PayoutOutcomeUnknown, False),
    ],
    ids=[
        "drop",
        "drop-before",
        "500",
        "502-before",
        "503",
        "503-after",
        "5000",
        "5000-before",
        "garbage",
        "429",
    ],
)
async def test_each_fault_reaches_the_client_as_its_exception(
    client_pair: ClientPair,
    gateway: FakeGateway,
    fault: Fault,
    error: type[Exception],
    *,
    executed: bool,
) -> None:
    """One faulty exchange maps to its error; the SDK's defaults settle it.

    With one exchange per call, in process and over a socket, an unknown
    outcome carries the tradeNo and the gateway's state shows whether the
    payout was really made. With the default layers, the same fault ends in
    an accepted payout executed once: resent when the gateway did not take
    it, found by a status query (never resent) when it did.
    """
    gateway.faults.queue(fault)
    with pytest.raises(error) as caught:
        await client_pair.one_exchange.create_payout(make_payout(trade_no="F1"))
    assert gateway.stats.faults[fault.kind] == 1
    assert ("F1" in gateway.payouts) is executed
    assert gateway.stats.executions["F1"] == int(executed)
    if isinstance(caught.value, PayoutOutcomeUnknown):
        assert caught.value.trade_no == "F1"
        status = await client_pair.one_exchange.get_payout("F1") if executed else None
        assert status is None or status.status == "0015"
    if fault.kind is FaultKind.RATE_LIMITED:
        # A proxy answers 429 after forwarding too: unknown, with the
        # status (and its Retry-After) as the cause.
        cause = caught.value.__cause__
        assert isinstance(cause, HTTPStatusError)
        assert cause.status_code == 429
        assert cause.retry_after == 1.0

    gateway.faults.queue(fault)
    creates_before = gateway.stats.requests[CREATE.path]
    result = await client_pair.default.create_payout(make_payout(trade_no="F2"))
    assert (result.trade_no, result.status) == ("F2", "0015")
    assert gateway.stats.faults[fault.kind] == 2
    assert gateway.stats.executions["F2"] == 1
    sent = gateway.stats.requests[CREATE.path] - creates_before
    assert sent == (1 if executed else 2)


async def test_a_rejected_fault_is_a_confirmed_refusal(
    client_pair: ClientPair, gateway: FakeGateway
) -> None:
    """Code 8000 with its message, nothing executed: failed, not unknown."""
    gateway.faults.for_trade_no(
        "R1", Fault.rejected("insufficient balance"), operations=CREATE
    )
    with pytest.raises(RequestRejected) as caught:
        await client_pair.default.create_payout(make_payout(trade_no="R1"))
    assert (caught.value.code, caught.value.msg) == ("8000", "insufficient balance")
    assert caught.value.confirmed  # the status query found no payout
    assert "R1" not in gateway.payouts
    assert gateway.stats.faults[FaultKind.REJECTED] == 1
    # Aimed at R1's create only: the status query and others go through.
    result = await client_pair.default.create_payout(make_payout(trade_no="R2"))
    assert result.status == "0015"


def test_a_rejected_fault_needs_a_message() -> None:
    """An empty message is refused where the fault is built."""
    assert Fault.rejected().executed is False
    with pytest.raises(InvalidRequestError) as caught:
        Fault.rejected("")
    assert caught.value.field == "message"


async def test_a_fractional_retry_after_is_not_honoured(
    client_pair: ClientPair, gateway: FakeGateway
) -> None:
    """The sandbox's compressed ``Retry-After: 0.05`` is not HTTP: it reads as none.

    The default layers then query at once (a 429 on a create may follow a
    forwarded payout), find nothing and send the payout again.
    """
    gateway.faults.queue(Fault.rate_limited(0.05))
    with pytest.raises(PayoutOutcomeUnknown) as caught:
        await client_pair.one_exchange.create_payout(make_payout(trade_no="R1"))
    cause = caught.value.__cause__
    assert isinstance(cause, HTTPStatusError)
    assert cause.status_code == 429
    assert cause.retry_after is None
    gateway.faults.queue(Fault.rate_limited(0.05))
    result = await client_pair.default.create_payout(make_payout(trade_no="R2"))
    assert result.status == "0015"
    assert gateway.stats.executions == {"R2": 1}


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (Fault.drop(), TransportError),
        (Fault.http_error(500), HTTPStatusError),
        (Fault.system_error(), GatewayError),
        (Fault.garbage(), DecodingError),
    ],
    ids=["drop", "500", "5000", "garbage"],
)
async def test_faults_on_a_status_query(
    client_pair: ClientPair,
    gateway: FakeGateway,
    fault: Fault,
    error: type[Exception],
) -> None:
    """A query's fault is a plain error in one exchange; the defaults retry it."""
    await client_pair.default.create_payout(make_payout(trade_no="Q1"))
    gateway.faults.for_trade_no("Q1", fault, operations=QUERY)
    with pytest.raises(error):
        await client_pair.one_exchange.get_payout("Q1")
    gateway.faults.for_trade_no("Q1", fault, operations=QUERY)
    assert (await client_pair.default.get_payout("Q1")).status == "0015"
    assert gateway.stats.faults[fault.kind] == 2
    assert gateway.stats.executions["Q1"] == 1


async def test_delay_longer_than_the_timeout_executes_anyway(
    socket_url: str, gateway: FakeGateway
) -> None:
    """Over a socket, a client that gives up early still had its payout made.

    In one exchange that is an unknown outcome; the default layers find the
    payout by a status query and return it, without sending it again.
    """
    gateway.faults.queue(Fault.delay(0.5))
    async with VexoraClient(
        SANDBOX_MERCHANT_NO,
        SANDBOX_APP_SECRET,
        socket_url,
        timeout=0.1,
        retry=ONE_EXCHANGE,
    ) as client:
        with pytest.raises(PayoutOutcomeUnknown) as caught:
            await client.create_payout(make_payout(trade_no="SLOW"))
    assert isinstance(caught.value.__cause__, httpx.ReadTimeout)
    assert gateway.stats.executions["SLOW"] == 1

    gateway.faults.queue(Fault.delay(0.5))
    async with VexoraClient(
        SANDBOX_MERCHANT_NO,
        SANDBOX_APP_SECRET,
        socket_url,
        timeout=0.1,
        retry=FAST_RETRY,
    ) as client:
        result = await client.create_payout(make_payout(trade_no="SLOW2"))
    assert result.status == "0015"
    assert gateway.stats.executions["SLOW2"] == 1
    assert gateway.stats.duplicates["SLOW2"] == 0


async def test_short_delay_only_slows_the_answer(
    any_client: VexoraClient, gateway: FakeGateway
) -> None:
    """A delay within the timeout is just a slow success."""
    gateway.faults.queue(Fault.delay(0.05))
    result = await any_client.create_payout(make_payout(trade_no="D1"))
    assert result.status == "0015"
    assert gateway.stats.faults[FaultKind.DELAY] == 1


async def test_drop_over_a_socket_sends_no_response_at_all(
    socket_url: str, gateway: FakeGateway
) -> None:
    """The socket is closed with nothing written: no status line, no 500."""
    gateway.faults.queue(Fault.drop())
    async with httpx.AsyncClient() as http:
        with pytest.raises(httpx.RemoteProtocolError, match="without sending"):
            await http.post(socket_url + Operation.GET_BALANCE.path, content=b"{}")
        # The server is still fine for the next request.
        answer = await http.post(socket_url + Operation.GET_BALANCE.path, content=b"{}")
    assert answer.status_code == 200
