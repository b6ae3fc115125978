"""The core calls with no extra installed (``nox -s minimal``).

Run as a script in a virtualenv that has vexora-async and its core
dependencies only. It fails if an optional dependency is installed (the
check would prove nothing) or if any core call needs one: the sandbox
runs in process through ``httpx.ASGITransport``, callbacks go to the SDK's
own receiver in process, and the idempotency ledger is SQLite.
"""

from __future__ import annotations

import asyncio
import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
from vexora_async import (
    BankCode,
    DepositRequest,
    Notification,
    NotificationReceiver,
    OutcomeKind,
    PayoutRequest,
    SQLiteLedger,
    VexoraClient,
)
from vexora_async.testing import FakeGateway, SandboxApp, SandboxConfig


OPTIONAL = ("aiohttp", "orjson", "pytest", "pytest_asyncio", "rich", "uvicorn")
NOTIFY_URL = "http://127.0.0.1:9/vexora/notify"


def payout(trade_no: str, account: str = "09791234567") -> PayoutRequest:
    """Return a payout request to the sandbox."""
    return PayoutRequest(
        trade_no=trade_no,
        amount=25_000,
        bank_code=BankCode.KBZPAY,
        bank_number=account,
        name="Ko Min Thu",
        notify_url=NOTIFY_URL,
    )


async def core_calls(ledger_path: Path) -> None:
    """Run every call of the client against the sandbox in process."""
    notified: list[Notification] = []

    async def handler(notification: Notification, *, already_handled: bool) -> None:
        if not already_handled:
            notified.append(notification)

    gateway = FakeGateway(SandboxConfig(settle_delay=None, time_scale=0.001))
    config = gateway.config
    receiver = NotificationReceiver(config.app_secret, handler)
    async with (
        SandboxApp(gateway, callback_app=receiver) as app,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as http,
        SQLiteLedger(ledger_path) as ledger,
        VexoraClient(
            config.merchant_no,
            config.app_secret,
            "http://127.0.0.1/sandbox",
            http_client=http,
            ledger=ledger,
        ) as client,
    ):
        balance = await client.get_balance()
        assert balance.available_amount == config.initial_balance, balance

        accepted = await client.create_payout(payout("SMOKE-P1"))
        assert accepted.status.is_processing, accepted
        gateway.settle("SMOKE-P1")
        status = await client.get_payout("SMOKE-P1")
        assert status.status.is_success, status
        again = await client.resolve_payout(payout("SMOKE-P1"))
        assert again.trade_no == "SMOKE-P1", again

        deposit = await client.create_deposit(
            DepositRequest(
                trade_no="SMOKE-D1", amount=1000, name="Daw Aye", notify_url=NOTIFY_URL
            )
        )
        assert deposit.trade_no == "SMOKE-D1", deposit
        gateway.settle_deposit("SMOKE-D1")
        assert (await client.get_deposit("SMOKE-D1")).status.is_success

        requests = [payout(f"SMOKE-B{i:03d}") for i in range(20)]
        kinds = [o.kind async for o in client.create_payouts(requests, concurrency=4)]
        assert kinds == [OutcomeKind.ACCEPTED] * 20, kinds

        assert await app.drain(10), "callbacks still in flight"
    assert {n.trade_no for n in notified} == {"SMOKE-P1", "SMOKE-D1"}, notified
    assert gateway.stats.max_executions == 1


def command_line() -> None:
    """``python -m vexora_async`` works; the commands that need extras say so."""

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603 - our own interpreter and arguments
            [sys.executable, "-m", "vexora_async", *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    assert run("--help").returncode == 0
    demo = run("demo", "--count", "1")
    assert demo.returncode == 2, demo
    assert "pip install 'vexora-async[demo]'" in demo.stdout + demo.stderr, demo
    sandbox = run("sandbox", "--port", "0")
    assert sandbox.returncode == 1, sandbox
    assert "vexora-async[sandbox]" in sandbox.stderr, sandbox


def main() -> None:
    """Check that no extra is installed, then run the calls."""
    present = [name for name in OPTIONAL if importlib.util.find_spec(name)]
    assert not present, f"optional packages installed: {present}"
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(core_calls(Path(tmp) / "ledger.sqlite3"))
    command_line()
    print("no-extras smoke test: every core call passed")  # noqa: T201 - a script


if __name__ == "__main__":
    main()
