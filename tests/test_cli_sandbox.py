"""Tests for ``python -m vexora_async sandbox``."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

import pytest
from vexora_async import VexoraClient
from vexora_async._cli import main
from vexora_async.testing import SANDBOX_APP_SECRET, SANDBOX_MERCHANT_NO

from tests.helpers import make_payout


ROOT = Path(__file__).resolve().parent.parent


def test_sandbox_refuses_a_non_loopback_host(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The sandbox only listens on loopback."""
    assert main(["sandbox", "--host", "0.0.0.0", "--port", "0"]) == 1  # noqa: S104 - refused on purpose
    assert "loopback" in capsys.readouterr().err


def test_sandbox_refuses_bad_settings(capsys: pytest.CaptureFixture[str]) -> None:
    """Invalid settings are reported, not raised."""
    assert main(["sandbox", "--time-scale", "0"]) == 2
    assert "time_scale" in capsys.readouterr().err


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=str)
async def test_sandbox_subcommand_serves_a_client(signum: signal.Signals) -> None:
    """``python -m vexora_async sandbox --port 0`` serves until told to stop.

    It stops on SIGINT even when started with SIGINT ignored (as a
    background job is), and on SIGTERM.
    """
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "vexora_async",
        "sandbox",
        "--port",
        "0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        # A background job's children start with SIGINT ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    try:
        assert process.stdout is not None
        first = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        match = re.search(r"http://127\.0\.0\.1:\d+", first)
        assert match, first
        async with VexoraClient(
            SANDBOX_MERCHANT_NO, SANDBOX_APP_SECRET, match.group()
        ) as client:
            result = await client.create_payout(make_payout())
            balance = await client.get_balance()
    finally:
        process.send_signal(signum)
        await asyncio.wait_for(process.communicate(), 10)
    assert result.status == "0015"
    assert balance.freeze_amount == 100
    assert process.returncode == 0
