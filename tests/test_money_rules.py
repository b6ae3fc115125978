"""The money rules end to end: each defect of issue 9, as a user would meet it.

A tradeNo collision must never come back as an accepted payout, whichever
path learns of it (the create's duplicate refusal, reconciliation after a
lost answer, or ``resolve_payout``); ``resolve_payout`` always asks before it
sends; an answer with duplicate keys is never read last-wins; a non-200
status after a create is an unknown outcome, reconciled by a query.
"""

from __future__ import annotations

import json
import logging
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from vexora_async import (
    DepositRequest,
    MemoryLedger,
    PayoutOutcomeUnknown,
    RequestRejected,
    RetryPolicy,
    TradeNoCollision,
    VexoraClient,
)
from vexora_async.testing import FakeGateway, Fault, SandboxApp

from tests.helpers import (
    NOTIFY_URL,
    code,
    envelope,
    in_process_client,
    make_payout,
    mock_client,
    ok,
    payout_data,
)


if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    import respx


PAYOUT = "/v1/vexora/disbursements"
QUERY = "/v1/vexora/queryPayOutResult"
DEPOSIT = "/v1/vexora/deposits"
DEPOSIT_QUERY = "/v1/vexora/queryPayInResult"
TRADE_NO = "VX20260331004567"
FAST = RetryPolicy(backoff_initial=0.001, backoff_max=0.002, deadline=5.0)
#: The policy the testing guide recommends for raw outcomes.
RAW = RetryPolicy(max_retries=0, reconcile=False, verify_rejections=False)


DUPLICATE = code("8000", "tradeNo duplicate")
NOT_FOUND = code("8000", "order not found")
#: Another payout (25,000 to someone else) already holds our tradeNo.
THEIRS = payout_data(status="0000", amount="25000.00")


@pytest.fixture
async def fast(router: respx.MockRouter) -> AsyncIterator[VexoraClient]:
    """Yield a client on the default layers with near-zero backoff."""
    async with mock_client(router.async_handler, retry=FAST) as vexora:
        yield vexora


# -- 1. a tradeNo collision is never adopted --------------------------------


async def test_collision_through_the_create_s_duplicate_refusal(
    fast: VexoraClient, router: respx.MockRouter
) -> None:
    """8000 duplicate, the query finds 25,000: a collision, not our 777."""
    post = router.post(PAYOUT).mock(return_value=DUPLICATE)
    query = router.post(QUERY).mock(return_value=ok(THEIRS))

    with pytest.raises(TradeNoCollision) as info:
        await fast.create_payout(make_payout(amount=777))

    error = info.value
    assert (error.trade_no, error.requested_amount, error.found_amount) == (
        TRADE_NO,
        Decimal(777),
        Decimal(25000),
    )
    assert error.operation == "create_payout"
    assert not isinstance(error, RequestRejected)
    assert (post.call_count, query.call_count) == (1, 1)  # nothing more sent


async def test_collision_through_reconciliation(
    fast: VexoraClient, router: respx.MockRouter
) -> None:
    """A lost answer, then the query finds another amount: collision, one create."""
    post = router.post(PAYOUT).mock(side_effect=[httpx.ReadTimeout("slow")])
    router.post(QUERY).mock(return_value=ok(THEIRS))

    with pytest.raises(TradeNoCollision):
        await fast.create_payout(make_payout(amount=777))

    assert post.call_count == 1


async def test_collision_through_resolve(
    fast: VexoraClient, router: respx.MockRouter
) -> None:
    """resolve_payout finds another amount: collision, named resolve_payout."""
    post = router.post(PAYOUT).mock(return_value=DUPLICATE)
    router.post(QUERY).mock(return_value=ok(THEIRS))

    with pytest.raises(TradeNoCollision) as info:
        await fast.resolve_payout(make_payout(amount=777))

    assert info.value.operation == "resolve_payout"
    assert post.call_count == 0


async def test_a_collision_stays_a_collision(
    fast: VexoraClient, router: respx.MockRouter
) -> None:
    """The ledger does not remember a collision as anything else: asked again."""
    post = router.post(PAYOUT).mock(return_value=DUPLICATE)
    query = router.post(QUERY).mock(return_value=ok(THEIRS))
    for _ in range(2):
        with pytest.raises(TradeNoCollision):
            await fast.create_payout(make_payout(amount=777))
    assert post.call_count == 1  # the second call queried first, sent nothing
    assert query.call_count == 2


async def test_collision_of_a_deposit(
    fast: VexoraClient, router: respx.MockRouter
) -> None:
    """Pay-ins follow the same rule."""
    router.post(DEPOSIT).mock(return_value=DUPLICATE)
    router.post(DEPOSIT_QUERY).mock(
        return_value=ok(payout_data(trade_no="D1", amount="9000"))
    )
    request = DepositRequest(
        trade_no="D1", amount=500, name="Daw Aye", notify_url=NOTIFY_URL
    )
    with pytest.raises(TradeNoCollision) as info:
        await fast.create_deposit(request)
    assert info.value.found_amount == Decimal(9000)


@pytest.mark.parametrize("found", ["777.00", "777", 777.0])
async def test_a_lost_answer_is_not_a_collision(
    fast: VexoraClient, router: respx.MockRouter, found: object
) -> None:
    """The same payout found by the query (same amount, any spelling) is ours."""
    post = router.post(PAYOUT).mock(side_effect=[httpx.ReadTimeout("slow")])
    router.post(QUERY).mock(
        return_value=ok({**payout_data(status="0000"), "amount": found})
    )

    result = await fast.create_payout(make_payout(amount=777))

    assert result.status.is_success
    assert result.amount == Decimal(777)
    assert post.call_count == 1


async def test_an_ordered_amount_decides_for_a_partial_pay_in(
    fast: VexoraClient, router: respx.MockRouter
) -> None:
    """0001 moved 300 of 500 ordered: orderAmount matches, so it is ours."""
    router.post(DEPOSIT).mock(side_effect=[httpx.ReadTimeout("slow")])
    data = payout_data(trade_no="D1", status="0001", amount="300.00")
    router.post(DEPOSIT_QUERY).mock(return_value=ok({**data, "orderAmount": 500.0}))
    request = DepositRequest(
        trade_no="D1", amount=500, name="Daw Aye", notify_url=NOTIFY_URL
    )
    result = await fast.create_deposit(request)
    assert result.status is not None
    assert result.status == "0001"


async def test_an_answer_without_amount_is_unknown_not_adopted(
    fast: VexoraClient, router: respx.MockRouter
) -> None:
    """No amount to compare: unknown (it could be anyone's), never silently ours."""
    router.post(PAYOUT).mock(side_effect=[httpx.ReadTimeout("slow")])
    data = {k: v for k, v in payout_data(status="0000").items() if k != "amount"}
    router.post(QUERY).mock(return_value=ok(data))

    with pytest.raises(PayoutOutcomeUnknown, match="no amount"):
        await fast.create_payout(make_payout())


async def test_adopt_unchecked_takes_an_answer_without_amount(
    router: respx.MockRouter,
) -> None:
    """RetryPolicy(adopt_unchecked=True) is the documented way out."""
    router.post(PAYOUT).mock(side_effect=[httpx.ReadTimeout("slow")])
    data = {k: v for k, v in payout_data(status="0000").items() if k != "amount"}
    router.post(QUERY).mock(return_value=ok(data))
    policy = RetryPolicy(backoff_initial=0.001, deadline=5.0, adopt_unchecked=True)
    async with mock_client(router.async_handler, retry=policy) as vexora:
        result = await vexora.create_payout(make_payout())
    assert result.status.is_success


# -- 2. resolve_payout always asks first ------------------------------------


async def test_resolve_asks_first_whatever_the_policy(
    gateway: FakeGateway, sandbox: SandboxApp
) -> None:
    """A dropped but executed payout, then resolve on the raw policy.

    Before the fix resolve re-sent the create, got "duplicate" and, with
    verify_rejections off, raised RequestRejected for a paid payout.
    """
    request = make_payout(trade_no="DROPPED-1", amount=777)
    gateway.faults.for_trade_no("DROPPED-1", Fault.drop(executed=True))
    async with in_process_client(sandbox, RAW) as raw:
        with pytest.raises(PayoutOutcomeUnknown):
            await raw.create_payout(request)
        creates_before = gateway.stats.requests[PAYOUT]
        assert creates_before == 1

        result = await raw.resolve_payout(request)

        assert result.trade_no == "DROPPED-1"
        assert not result.status.is_failed
        assert gateway.stats.requests[PAYOUT] == creates_before
    assert gateway.stats.executions["DROPPED-1"] == 1


async def test_resolve_on_a_fresh_client_asks_first(
    gateway: FakeGateway, sandbox: SandboxApp
) -> None:
    """A restarted worker (empty ledger) resolving on the raw policy: no resend."""
    request = make_payout(trade_no="DROPPED-2", amount=777)
    gateway.faults.for_trade_no("DROPPED-2", Fault.drop(executed=True))
    async with in_process_client(sandbox, RAW) as first:
        with pytest.raises(PayoutOutcomeUnknown):
            await first.create_payout(request)
    async with in_process_client(sandbox, RAW) as restarted:
        result = await restarted.resolve_payout(request)
    assert result.trade_no == "DROPPED-2"
    assert gateway.stats.executions["DROPPED-2"] == 1


async def test_resolve_resends_only_when_unknown_and_allowed(
    router: respx.MockRouter,
) -> None:
    """resubmit=False: the gateway does not know it, resolve stays unknown."""
    post = router.post(PAYOUT).mock(return_value=ok(payout_data()))
    router.post(QUERY).mock(return_value=NOT_FOUND)
    policy = RetryPolicy(
        backoff_initial=0.001, deadline=0.5, resubmit=False, max_reconcile_queries=2
    )
    async with mock_client(router.async_handler, retry=policy) as vexora:
        with pytest.raises(PayoutOutcomeUnknown) as info:
            await vexora.resolve_payout(make_payout())
    assert info.value.operation == "resolve_payout"
    assert post.call_count == 0


async def test_resolve_resends_when_the_gateway_does_not_know_it(
    router: respx.MockRouter,
) -> None:
    """Not found, resubmit on (even with reconcile off): sent once, accepted."""
    post = router.post(PAYOUT).mock(return_value=ok(payout_data()))
    router.post(QUERY).mock(return_value=NOT_FOUND)
    async with mock_client(router.async_handler, retry=RAW) as vexora:
        result = await vexora.resolve_payout(make_payout())
    assert result.trade_no == TRADE_NO
    assert post.call_count == 1


async def test_an_unknown_create_is_not_resent_when_reconciliation_is_off(
    router: respx.MockRouter,
) -> None:
    """A second create_payout after an unknown one, on the raw policy: no resend."""
    post = router.post(PAYOUT).mock(side_effect=[httpx.ReadTimeout("slow"), DUPLICATE])
    async with mock_client(router.async_handler, retry=RAW) as vexora:
        for _ in range(2):
            with pytest.raises(PayoutOutcomeUnknown):
                await vexora.create_payout(make_payout())
    assert post.call_count == 1


# -- 3. duplicate keys are never read last-wins -----------------------------


async def test_a_create_answer_with_two_codes_is_never_a_refusal(
    router: respx.MockRouter,
) -> None:
    """'0000 ... 8000' read last-wins was a refusal of an accepted payout.

    On the raw policy it is now an unknown outcome; on the default policy
    the query settles it.
    """
    two_codes = b'{"msg":"x","code":"0000","data":null,"code":"8000"}'
    router.post(PAYOUT).mock(return_value=httpx.Response(200, content=two_codes))
    query = router.post(QUERY).mock(return_value=ok(payout_data(status="0015")))
    async with mock_client(router.async_handler, retry=RAW) as raw:
        with pytest.raises(PayoutOutcomeUnknown, match="duplicated key"):
            await raw.create_payout(make_payout())
    async with mock_client(router.async_handler, retry=FAST) as default:
        result = await default.create_payout(make_payout())
    assert result.status.is_processing
    assert query.call_count == 1


async def test_a_query_answer_with_two_statuses_is_refused(
    fast: VexoraClient, router: respx.MockRouter
) -> None:
    """get_payout never says 'failed' for a body that also says 'success'."""
    body = json.dumps(envelope(payout_data(status="0000")))
    two = body.replace('"status": "0000"', '"status": "0000", "status": "00029"')
    router.post(QUERY).mock(return_value=httpx.Response(200, content=two.encode()))
    with pytest.raises(Exception) as info:  # noqa: PT011 - checked just below
        await fast.get_payout(TRADE_NO, max_retries=0)
    assert type(info.value).__name__ == "DecodingError"
    assert "duplicated key" in repr(info.value.__cause__)


# -- 5. a status the gateway does not answer with is not a refusal ----------


@pytest.mark.parametrize("status", [303, 400, 404, 409])
async def test_a_non_200_after_a_create_is_reconciled(
    fast: VexoraClient, router: respx.MockRouter, status: int
) -> None:
    """A proxy's 409 after the gateway paid: the query finds it, not 'not executed'."""
    router.post(PAYOUT).mock(return_value=httpx.Response(status))
    router.post(QUERY).mock(return_value=ok(payout_data(status="0000")))
    result = await fast.create_payout(make_payout())
    assert result.status.is_success


async def test_a_forgotten_ledger_entry_and_unverified_rejections(
    router: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    """An evicted ACCEPTED entry, verify_rejections off: the refusal says the risk.

    The default policy finds the paid payout; the raw one raises
    RequestRejected(confirmed=False), whose message tells the user to query.
    """
    router.post(PAYOUT).mock(
        side_effect=[
            ok(payout_data()),
            ok(payout_data(trade_no="EVICTS-THE-FIRST")),
            DUPLICATE,
            DUPLICATE,
        ]
    )
    router.post(QUERY).mock(return_value=ok(payout_data(status="0000")))
    ledger = MemoryLedger(max_entries=1)
    policy = RetryPolicy(max_retries=0, verify_rejections=False)
    async with mock_client(router.async_handler, retry=policy, ledger=ledger) as raw:
        await raw.create_payout(make_payout())
        await raw.create_payout(make_payout(trade_no="EVICTS-THE-FIRST"))
        with pytest.raises(RequestRejected) as info:
            await raw.create_payout(make_payout())
    assert info.value.confirmed is False
    assert "may have been paid" in str(info.value)
    async with mock_client(router.async_handler, retry=FAST, ledger=ledger) as default:
        with caplog.at_level(logging.WARNING, "vexora_async"):
            result = await default.create_payout(make_payout())
    assert result.status.is_success


async def test_a_batch_never_calls_a_maybe_executed_error_not_executed(
    router: respx.MockRouter,
) -> None:
    """A middleware's own error after sending is UNKNOWN in a batch, not ERROR."""
    from vexora_async import OutcomeKind, VexoraError

    async def fails_after_sending(call: Any, call_next: Any) -> object:
        await call_next(call)
        raise VexoraError("my middleware broke after the send")

    router.post(PAYOUT).mock(return_value=ok(payout_data()))
    async with mock_client(
        router.async_handler, retry=RAW, middleware=[fails_after_sending]
    ) as vexora:
        outcomes = [o async for o in vexora.create_payouts([make_payout()])]
    assert [o.kind for o in outcomes] == [OutcomeKind.UNKNOWN]


async def test_a_batch_never_calls_an_unconfirmed_refusal_rejected(
    router: respx.MockRouter,
) -> None:
    """verify_rejections=False: a refusal no query confirmed is UNKNOWN.

    It may be the duplicate refusal of a payout an earlier run made; the
    batch used to report it REJECTED, "nothing was paid".
    """
    from vexora_async import OutcomeKind

    router.post(PAYOUT).mock(return_value=DUPLICATE)
    async with mock_client(router.async_handler, retry=RAW) as vexora:
        (outcome,) = [o async for o in vexora.create_payouts([make_payout()])]
    assert outcome.kind is OutcomeKind.UNKNOWN
    assert isinstance(outcome.error, RequestRejected)
    assert outcome.error.may_have_executed is True


async def test_a_deadline_beside_a_policy_is_refused() -> None:
    """deadline=5 next to retry=RetryPolicy() was silently 60 s: now an error."""
    from vexora_async import InvalidRequestError

    with pytest.raises(InvalidRequestError, match="inside the RetryPolicy"):
        VexoraClient("1000000001", "s", "http://127.0.0.1:9", retry=RAW, deadline=5)
