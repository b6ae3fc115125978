"""The withdrawals example (docs/examples/withdrawals/) on a real PostgreSQL.

The sandbox gateway comes from the SDK's pytest plugin, over loopback; its
callbacks go, in process, to the service's own API (the notify route).
Each test has a schema of its own, dropped after.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import psycopg_pool
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from prometheus_client import REGISTRY
from vexora_async import Operation, PostgresLedger, VexoraClient, sign
from vexora_async.testing import FakeGateway, Fault, SandboxConfig

from tests.withdrawals_service import (
    EXAMPLE,
    Settings,
    create_app,
    make_client,
    migrate,
    reconciler,
    sender,
    service_database,
)


if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from starlette.types import Receive, Scope, Send


ROOT = Path(__file__).resolve().parent.parent
BODY = {
    "user_id": "u-1",
    "amount": 5000,
    "bank_code": "KBZPAY",
    "bank_number": "09791234567",
    "name": "Ko Min Thu",
}


class Forward:
    """The sandbox's callback app: the service's API, once it exists."""

    def __init__(self) -> None:
        self.app: Any = None
        #: Answer every callback 503, as a receiver that is down would.
        self.down = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve *scope* as the API would."""
        if scope["type"] == "lifespan":  # the service runs its own
            await receive()
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        if self.down:
            await send({"type": "http.response.start", "status": 503, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        await self.app(scope, receive, send)


@pytest.fixture
def vexora_sandbox_config() -> SandboxConfig:
    """Settle fast; retry callbacks fast."""
    return SandboxConfig(settle_delay=0.05, time_scale=0.001)


@pytest.fixture
def forward() -> Forward:
    """Where the sandbox's callbacks go."""
    return Forward()


@pytest.fixture
def vexora_callback_app(forward: Forward) -> Forward:
    """Callbacks to the service's API, in process."""
    return forward


@dataclass
class Service:
    """The service under test, and ways to drive its processes by hand."""

    settings: Settings
    pool: psycopg_pool.AsyncConnectionPool[Any]
    ledger: PostgresLedger
    client: VexoraClient
    http: httpx.AsyncClient
    gateway: FakeGateway
    forward: Forward

    async def post(
        self, key: str = "k-1", body: dict[str, Any] | None = None
    ) -> httpx.Response:
        """POST /withdrawals."""
        return await self.http.post(
            "/withdrawals", json=body or BODY, headers={"Idempotency-Key": key}
        )

    async def send(self, client: VexoraClient | None = None) -> int:
        """One sender round (with another client: its own ledger's)."""
        if client is None:
            client = self.client
        ledger = client.ledger
        assert isinstance(ledger, PostgresLedger)
        return await sender.send_round(self.pool, client, ledger, self.settings)

    async def reconcile(self, settings: Settings | None = None) -> int:
        """One reconciler round."""
        return await reconciler.reconcile_round(
            self.pool, self.client, settings or self.settings
        )

    async def get(self, withdrawal_id: int) -> dict[str, Any]:
        """GET /withdrawals/{id}."""
        response = await self.http.get(f"/withdrawals/{withdrawal_id}")
        assert response.status_code == 200
        found: dict[str, Any] = response.json()
        return found

    async def until(self, withdrawal_id: int, state: str) -> dict[str, Any]:
        """Wait (5 s at most) for the withdrawal to reach *state*."""
        end = time.monotonic() + 5
        while (found := await self.get(withdrawal_id))["state"] != state:
            assert time.monotonic() < end, found
            await asyncio.sleep(0.02)
        return found

    async def events(self, withdrawal_id: int) -> list[tuple[str, str]]:
        """Return the withdrawal's transitions: ``(to_state, source)``."""
        async with self.pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT to_state, source FROM withdrawal_events"
                " WHERE withdrawal_id = %s ORDER BY id",
                (withdrawal_id,),
            )
            return [(row[0], row[1]) for row in await cursor.fetchall()]


@pytest.fixture
async def service(
    vexora_sandbox_url: str, vexora_gateway: FakeGateway, forward: Forward
) -> AsyncIterator[Service]:
    """The service, its API in process, the sandbox on loopback."""
    config = vexora_gateway.config
    async with service_database() as (url, _):
        settings = Settings(
            database_url=url,
            base_url=vexora_sandbox_url,
            merchant_no=config.merchant_no,
            app_secret=config.app_secret,
            notify_url="http://127.0.0.1:9/vexora/payouts/notify",
            deadline=2.0,
            claim_lease=12.0,
            retry_after=0.0,
        )
        pool: psycopg_pool.AsyncConnectionPool[Any] = psycopg_pool.AsyncConnectionPool(
            url, min_size=1, max_size=8, open=False
        )
        async with pool:
            ledger = PostgresLedger(pool)
            async with make_client(settings, ledger) as client:
                app = create_app(settings, pool=pool, client=client)
                async with (
                    app.router.lifespan_context(app),
                    httpx.AsyncClient(
                        transport=httpx.ASGITransport(app=app), base_url="http://api"
                    ) as http,
                ):
                    forward.app = app
                    yield Service(
                        settings, pool, ledger, client, http, vexora_gateway, forward
                    )


async def test_a_payout_is_paid(service: Service) -> None:
    """Posted, sent, accepted, then paid by its callback; the account masked."""
    created = await service.post()
    assert created.status_code == 201
    withdrawal = created.json()
    assert withdrawal["state"] == "new"
    assert withdrawal["bank_number"] == "*******4567"
    assert await service.send() == 1
    paid = await service.until(withdrawal["id"], "paid")
    assert paid["platform_trade_no"]
    assert service.gateway.stats.executions[withdrawal["trade_no"]] == 1
    assert await service.events(withdrawal["id"]) == [
        ("new", "api"),
        ("sending", "sender"),
        ("accepted", "sender"),
        ("paid", "callback"),
    ]
    balance = await service.http.get("/balance")
    assert balance.status_code == 200
    assert balance.json()["available"] == str(10_000_000_000 - 5000)
    metrics = (await service.http.get("/metrics")).text
    assert 'withdrawals_transitions_total{source="callback",state="paid"}' in metrics
    assert "vexora_operation_duration_seconds" in metrics  # the SDK's, by its hook


@pytest.mark.parametrize("refusal", ["balance", "fault"])
async def test_a_payout_rejected_8000_is_failed(service: Service, refusal: str) -> None:
    """The gateway refuses (8000): failed, not paid."""
    if refusal == "balance":  # more than the sandbox's balance
        created = (await service.post(body={**BODY, "amount": 20_000_000_000})).json()
    else:
        created = (await service.post()).json()
        service.gateway.faults.for_trade_no(
            created["trade_no"],
            Fault.rejected("account disabled"),
            operations=Operation.CREATE_PAYOUT,
        )
    await service.send()
    failed = await service.get(created["id"])
    assert failed["state"] == "failed"
    assert failed["failure_code"] == "8000"
    assert created["trade_no"] not in service.gateway.payouts


async def test_a_lost_answer_is_reconciled(service: Service) -> None:
    """Executed, every answer lost: unknown; the reconciler finds it, once."""
    created = (await service.post()).json()
    trade_no = created["trade_no"]
    # The create executes; its answer, every status query and the
    # callbacks are lost.
    service.gateway.faults.for_trade_no(trade_no, *[Fault.drop()] * 50)
    service.forward.down = True
    await service.send()
    assert (await service.get(created["id"]))["state"] == "unknown"
    assert service.gateway.stats.executions[trade_no] == 1
    service.gateway.faults.clear()
    await asyncio.sleep(0.1)  # settled meanwhile
    assert await service.reconcile() == 1
    assert (await service.get(created["id"]))["state"] == "paid"
    assert ("paid", "reconciler") in await service.events(created["id"])
    assert service.gateway.stats.executions[trade_no] == 1


async def test_a_double_click_pays_once(service: Service) -> None:
    """The same key and body twice at once: one withdrawal; another body: 409."""
    first, second = await asyncio.gather(service.post(), service.post())
    assert sorted([first.status_code, second.status_code]) == [200, 201]
    assert first.json()["id"] == second.json()["id"]
    other = await service.post(body={**BODY, "amount": 6000})
    assert other.status_code == 409
    assert await service.send() == 1
    assert await service.send() == 0
    await service.until(first.json()["id"], "paid")
    assert len(service.gateway.payouts) == 1
    async with service.pool.connection() as conn:
        cursor = await conn.execute("SELECT count(*) FROM withdrawals")
        assert await cursor.fetchone() == (1,)


async def test_a_callback_before_the_create_answer(service: Service) -> None:
    """Paid by callback while the create's answer is slow: it stays paid."""
    created = (await service.post()).json()
    service.gateway.faults.for_trade_no(created["trade_no"], Fault.delay(1.0))
    sending = asyncio.create_task(service.send())
    await service.until(created["id"], "paid")  # the callback, sender still waiting
    assert not sending.done()
    await sending
    assert (await service.get(created["id"]))["state"] == "paid"
    assert await service.events(created["id"]) == [
        ("new", "api"),
        ("sending", "sender"),
        ("paid", "callback"),
    ]


def _callback(trade_no: str, amount: str, secret: str) -> bytes:
    fields = {
        "platFormTradeNo": "P1",
        "tradeNo": trade_no,
        "amount": amount,
        "status": "0000",
        "message": "success",
        "timestamp": str(int(time.time() * 1000)),
    }
    fields["sign"] = sign(fields, secret)
    return json.dumps(fields).encode()


async def test_a_forged_callback_is_refused(service: Service) -> None:
    """A wrong sign: 403, nothing stored. Signed but not ours: nothing moves."""
    created = (await service.post()).json()
    trade_no, notify = created["trade_no"], "/vexora/payouts/notify"
    forged = await service.http.post(
        notify, content=_callback(trade_no, "5000", "not-the-secret")
    )
    assert forged.status_code == 403
    secret = service.settings.app_secret
    # Validly signed, but the wrong amount, or a tradeNo we never made.
    for body in (_callback(trade_no, "9000", secret), _callback("XX1", "5000", secret)):
        answer = await service.http.post(notify, content=body)
        assert answer.status_code == 200
        assert answer.text == "OK"
    end = time.monotonic() + 5
    while True:
        async with service.pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT outcome FROM callback_inbox ORDER BY id"
            )
            outcomes = [row[0] for row in await cursor.fetchall()]
        if None not in outcomes or time.monotonic() > end:
            break
        await asyncio.sleep(0.02)
    assert outcomes == ["not ours", "not ours"]
    assert (await service.get(created["id"]))["state"] == "new"


async def test_the_gateway_down_then_up(service: Service) -> None:
    """Gateway unreachable: the row goes back to new, nothing lost; then paid."""
    created = (await service.post()).json()
    down = replace(service.settings, base_url="http://127.0.0.1:9")  # nobody there
    # Another sender process: its own ledger on the same table.
    async with make_client(down, PostgresLedger(service.pool)) as client:
        assert await service.send(client) == 1
        found = await service.get(created["id"])
        assert found["state"] == "new"
        async with service.pool.connection() as conn:
            cursor = await conn.execute("SELECT attempts FROM withdrawals")
            assert await cursor.fetchone() == (1,)
    assert created["trade_no"] not in service.gateway.payouts
    assert await service.send() == 1  # up again: nothing left claimed
    await service.until(created["id"], "paid")
    assert service.gateway.stats.executions[created["trade_no"]] == 1


async def test_a_stale_payout_is_escalated(service: Service) -> None:
    """Still unknown past the limit: escalated, counted, and still resolved."""
    created = (await service.post()).json()
    service.gateway.faults.for_trade_no(created["trade_no"], *[Fault.drop()] * 50)
    service.forward.down = True
    await service.send()
    before = REGISTRY.get_sample_value("withdrawals_escalated_total") or 0.0
    await service.reconcile(replace(service.settings, escalate_after=0.0))
    assert (await service.get(created["id"]))["state"] == "escalated"
    assert REGISTRY.get_sample_value("withdrawals_escalated_total") == before + 1
    service.gateway.faults.clear()
    await service.reconcile()
    await service.until(created["id"], "paid")
    assert service.gateway.stats.executions[created["trade_no"]] == 1


async def test_an_escalated_acceptance_closes_when_settled(service: Service) -> None:
    """Accepted, processing past the limit: escalated; paid once it settles."""
    body = {**BODY, "bank_number": "09791230015"}  # the sandbox keeps it processing
    created = (await service.post(body=body)).json()
    service.forward.down = True  # its callback is lost
    await service.send()
    assert (await service.get(created["id"]))["state"] == "accepted"
    overdue = replace(service.settings, stale_after=0.0, escalate_after=0.0)
    await service.reconcile(overdue)
    assert (await service.get(created["id"]))["state"] == "escalated"
    service.gateway.settle(created["trade_no"])
    await service.reconcile(overdue)
    assert (await service.get(created["id"]))["state"] == "paid"


async def test_a_send_is_traced(service: Service) -> None:
    """The sender's client carries the SDK's OpenTelemetry hook: one span a call."""
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    created = (await service.post()).json()
    ledger = PostgresLedger(service.pool)
    async with make_client(
        service.settings, ledger, tracer_provider=provider
    ) as client:
        assert await service.send(client) == 1
    provider.shutdown()
    [span] = [s for s in spans.get_finished_spans() if s.name == "vexora.create_payout"]
    assert span.attributes is not None
    assert created["trade_no"] in span.attributes.values()


async def test_the_migrations_run_once(service: Service) -> None:
    """Migrating again applies nothing."""
    async with service.pool.connection() as conn:
        assert await migrate(conn) == []


@pytest.mark.subprocess
async def test_one_command_runs_it_all(tmp_path: Path) -> None:
    """``python -m withdrawals dev``: migrations, API, senders, a sandbox."""
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    api = f"http://127.0.0.1:{port}"
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("VEXORA_", "WITHD"))
    }
    async with service_database() as (url, _):
        env |= {
            "PYTHONPATH": os.pathsep.join([str(EXAMPLE), str(ROOT)]),
            "DATABASE_URL": url,
            "WITHDRAWALS_PORT": str(port),
            "WITHDRAWALS_NOTIFY_URL": f"{api}/vexora/payouts/notify",
        }
        with (tmp_path / "dev.log").open("wb") as log:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "withdrawals", "dev", env=env, stderr=log
            )
        try:
            async with httpx.AsyncClient(base_url=api) as http:
                end = time.monotonic() + 30
                while True:  # until the API listens
                    with contextlib.suppress(httpx.TransportError):
                        created = await http.post(
                            "/withdrawals", json=BODY, headers={"Idempotency-Key": "d"}
                        )
                        break
                    assert time.monotonic() < end, (tmp_path / "dev.log").read_text()
                    await asyncio.sleep(0.1)
                assert created.status_code == 201
                withdrawal_id = created.json()["id"]
                while (await http.get(f"/withdrawals/{withdrawal_id}")).json()[
                    "state"
                ] != "paid":  # the sandbox's callback
                    assert time.monotonic() < end, (tmp_path / "dev.log").read_text()
                    await asyncio.sleep(0.05)
        finally:
            proc.send_signal(signal.SIGINT)
            assert await proc.wait() == 0, (tmp_path / "dev.log").read_text()
