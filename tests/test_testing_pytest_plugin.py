"""Tests for the pytest plugin: a user's suite gets a sandbox and a client.

Each test runs pytest in a subprocess on a small suite, with plugin
autoloading off and the plugin named explicitly, so that the result does
not depend on whether the entry point is installed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest


# Each test runs pytest in a subprocess: left out of the fast tier.
pytestmark = pytest.mark.subprocess
ROOT = Path(__file__).resolve().parent.parent
USER_SUITE = """
from vexora_async import PayoutRequest, RequestRejected
from vexora_async.testing import Fault, CallbackRecorder

import pytest

def payout(trade_no, notify_url="http://127.0.0.1:9/notify"):
    return PayoutRequest(
        trade_no=trade_no, amount=1500, bank_code="WAVEPAY",
        bank_number="09123456789", name="Ma Hnin", notify_url=notify_url,
    )

@pytest.fixture
def vexora_callback_app():
    return CallbackRecorder()

async def test_in_process(vexora_client, vexora_gateway, vexora_sandbox,
                          vexora_callback_app):
    result = await vexora_client.create_payout(payout("U1"))
    assert result.status == "0015"
    vexora_gateway.settle("U1")
    assert (await vexora_client.get_payout("U1")).status == "0000"
    assert await vexora_sandbox.drain(5)
    assert vexora_callback_app.verified_trade_nos == {"U1"}

async def test_faults_are_settled_as_in_production(vexora_client, vexora_gateway):
    vexora_gateway.faults.queue(Fault.system_error(executed=False), Fault.drop())
    result = await vexora_client.create_payout(payout("U2"))
    assert result.status == "0015"
    assert vexora_gateway.stats.executions["U2"] == 1

async def test_socket(vexora_socket_client, vexora_sandbox_url, vexora_gateway):
    assert vexora_sandbox_url.startswith("http://127.0.0.1:")
    vexora_gateway.faults.queue(Fault.http_error(503))
    await vexora_socket_client.create_payout(payout("S1"))
    assert vexora_gateway.stats.executions["S1"] == 1
"""

#: A second file that overrides the retry policy to see faults raw.
USER_RAW_SUITE = """
from vexora_async import PayoutOutcomeUnknown, PayoutRequest, RequestRejected
from vexora_async import RetryPolicy
from vexora_async.testing import Fault

import pytest

@pytest.fixture
def vexora_retry_policy():
    return RetryPolicy(max_retries=0, reconcile=False, verify_rejections=False)

async def test_one_exchange_shows_the_fault(vexora_client, vexora_gateway):
    vexora_gateway.faults.queue(Fault.system_error(executed=False))
    request = PayoutRequest(
        trade_no="R1", amount=1500, bank_code="KBZPAY",
        bank_number="09123456789", name="Ma Hnin",
        notify_url="http://127.0.0.1:9/notify",
    )
    with pytest.raises(PayoutOutcomeUnknown, match="5000"):
        await vexora_client.create_payout(request)
    with pytest.raises(RequestRejected):
        await vexora_client.get_payout("R1")
    assert vexora_gateway.stats.executions["R1"] == 0
"""

CONFTEST_WITHOUT_UVICORN = """
import sys
sys.modules["uvicorn"] = None  # as if it were not installed
"""


def run_suite(tmp_path: Path, *, without_uvicorn: bool = False) -> str:
    """Run the user suite under the plugin; return pytest's output."""
    (tmp_path / "test_user.py").write_text(textwrap.dedent(USER_SUITE))
    (tmp_path / "test_user_raw.py").write_text(textwrap.dedent(USER_RAW_SUITE))
    if without_uvicorn:
        (tmp_path / "conftest.py").write_text(CONFTEST_WITHOUT_UVICORN)
    env = {
        **os.environ,
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    completed = subprocess.run(  # noqa: S603 - our own interpreter and arguments
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "pytest_asyncio.plugin",
            "-p",
            "vexora_async.testing.pytest_plugin",
            "-o",
            "asyncio_mode=auto",
            "-o",
            "asyncio_default_fixture_loop_scope=function",
            "-q",
            "-rs",
            "-W",
            "error",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
        check=False,
    )
    return completed.stdout + completed.stderr


def test_fixtures_give_a_suite_a_sandbox_and_clients(tmp_path: Path) -> None:
    """In process and over a socket, the fixtures work in someone else's suite.

    The clients retry and reconcile faults as the SDK does by default; a
    file that overrides ``vexora_retry_policy`` sees one raw exchange.
    """
    output = run_suite(tmp_path)
    assert "4 passed" in output, output


def test_socket_fixture_skips_without_uvicorn(tmp_path: Path) -> None:
    """Without uvicorn the plugin still loads; only the socket test skips."""
    output = run_suite(tmp_path, without_uvicorn=True)
    assert "3 passed, 1 skipped" in output, output
    assert "needs uvicorn" in output
