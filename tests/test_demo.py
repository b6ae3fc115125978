"""Tests for the demo: it runs, accounts for everything, and says so."""

from __future__ import annotations

import logging

import pytest
from vexora_async._cli import main


def test_demo_accounts_for_every_payout(capsys: pytest.CaptureFixture[str]) -> None:
    """A small run with many faults ends with nothing unknown, nothing doubled."""
    code = main(["demo", "--count", "150", "--fault-rate", "0.2", "--seed", "7"])
    out = capsys.readouterr().out
    assert code == 0, out
    rows = {
        line.split("│")[1].strip(): line.split("│")[2].strip()
        for line in out.splitlines()
        if line.count("│") == 3
    }
    assert rows["payouts sent"] == "150"
    assert rows["still unknown"] == "0"
    assert rows["double executions"] == "0"
    assert rows["bad signatures"] == "0"
    assert rows["money accounted for"] == "yes"
    verified, expected = rows["callbacks verified"].split(" of ")
    assert verified == expected
    succeeded = int(rows["succeeded (callback 0000)"])
    failed = int(rows["failed (callback 00029)"])
    assert succeeded + failed == int(expected)
    assert int(rows["faults injected"]) > 0
    assert int(rows["deliveries retried by the gateway"]) > 0


@pytest.mark.parametrize(
    "argv",
    [["--count", "0"], ["--concurrency", "0"], ["--fault-rate", "2"]],
)
def test_demo_refuses_bad_knobs(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Nonsense knobs are reported with exit status 2."""
    assert main(["demo", *argv]) == 2
    assert "error" in capsys.readouterr().out


def test_demo_leaves_logging_as_it_found_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The demo silences the SDK's warnings only while it runs."""
    sdk_logger = logging.getLogger("vexora_async")
    before = (sdk_logger.propagate, list(sdk_logger.handlers))
    assert main(["demo", "--count", "20", "--fault-rate", "0.3"]) == 0
    assert "outcome unknown" not in capsys.readouterr().err
    assert (sdk_logger.propagate, list(sdk_logger.handlers)) == before
