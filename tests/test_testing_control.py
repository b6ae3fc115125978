"""Tests for the sandbox's control and stats endpoints (``/_sandbox/``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx
import pytest
from vexora_async import Operation, PayoutOutcomeUnknown, VexoraClient

from tests.helpers import ONE_EXCHANGE, in_process_client, make_deposit, make_payout


if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from vexora_async.testing import FakeGateway, SandboxApp


@pytest.fixture
async def control(sandbox: SandboxApp) -> AsyncIterator[httpx.AsyncClient]:
    """Yield an HTTP client for the control endpoints, under a base-URL prefix."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=sandbox),
        base_url="http://127.0.0.1/myanmar/_sandbox",
    ) as http:
        yield http


async def test_stats_count_executions_per_trade_no(
    control: httpx.AsyncClient, sandbox_client: VexoraClient
) -> None:
    """Stats show executions per tradeNo, requests, balance; nothing doubled."""
    await sandbox_client.create_payout(make_payout(trade_no="K1", amount=700))
    response = await control.get("/stats")
    assert response.status_code == 200
    stats = response.json()
    assert stats["executions"] == {"K1": 1}
    assert stats["double_executions"] == []
    assert stats["requests"] == {Operation.CREATE_PAYOUT.path: 1}
    assert stats["balance"]["frozen"] == "700"
    assert stats["pending_faults"] == 0


async def test_settle_a_payout_now(
    control: httpx.AsyncClient, sandbox_client: VexoraClient, gateway: FakeGateway
) -> None:
    """POST .../settle makes a processing payout final, by default success."""
    await sandbox_client.create_payout(make_payout(trade_no="K2"))
    await sandbox_client.create_payout(make_payout(trade_no="K3"))
    settled = await control.post("/payouts/K2/settle")
    assert settled.status_code == 200
    assert settled.json()["status"] == "0000"
    failed = await control.post("/payouts/K3/settle", json={"status": "00029"})
    assert failed.json()["status"] == "00029"
    assert (await sandbox_client.get_payout("K2")).status.is_success
    assert gateway.payouts["K3"].status.is_failed
    again = await control.post("/payouts/K2/settle")
    assert again.status_code == 409
    assert "already final" in again.json()["error"]


async def test_one_payout_and_one_deposit(
    control: httpx.AsyncClient, sandbox_client: VexoraClient
) -> None:
    """GET a transaction by tradeNo; deposits settle the same way."""
    await sandbox_client.create_payout(make_payout(trade_no="K4", amount=250))
    payout: dict[str, Any] = (await control.get("/payouts/K4")).json()
    assert payout["status"] == "0015"
    assert payout["amount"] == "250"
    assert payout["executions"] == 1
    assert payout["callback_attempts"] == 0
    await sandbox_client.create_deposit(make_deposit(trade_no="D4"))
    settled = await control.post("/deposits/D4/settle", json={"status": "0001"})
    assert settled.json()["kind"] == "deposit"
    assert settled.json()["status"] == "0001"


async def test_inject_a_fault(
    control: httpx.AsyncClient, sandbox: SandboxApp, gateway: FakeGateway
) -> None:
    """POST /faults queues faults that a client then meets; DELETE clears."""
    queued = await control.post(
        "/faults",
        json={"fault": "system_error", "operation": "create_payout", "count": 2},
    )
    assert queued.json() == {"pending": 2}
    async with in_process_client(sandbox, ONE_EXCHANGE) as raw:
        with pytest.raises(PayoutOutcomeUnknown):
            await raw.create_payout(make_payout(trade_no="K5"))
    assert gateway.stats.executions["K5"] == 1
    aimed = await control.post(
        "/faults", json={"fault": "http_error", "status": 502, "trade_no": "K6"}
    )
    assert aimed.json() == {"pending": 2}
    cleared = await control.delete("/faults")
    assert cleared.json() == {"pending": 0}
    stats = (await control.get("/stats")).json()
    assert stats["faults"] == {"system_error": 1}


@pytest.mark.parametrize(
    "spec",
    [
        {"fault": "delay", "seconds": 0.01},
        {"fault": "rate_limited", "seconds": 1},
        {"fault": "drop", "executed": False},
        {"fault": "garbage"},
        {"fault": "http_error", "status": 503},
        {"fault": "rejected", "message": "account disabled"},
    ],
    ids=lambda spec: spec["fault"],
)
async def test_every_fault_kind_can_be_queued(
    control: httpx.AsyncClient, spec: dict[str, Any]
) -> None:
    """Each fault kind is accepted with its options."""
    response = await control.post("/faults", json=spec)
    assert response.status_code == 200, response.text
    assert response.json() == {"pending": 1}


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "error"),
    [
        ("GET", "/nothing", None, 404, "no such control endpoint"),
        ("POST", "/stats", None, 405, "use GET"),
        ("GET", "/payouts/NOPE", None, 404, "no payout 'NOPE'"),
        ("POST", "/payouts/NOPE/settle", None, 404, "no payout"),
        ("PUT", "/faults", None, 405, "use POST"),
        ("POST", "/faults", b"[1]", 400, "JSON object"),
        ("POST", "/faults", b"{", 400, "JSON object"),
        ("POST", "/faults", b'{"fault": "meteor"}', 400, "fault must be one of"),
        ("POST", "/faults", b'{"fault": "drop", "count": 0}', 400, "count must"),
        ("POST", "/faults", b'{"fault": "drop", "count": "2"}', 400, "integer"),
        ("POST", "/faults", b'{"fault": "drop", "executed": 1}', 400, "true or"),
        ("POST", "/faults", b'{"fault": "drop", "operation": "x"}', 400, "operation"),
        ("POST", "/faults", b'{"fault": "http_error", "status": 200}', 400, "status"),
        ("POST", "/faults", b'{"fault": "delay", "seconds": "x"}', 400, "invalid"),
    ],
)
async def test_mistakes_are_explained(  # noqa: PLR0917 - parametrized
    control: httpx.AsyncClient,
    method: str,
    path: str,
    body: bytes | None,
    status: int,
    error: str,
) -> None:
    """A wrong request gets a 4xx with an error message, never a crash."""
    response = await control.request(method, path, content=body)
    assert response.status_code == status
    assert error in response.json()["error"]


async def test_a_settle_with_a_processing_status_is_refused(
    control: httpx.AsyncClient, sandbox_client: VexoraClient
) -> None:
    """Settling to 0015 is not settling."""
    await sandbox_client.create_payout(make_payout(trade_no="K7"))
    response = await control.post("/payouts/K7/settle", json={"status": "0015"})
    assert response.status_code == 400


async def test_control_requests_are_not_gateway_requests(
    control: httpx.AsyncClient, gateway: FakeGateway
) -> None:
    """The control endpoints need no sign and do not show in the stats."""
    await control.get("/stats")
    assert not gateway.stats.requests
    assert not gateway.stats.rejections
