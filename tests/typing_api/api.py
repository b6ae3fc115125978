"""The public API's static types, as users write against them.

mypy checks this file (``nox -s typecheck``); nothing runs it. A change
that breaks users' type checking (a result typed ``Any``, an error losing
an attribute, a fixture's type changing) fails here first.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable
from decimal import Decimal
from typing import assert_type

import httpx
from vexora_async import (
    Balance,
    BankCode,
    BatchProgress,
    Call,
    ClientClosedError,
    DepositRequest,
    DepositResult,
    DepositStatus,
    HTTPStatusError,
    MemoryLedger,
    Notification,
    NotificationReceiver,
    OutcomeKind,
    PayoutNotification,
    PayoutOutcome,
    PayoutOutcomeUnknown,
    PayoutRequest,
    PayoutResult,
    PayoutStatus,
    ReceiverResponse,
    RequestRejected,
    RetryPolicy,
    SQLiteLedger,
    StatusKind,
    TransactionStatus,
    VexoraClient,
    VexoraError,
    __version__,
    canonical_string,
    new_trade_no,
    parse_notification,
    sign,
    verify,
)
from vexora_async.ledgers import Claim, EntryState, LedgerEntry, new_token
from vexora_async.notifications import (
    MemoryNotificationStore,
    NotificationStore,
)
from vexora_async.notifications import Notification as CallbackRecord
from vexora_async.testing import (
    CallbackRecorder,
    FakeGateway,
    Fault,
    SandboxApp,
    SandboxConfig,
    SandboxServer,
    SandboxStats,
    Transaction,
    serve_sandbox,
)


REQUEST = PayoutRequest(
    trade_no="PO000000000001",
    amount=100,
    bank_code=BankCode.KBZPAY,
    bank_number="09791234567",
    name="Ko Min Thu",
    notify_url="https://merchant.example/vexora/notify",
)


async def client_calls() -> None:
    """Every call's result type, and the client's own attributes."""
    async with VexoraClient(
        "1000000001", "secret", "https://gateway.example", timeout=10
    ) as client:
        assert_type(client, VexoraClient)
        assert_type(await client.create_payout(REQUEST), PayoutResult)
        assert_type(await client.resolve_payout(REQUEST, deadline=5), PayoutResult)
        assert_type(await client.get_payout("PO1"), PayoutStatus)
        assert_type(await client.get_balance(max_retries=0), Balance)
        deposit = DepositRequest(
            trade_no="PI1", amount=1000, name="Daw Aye", notify_url="https://m.example"
        )
        assert_type(await client.create_deposit(deposit), DepositResult)
        assert_type(await client.get_deposit("PI1"), DepositStatus)
        assert_type(client.http_client, httpx.AsyncClient)
        assert_type(client.retry_policy, RetryPolicy)
        assert_type(client.base_url, str)
        assert_type(client.ledger_key(REQUEST), str)
        assert_type(client.ledger_fingerprint(REQUEST), str)
        entry = await client.ledger.get(client.ledger_key(REQUEST))
        assert_type(entry, LedgerEntry | None)
        if entry is not None:
            assert_type(entry.state, EntryState)


async def results() -> None:
    """Records: Decimal money, statuses that say what they mean."""
    async with VexoraClient("1000000001", "secret", "https://gateway.example") as c:
        result = await c.create_payout(REQUEST)
        assert_type(result.trade_no, str)
        assert_type(result.status, TransactionStatus)
        assert_type(result.status.kind, StatusKind)
        assert_type(result.status.is_success, bool)
        balance = await c.get_balance()
        assert_type(balance.available_amount, Decimal)
        assert_type(REQUEST.amount, Decimal)


async def errors() -> None:
    """The errors a payout's caller handles keep their attributes."""
    async with VexoraClient("1000000001", "secret", "https://gateway.example") as c:
        try:
            await c.create_payout(REQUEST)
        except RequestRejected as exc:
            assert_type(exc.code, str)
            assert_type(exc.msg, str)
        except PayoutOutcomeUnknown as exc:
            assert_type(exc.trade_no, str)
        except HTTPStatusError as exc:
            assert_type(exc.status_code, int)
            assert_type(exc.retry_after, float | None)
        except ClientClosedError as exc:
            assert_type(exc.may_have_executed, bool)
            assert_type(exc.operation, str | None)
        except VexoraError as exc:
            assert_type(exc.trade_no, str | None)
            assert_type(exc.may_have_executed, bool)


async def batch() -> None:
    """The batch API yields outcomes; progress is typed."""
    progress: list[BatchProgress] = []
    async with VexoraClient("1000000001", "secret", "https://gateway.example") as c:
        outcomes = c.create_payouts([REQUEST], on_progress=progress.append)
        assert_type(outcomes, AsyncGenerator[PayoutOutcome, None])
        async with contextlib.aclosing(outcomes) as them:
            async for outcome in them:
                assert_type(outcome.kind, OutcomeKind)
                assert_type(outcome.result, PayoutResult | None)
                assert_type(outcome.request, PayoutRequest)


async def middleware_and_ledgers(path: str) -> None:
    """A middleware is a plain async callable; ledgers are interchangeable."""

    async def timing(
        call: Call, call_next: Callable[[Call], Awaitable[object]]
    ) -> object:
        return await call_next(call)

    async with (
        SQLiteLedger(path) as ledger,
        VexoraClient(
            "1000000001",
            "secret",
            "https://gateway.example",
            middleware=[timing],
            ledger=ledger,
            retry=RetryPolicy(max_retries=3, deadline=45),
        ),
        VexoraClient(
            "1000000001", "secret", "https://gateway.example", ledger=MemoryLedger()
        ),
    ):
        pass


async def callbacks(body: bytes) -> None:
    """Callbacks parse into a union the caller narrows."""
    notification = parse_notification(body, "secret")
    assert_type(notification, Notification)
    if isinstance(notification, PayoutNotification):
        assert_type(notification.amount, Decimal)

    async def handler(notification: Notification, *, already_handled: bool) -> None:
        del notification, already_handled

    receiver = NotificationReceiver("secret", handler)
    assert_type(await receiver.respond(body), ReceiverResponse)
    # One record type, whichever path it is imported by.
    assert_type(notification, CallbackRecord)
    store: NotificationStore = MemoryNotificationStore()
    assert_type(await store.was_handled(notification.dedup_key), bool)


async def ledger_plumbing(ledger: SQLiteLedger) -> None:
    """A ledger's implementer finds its records in vexora_async.ledgers."""
    claim = await ledger.claim("key", "print", lease=60, token=new_token())
    assert_type(claim, Claim)
    assert_type(claim.prior, LedgerEntry | None)


def helpers() -> None:
    """The signing helpers and trade numbers are plain functions."""
    assert_type(sign({"a": "1"}, "secret"), str)
    assert_type(verify({"a": "1"}, "secret", "0" * 32), bool)
    assert_type(canonical_string({"a": "1"}), str)
    assert_type(new_trade_no(), str)
    assert_type(__version__, str)


async def the_sandbox() -> None:
    """The testing package as a user's suite uses it."""
    gateway = FakeGateway(SandboxConfig(settle_delay=None))
    gateway.faults.queue(Fault.drop(), Fault.http_error(503))
    assert_type(gateway.stats, SandboxStats)
    assert_type(gateway.stats.executions["PO1"], int)
    assert_type(gateway.settle("PO1"), Transaction)
    async with SandboxApp(gateway, callback_app=CallbackRecorder()) as app:
        assert_type(await app.drain(), bool)
    async with serve_sandbox(gateway) as url:
        assert_type(url, str)
    with SandboxServer(gateway) as server:
        assert_type(server.url, str)
