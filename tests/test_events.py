"""The event API: what hooks see of each call, and that they never change it."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from vexora_async import InvalidRequestError, RetryPolicy, VexoraClient
from vexora_async.events import (
    AttemptFinished,
    CallbackHandled,
    CallFinished,
    CallOutcome,
    CallStarted,
    Event,
    LedgerAction,
    LedgerEvent,
    QueryResult,
    ReconciliationQuery,
    Resubmitted,
    RetryScheduled,
)

from tests.helpers import (
    BASE_URL,
    MERCHANT_NO,
    PAYOUT,
    QUERY,
    SECRET,
    envelope,
    make_payout,
    mock_client,
    ok,
    route_retry_and_reconciliation,
)


if TYPE_CHECKING:
    import respx

FAST = RetryPolicy(backoff_initial=0.001, backoff_max=0.002, deadline=5.0)


async def test_one_payout_with_a_retry_and_a_reconciliation(
    router: respx.MockRouter,
) -> None:
    """Refused, then a lost answer, then the query finds it: every step is seen."""
    route_retry_and_reconciliation(router)
    seen: list[Event] = []
    async with mock_client(router.async_handler, retry=FAST, on_event=seen.append) as c:
        await c.create_payout(make_payout())

    kinds = [type(event).__name__ for event in seen]
    assert kinds == [
        "CallStarted",
        "LedgerEvent",
        "AttemptFinished",
        "RetryScheduled",
        "AttemptFinished",
        "AttemptFinished",
        "ReconciliationQuery",
        "CallFinished",
    ]
    started, ledger, first, retry, lost, query, found, finished = seen
    assert isinstance(started, CallStarted)
    assert started.merchant_no == MERCHANT_NO
    assert isinstance(ledger, LedgerEvent)
    assert ledger.action is LedgerAction.CLAIMED
    assert isinstance(first, AttemptFinished)
    assert (first.http_status, first.may_have_executed) == (None, "no")
    assert isinstance(retry, RetryScheduled)
    assert (retry.attempt, retry.of, retry.reason) == (2, 3, "ConnectError")
    assert retry.retry_after is None
    assert isinstance(lost, AttemptFinished)
    assert (lost.http_status, lost.may_have_executed) == (None, "maybe")
    assert isinstance(query, AttemptFinished)
    assert query.attempt_operation == "get_payout"
    assert query.operation == "create_payout"  # the logical call
    assert query.may_have_executed is None
    assert isinstance(found, ReconciliationQuery)
    assert found.result is QueryResult.FOUND
    assert isinstance(finished, CallFinished)
    assert finished.outcome is CallOutcome.ACCEPTED
    assert (finished.attempts, finished.reconciled, finished.from_ledger) == (
        3,
        True,
        False,
    )
    assert finished.gateway_code == "0000"
    assert finished.elapsed > 0


async def test_not_found_resubmits_and_says_so(router: respx.MockRouter) -> None:
    """Reconciliation that resends under the same tradeNo emits Resubmitted."""
    router.post(PAYOUT).mock(side_effect=[httpx.ReadTimeout("slow"), ok()])
    router.post(QUERY).mock(
        return_value=httpx.Response(200, json=envelope(None, code="8000"))
    )
    seen: list[Event] = []
    async with mock_client(router.async_handler, retry=FAST, on_event=seen.append) as c:
        await c.create_payout(make_payout())
    queries = [e for e in seen if isinstance(e, ReconciliationQuery)]
    assert [q.result for q in queries] == [QueryResult.NOT_FOUND]
    assert any(isinstance(e, Resubmitted) for e in seen)


async def test_the_ledger_answers_and_the_final_outcome(
    router: respx.MockRouter,
) -> None:
    """A repeat answered from the ledger; an unknown ends as UNKNOWN."""
    router.post(PAYOUT).mock(side_effect=[ok(), httpx.ReadTimeout("slow")])
    seen: list[Event] = []
    raw = RetryPolicy(max_retries=0, reconcile=False, deadline=5)
    async with mock_client(router.async_handler, retry=raw, on_event=seen.append) as c:
        await c.create_payout(make_payout())
        await c.create_payout(make_payout())
        with pytest.raises(Exception, match="may have been executed"):
            await c.create_payout(make_payout(trade_no="OTHER"))
    finished = [e for e in seen if isinstance(e, CallFinished)]
    assert [f.outcome for f in finished] == [
        CallOutcome.ACCEPTED,
        CallOutcome.ACCEPTED,
        CallOutcome.UNKNOWN,
    ]
    assert [f.from_ledger for f in finished] == [False, True, False]
    assert finished[1].attempts == 0
    assert finished[2].error_type == "PayoutOutcomeUnknown"
    answered = [e for e in seen if isinstance(e, LedgerEvent)]
    assert [a.action for a in answered] == [
        LedgerAction.CLAIMED,
        LedgerAction.ANSWERED,
        LedgerAction.CLAIMED,
    ]


async def test_a_hook_that_raises_changes_nothing(
    router: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    """The payout is still made and returned; the failure is logged."""
    route = router.post(PAYOUT).mock(return_value=ok())
    calls: list[Event] = []

    def broken(event: Event) -> None:
        calls.append(event)
        msg = "my exporter is down"
        raise RuntimeError(msg)

    async with mock_client(
        router.async_handler, retry=FAST, on_event=[broken, calls.append]
    ) as c:
        with caplog.at_level(logging.ERROR, "vexora_async"):
            result = await c.create_payout(make_payout())
    assert result.trade_no == "VX20260331004567"
    assert route.call_count == 1
    assert "on_event hook failed" in caplog.text
    # The second hook still saw every event, twice as many as the broken one.
    assert len(calls) == 2 * 4


async def test_reads_are_framed_too(router: respx.MockRouter) -> None:
    """get_balance: started and finished, no ledger events."""
    router.post("/v1/vexora/queryBalance").mock(
        return_value=httpx.Response(200, json=envelope({"availableAmount": 5}))
    )
    seen: list[Event] = []
    async with mock_client(router.async_handler, on_event=seen.append) as c:
        await c.get_balance()
    assert [type(e).__name__ for e in seen] == [
        "CallStarted",
        "AttemptFinished",
        "CallFinished",
    ]


async def test_no_hook_means_no_trace(router: respx.MockRouter) -> None:
    """Without hooks, calls carry no trace: nothing is tallied."""
    seen_calls: list[object] = []

    async def spy(call: Any, call_next: Any) -> object:
        seen_calls.append(call.trace)
        return await call_next(call)

    router.post(PAYOUT).mock(return_value=ok())
    async with mock_client(
        router.async_handler, middleware=[spy], instrument=False
    ) as c:
        await c.create_payout(make_payout())
    assert seen_calls == [None]


@pytest.mark.parametrize("bad", [3, "hook", [print, 3]])
def test_on_event_must_be_callables(bad: object) -> None:
    """A wrong on_event is refused when the client is made."""
    with pytest.raises(InvalidRequestError, match="on_event"):
        VexoraClient(MERCHANT_NO, SECRET, BASE_URL, on_event=bad)  # type: ignore[arg-type]


async def test_the_receiver_reports_each_callback() -> None:
    """CallbackHandled: kind, tradeNo, status, answer, duplicate, handler time."""
    from vexora_async import NotificationReceiver

    from tests.helpers import callback

    seen: list[Event] = []

    async def handler(notification: object, *, already_handled: bool) -> None:
        return None

    receiver = NotificationReceiver(
        SECRET, handler, kind="payout", on_event=seen.append
    )
    body = callback()
    first = await receiver.respond(body)
    second = await receiver.respond(body)
    refused = await receiver.respond(b"{}")
    assert [first.status_code, second.status_code, refused.status_code] == [
        200,
        200,
        403,
    ]
    handled = [e for e in seen if isinstance(e, CallbackHandled)]
    assert [(e.kind, e.http_status, e.duplicate) for e in handled] == [
        ("payout", 200, False),
        ("payout", 200, True),
        (None, 403, False),
    ]
    assert handled[0].trade_no == "VX20260331004567"
    assert handled[0].handler_time is not None
    assert handled[2].error_type == "SignatureError"
