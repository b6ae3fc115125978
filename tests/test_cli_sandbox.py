"""Tests for ``python -m vexora_async sandbox``."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import sys
from pathlib import Path

import httpx
import pytest
from vexora_async import VexoraClient
from vexora_async._cli import build_parser, main
from vexora_async._cli.sandbox import banner
from vexora_async.testing import (
    DEFAULT_SETTLE_DELAY,
    SANDBOX_APP_SECRET,
    SANDBOX_MERCHANT_NO,
    SandboxConfig,
)

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


@pytest.mark.subprocess
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
        lines: list[str] = []
        while not lines or not lines[-1].startswith("Press Ctrl-C"):
            line = await asyncio.wait_for(process.stdout.readline(), 30)
            assert line, lines
            lines.append(line.decode())
        match = re.search(r"base_url +(http://127\.0\.0\.1:\d+)\n", "".join(lines))
        assert match, lines
        url = match.group(1)
        async with VexoraClient(SANDBOX_MERCHANT_NO, SANDBOX_APP_SECRET, url) as client:
            result = await client.create_payout(make_payout())
            balance = await client.get_balance()
        async with httpx.AsyncClient(base_url=f"{url}/_sandbox") as http:
            stats = (await http.get("/stats")).json()
    finally:
        process.send_signal(signum)
        await asyncio.wait_for(process.communicate(), 10)
    assert result.status == "0015"
    assert balance.freeze_amount == 100
    assert stats["executions"] == {make_payout().trade_no: 1}
    assert process.returncode == 0
    printed = "".join(lines)
    assert f"merchant_no  {SANDBOX_MERCHANT_NO}" in printed
    assert f"app_secret   {SANDBOX_APP_SECRET}" in printed
    assert "settles      0.5 s after acceptance" in printed


def test_banner_does_not_echo_a_secret_given_on_the_command_line() -> None:
    """Only the public sandbox secret is printed."""
    args = argparse.Namespace(
        app_secret="my-own-secret",
        merchant_no="2000000002",
        settle_delay=None,
    )
    text = banner("http://127.0.0.1:8090", args)
    assert "my-own-secret" not in text
    assert "(as given to --app-secret)" in text
    assert "settles      only through the control endpoint" in text
    assert "POST http://127.0.0.1:8090/_sandbox/payouts/<tradeNo>/settle" in text


@pytest.mark.parametrize(
    ("given", "expected"), [("never", None), ("0", 0.0), ("2.5", 2.5)]
)
def test_settle_delay_takes_seconds_or_never(
    given: str, expected: float | None
) -> None:
    """``--settle-delay never`` leaves settling to the control endpoint."""
    parser = build_parser()
    args = parser.parse_args(["sandbox", "--settle-delay", given])
    assert args.settle_delay == expected


def test_settle_delay_default_is_the_class_default() -> None:
    """The CLI, SandboxConfig and the fixtures settle after the same delay."""
    args = build_parser().parse_args(["sandbox"])
    assert args.settle_delay == DEFAULT_SETTLE_DELAY == SandboxConfig().settle_delay


def test_settle_delay_refuses_words(capsys: pytest.CaptureFixture[str]) -> None:
    """Anything but seconds or 'never' is a usage error."""
    with pytest.raises(SystemExit):
        build_parser().parse_args(["sandbox", "--settle-delay", "soon"])
    assert "'never'" in capsys.readouterr().err


@pytest.mark.subprocess
async def test_sandbox_stops_cleanly_on_a_signal_right_after_its_banner() -> None:
    """A SIGTERM sent the moment the banner is read still stops it with 0."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "vexora_async",
        "sandbox",
        "--port",
        "0",
        stdout=asyncio.subprocess.PIPE,
        env=env,
    )
    assert process.stdout is not None
    line = b""
    while not line.startswith(b"Press Ctrl-C"):
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        assert line, "the sandbox ended before its banner"
    process.send_signal(signal.SIGTERM)
    await asyncio.wait_for(process.communicate(), 10)
    assert process.returncode == 0
