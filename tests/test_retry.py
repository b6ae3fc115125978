"""Tests for retries, the deadline and reconciliation of unknown outcomes.

Each test scripts the gateway's answers as a respx side-effect sequence and
checks what the caller gets and what went over the wire.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from vexora_async import (
    ConnectError,
    DepositRequest,
    HTTPStatusError,
    MemoryLedger,
    Operation,
    PayoutOutcomeUnknown,
    RequestRejected,
    RequestTimeout,
    RetryPolicy,
    VexoraClient,
)
from vexora_async._converter import WireCodec
from vexora_async._middleware import Call
from vexora_async._retry import RetryMiddleware

from tests.helpers import (
    BASE_URL,
    MERCHANT_NO,
    code,
    make_payout,
    mock_client,
    ok,
    payout_data,
    sent_body,
)


if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    import respx


PAYOUT = "/v1/vexora/disbursements"
QUERY = "/v1/vexora/queryPayOutResult"
FAST = RetryPolicy(backoff_initial=0.001, backoff_max=0.002, deadline=5.0)


NOT_FOUND = code("8000", "order not found")


def ticking_clock() -> Callable[[], int]:
    """Return a clock that moves 1 ms per call, so every attempt differs."""
    now = [1719876543210]

    def clock() -> int:
        now[0] += 1
        return now[0]

    return clock


@pytest.fixture
async def fast(router: respx.MockRouter) -> AsyncIterator[VexoraClient]:
    """A client with near-zero backoff, talking to *router*."""
    async with mock_client(
        router.async_handler, retry=FAST, clock=ticking_clock()
    ) as client:
        yield client


def bodies(route: respx.Route) -> list[dict[str, Any]]:
    """Return the signed bodies a route received, checking each sign."""
    return [sent_body(c.request) for c in route.calls]


async def test_connect_failure_is_retried_with_a_fresh_sign(
    fast: VexoraClient, router: respx.MockRouter
) -> None:
    """A refused connection never reached the gateway: resend, same tradeNo."""
    route = router.post(PAYOUT).mock(side_effect=[httpx.ConnectError("refused"), ok()])

    result = await fast.create_payout(make_payout())

    assert result.status == "0015"
    first, second = bodies(route)
    assert first["tradeNo"] == second["tradeNo"] == "VX20260331004567"
    assert first["timestamp"] != second["timestamp"]
    assert first["sign"] != second["sign"]


async def test_connect_failure_after_all_retries_says_nothing_was_sent(
    fast: VexoraClient, router: respx.MockRouter
) -> None:
    """When every attempt is refused, ConnectError (not unknown) comes out."""
    route = router.post(PAYOUT).mock(side_effect=httpx.ConnectError("refused"))

    with pytest.raises(ConnectError, match="nothing was sent"):
        await fast.create_payout(make_payout())

    assert route.call_count == 3  # the first attempt and max_retries=2
    assert (
        await fast.ledger.get(f"{MERCHANT_NO}:create_payout:VX20260331004567") is None
    )


async def test_429_on_a_create_waits_retry_after_then_queries_before_resending(
    fast: VexoraClient, router: respx.MockRouter
) -> None:
    """A 429 may come from a proxy that forwarded the payout: query first.

    Its Retry-After is waited for, then the status query; only when the
    gateway does not know the tradeNo is the same request sent again.
    """
    slept: list[float] = []

    async def sleep(delay: float) -> None:
        slept.append(delay)

    fast._retry._sleep = sleep
    route = router.post(PAYOUT).mock(
        side_effect=[httpx.Response(429, headers={"Retry-After": "2"}), ok()]
    )
    query = router.post(QUERY).mock(return_value=NOT_FOUND)

    await fast.create_payout(make_payout())

    assert slept == [2.0]
    assert (query.call_count, route.call_count) == (1, 2)


async def test_retry_after_beyond_the_cap_ends_the_retries(
    fast: VexoraClient, router: respx.MockRouter
) -> None:
    """A Retry-After longer than retry_after_max is not waited for.

    After a create the outcome stays unknown: a proxy's 429 may follow a
    forwarded payout, and nothing is sent again without a query.
    """
    route = router.post(PAYOUT).mock(
        return_value=httpx.Response(429, headers={"Retry-After": "3600"})
    )
    query = router.post(QUERY).mock(return_value=NOT_FOUND)

    with pytest.raises(PayoutOutcomeUnknown) as info:
        await fast.create_payout(make_payout())

    assert info.value.may_have_executed
    unknown = info.value.__cause__  # the create's own, behind the reconciliation
    assert isinstance(unknown, PayoutOutcomeUnknown)
    assert isinstance(unknown.__cause__, HTTPStatusError)
    assert unknown.__cause__.retry_after == 3600.0
    assert (route.call_count, query.call_count) == (1, 0)


async def test_retry_after_as_http_date(
    fast: VexoraClient, router: respx.MockRouter
) -> None:
    """An HTTP-date Retry-After in the past reads as zero seconds."""
    router.post(QUERY).mock(
        return_value=httpx.Response(
            503, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}
        )
    )

    with pytest.raises(HTTPStatusError) as info:
        await fast.get_payout("VX20260331004567", max_retries=0)

    assert info.value.retry_after == 0.0


async def test_read_timeout_then_query_finds_it(
    fast: VexoraClient, router: respx.MockRouter
) -> None:
    """Sent but no answer: ask the gateway; it knows the payout, so that's it."""
    post = router.post(PAYOUT).mock(side_effect=[httpx.ReadTimeout("slow")])
    query = router.post(QUERY).mock(side_effect=[ok(payout_data(status="0000"))])

    result = await fast.create_payout(make_payout())

    assert result.status.is_success
    assert post.call_count == 1
    assert bodies(query)[0]["tradeNo"] == "VX20260331004567"


async def test_read_timeout_then_not_found_resubmits_same_trade_no(
    fast: VexoraClient, router: respx.MockRouter
) -> None:
    """The gateway does not know it: resend under the same tradeNo."""
    post = router.post(PAYOUT).mock(side_effect=[httpx.ReadTimeout("slow"), ok()])
    router.post(QUERY).mock(side_effect=[NOT_FOUND])

    result = await fast.create_payout(make_payout())

    assert result.trade_no == "VX20260331004567"
    first, second = bodies(post)
    assert first["tradeNo"] == second["tradeNo"]
    assert {k: v for k, v in first.items() if k not in {"timestamp", "sign"}} == {
        k: v for k, v in second.items() if k not in {"timestamp", "sign"}
    }


async def test_code_5000_is_reconciled(
    fast: VexoraClient, router: respx.MockRouter
) -> None:
    """Code 5000 means "do not treat as failed": the query settles it."""
    post = router.post(PAYOUT).mock(side_effect=[code("5000", "system exception")])
    router.post(QUERY).mock(side_effect=[ok()])

    result = await fast.create_payout(make_payout())

    assert result.status.is_processing
    assert post.call_count == 1


@pytest.mark.parametrize(
    "lost",
    [
        httpx.RemoteProtocolError("server disconnected"),
        httpx.Response(500),
        httpx.Response(200, content=b"<html>"),
    ],
)
async def test_every_unknown_outcome_is_reconciled(
    fast: VexoraClient, router: respx.MockRouter, lost: Any
) -> None:
    """Connection lost, HTTP 500 and an unreadable 200 all lead to the query."""
    post = router.post(PAYOUT).mock(side_effect=[lost])
    query = router.post(QUERY).mock(side_effect=[ok()])

    await fast.create_payout(make_payout())

    assert (post.call_count, query.call_count) == (1, 1)


async def test_duplicate_refusal_sends_back_to_the_query(
    fast: VexoraClient, router: respx.MockRouter
) -> None:
    """A resubmission refused as duplicate means the first one landed late."""
    post = router.post(PAYOUT).mock(
        side_effect=[httpx.ReadTimeout("slow"), code("8000", "tradeNo duplicate")]
    )
    query = router.post(QUERY).mock(side_effect=[NOT_FOUND, ok()])

    result = await fast.create_payout(make_payout())

    assert result.status.is_processing
    assert (post.call_count, query.call_count) == (2, 2)


async def test_refusal_of_a_resubmission_that_stays_unknown_is_a_rejection(
    fast: VexoraClient, router: respx.MockRouter
) -> None:
    """Refused again and still not found: the gateway really said no."""
    router.post(PAYOUT).mock(
        side_effect=[httpx.ReadTimeout("slow"), code("8000", "invalid bankNumber")]
    )
    router.post(QUERY).mock(side_effect=[NOT_FOUND, NOT_FOUND])

    with pytest.raises(RequestRejected, match="invalid bankNumber"):
        await fast.create_payout(make_payout())


async def test_deadline_exceeded_raises_payout_outcome_unknown(
    router: respx.MockRouter,
) -> None:
    """When the gateway never says, the caller gets the unknown and its tradeNo."""
    router.post(PAYOUT).mock(side_effect=httpx.ReadTimeout("slow"))
    query = router.post(QUERY).mock(return_value=code("5000"))
    policy = RetryPolicy(
        backoff_initial=0.05, backoff_max=0.05, deadline=0.3, max_reconcile_queries=100
    )
    async with mock_client(router.async_handler, retry=policy) as client:
        with pytest.raises(PayoutOutcomeUnknown) as info:
            await client.create_payout(make_payout())

    assert info.value.trade_no == "VX20260331004567"
    assert "may have been executed" in str(info.value)
    assert "never resend it under a new one" in str(info.value)
    # The deadline, not the query budget, ended it.
    assert 1 <= query.call_count < 20


async def test_unknown_is_not_a_rejection(
    fast: VexoraClient, router: respx.MockRouter
) -> None:
    """Code that catches RequestRejected as "failed" never sees an unknown."""
    router.post(PAYOUT).mock(side_effect=httpx.ReadTimeout("slow"))
    router.post(QUERY).mock(return_value=code("5000"))

    with pytest.raises(PayoutOutcomeUnknown) as info:
        await fast.create_payout(make_payout())

    assert not isinstance(info.value, RequestRejected)


async def test_rejection_is_confirmed_by_a_query(
    fast: VexoraClient, router: respx.MockRouter
) -> None:
    """A first-attempt 8000 is checked: not found means a real rejection."""
    post = router.post(PAYOUT).mock(return_value=code("8000", "invalid bankNumber"))
    router.post(QUERY).mock(return_value=NOT_FOUND)

    with pytest.raises(RequestRejected) as info:
        await fast.create_payout(make_payout())

    assert info.value.code == "8000"
    assert post.call_count == 1


async def test_rejection_of_a_trade_no_the_gateway_knows_returns_it(
    fast: VexoraClient, router: respx.MockRouter
) -> None:
    """A duplicate from an earlier run of the process is found, not failed."""
    router.post(PAYOUT).mock(return_value=code("8000", "tradeNo duplicate"))
    router.post(QUERY).mock(return_value=ok(payout_data(status="0000")))

    result = await fast.create_payout(make_payout())

    assert result.status.is_success


async def test_unverifiable_rejection_is_unknown(
    fast: VexoraClient, router: respx.MockRouter
) -> None:
    """An 8000 whose confirming query keeps failing is not called a failure."""
    router.post(PAYOUT).mock(return_value=code("8000", "tradeNo duplicate"))
    router.post(QUERY).mock(side_effect=httpx.ReadTimeout("slow"))

    with pytest.raises(PayoutOutcomeUnknown):
        await fast.create_payout(make_payout())


async def test_resubmission_can_be_turned_off(router: respx.MockRouter) -> None:
    """With resubmit=False a not-found payout stays unknown; nothing resent."""
    post = router.post(PAYOUT).mock(side_effect=[httpx.ReadTimeout("slow")])
    router.post(QUERY).mock(return_value=NOT_FOUND)
    policy = RetryPolicy(
        backoff_initial=0.001,
        backoff_max=0.001,
        resubmit=False,
        max_reconcile_queries=3,
    )
    async with mock_client(router.async_handler, retry=policy) as client:
        with pytest.raises(PayoutOutcomeUnknown, match="resubmission is off"):
            await client.create_payout(make_payout())

    assert post.call_count == 1


async def test_reconciliation_can_be_turned_off(router: respx.MockRouter) -> None:
    """With reconcile=False the first unknown goes straight to the caller."""
    router.post(PAYOUT).mock(side_effect=[httpx.ReadTimeout("slow")])
    query = router.post(QUERY).mock(return_value=ok())
    async with mock_client(
        router.async_handler, retry=RetryPolicy(reconcile=False)
    ) as client:
        with pytest.raises(PayoutOutcomeUnknown):
            await client.create_payout(make_payout())

    assert query.call_count == 0


async def test_resolve_payout_asks_before_sending(
    fast: VexoraClient, router: respx.MockRouter
) -> None:
    """resolve_payout starts with the query and sends only if not found."""
    post = router.post(PAYOUT).mock(return_value=ok())
    router.post(QUERY).mock(side_effect=[ok(payout_data(status="00029"))])

    result = await fast.resolve_payout(make_payout())

    assert result.status.is_failed
    assert post.call_count == 0


async def test_queries_retry_any_transient_failure(
    fast: VexoraClient, router: respx.MockRouter
) -> None:
    """Read-only calls are retried on timeouts, 5xx and code 5000."""
    route = router.post(QUERY).mock(
        side_effect=[httpx.ReadTimeout("slow"), httpx.Response(502), code("5000"), ok()]
    )

    status = await fast.get_payout("VX20260331004567", max_retries=3)

    assert status.status.is_processing
    assert route.call_count == 4


async def test_max_retries_zero_per_call(
    fast: VexoraClient, router: respx.MockRouter
) -> None:
    """A per-call max_retries=0 gives the first failure straight back."""
    router.post(QUERY).mock(side_effect=[httpx.ReadTimeout("slow"), ok()])

    with pytest.raises(RequestTimeout):
        await fast.get_payout("VX20260331004567", max_retries=0)


async def test_query_rejection_is_not_retried(
    fast: VexoraClient, router: respx.MockRouter
) -> None:
    """An 8000 on a query is an answer, not a transient failure."""
    route = router.post(QUERY).mock(return_value=NOT_FOUND)

    with pytest.raises(RequestRejected):
        await fast.get_payout("VX20260331004567")

    assert route.call_count == 1


async def test_deadline_cuts_each_attempts_timeout(router: respx.MockRouter) -> None:
    """timeout=30 with deadline=2 never lets one attempt wait 30 s."""
    seen: list[dict[str, float]] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request.extensions["timeout"])
        return ok()

    router.post(QUERY).mock(side_effect=record)
    async with mock_client(router.async_handler, timeout=30.0) as client:
        await client.get_payout("VX20260331004567", deadline=2.0)

    assert all(0 < value <= 2.0 for value in seen[0].values())


async def test_no_attempt_starts_after_the_deadline(router: respx.MockRouter) -> None:
    """An attempt whose deadline has passed is not sent at all."""
    route = router.post(QUERY).mock(return_value=ok())
    async with mock_client(router.async_handler) as client:
        call = Call(
            Operation.GET_PAYOUT,
            {"tradeNo": "T1"},
            "T1",
            deadline=asyncio.get_running_loop().time() - 1,
        )
        with pytest.raises(ConnectError, match="deadline"):
            await client._send(call)

    assert route.call_count == 0


async def test_deposit_unknown_is_reconciled_through_the_deposit_query(
    fast: VexoraClient, router: respx.MockRouter
) -> None:
    """Pay-ins get the same care, through queryPayInResult."""
    router.post("/v1/vexora/deposits").mock(side_effect=[httpx.ReadTimeout("slow")])
    query = router.post("/v1/vexora/queryPayInResult").mock(
        return_value=ok(payout_data(trade_no="D1", amount="500"))
    )
    request = DepositRequest(
        trade_no="D1", amount=500, name="Ko Min Thu", notify_url="http://127.0.0.1:9/n"
    )

    result = await fast.create_deposit(request)

    assert result.trade_no == "D1"
    assert query.call_count == 1


async def test_user_middleware_runs_once_per_attempt(router: respx.MockRouter) -> None:
    """Your middleware sits inside the retry layer: it sees every attempt."""
    seen: list[str] = []

    async def count(call: Call, call_next: Callable[[Call], Any]) -> object:
        seen.append(call.operation.label)
        return await call_next(call)

    router.post(PAYOUT).mock(side_effect=[httpx.ConnectError("refused"), ok()])
    async with mock_client(
        router.async_handler, retry=FAST, middleware=[count]
    ) as client:
        await client.create_payout(make_payout())

    assert seen == ["create_payout", "create_payout"]


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    """Backoff doubles per attempt, jittered in [half, full], never past the cap."""
    policy = RetryPolicy(backoff_initial=1.0, backoff_max=5.0)

    assert policy.backoff(0, lambda: 0.0) == 0.5
    assert policy.backoff(0, lambda: 1.0) == 1.0
    assert policy.backoff(2, lambda: 1.0) == 4.0
    assert policy.backoff(10, lambda: 1.0) == 5.0


async def test_middleware_never_sleeps_past_the_deadline() -> None:
    """A backoff longer than the time left ends the retries at once."""
    slept: list[float] = []

    async def sleep(delay: float) -> None:
        slept.append(delay)

    async def failing(call: Call) -> object:
        raise RequestTimeout("slow", operation="get_payout")

    middleware = RetryMiddleware(
        RetryPolicy(backoff_initial=10.0, backoff_max=10.0),
        WireCodec.create(),
        sleep=sleep,
        clock=lambda: 0.0,
    )
    call = Call(Operation.GET_PAYOUT, {"tradeNo": "T1"}, "T1", deadline=1.0)

    with pytest.raises(RequestTimeout):
        await middleware(call, failing)

    assert slept == []


async def test_ledger_default_is_bounded_memory(fast: VexoraClient) -> None:
    """The client's default ledger is the bounded in-memory one."""
    assert isinstance(fast.ledger, MemoryLedger)
    assert fast.ledger.max_entries == 20_000


def test_bodies_helper_checks_signs() -> None:
    """The test helper itself refuses a body with a wrong sign."""
    request = httpx.Request(
        "POST", BASE_URL, content=json.dumps({"a": "1", "sign": "bad"}).encode()
    )
    with pytest.raises(AssertionError):
        sent_body(request)
