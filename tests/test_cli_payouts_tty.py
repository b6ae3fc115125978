"""``vexora payouts send`` on a real terminal (pexpect): the operator confirms."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

import pexpect
import pytest

from tests.cli_payouts_helpers import (
    NOTIFY,
    Sandbox,
    payout_rows,
    read_report,
    sandbox,
    write_csv,
)


if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


pytestmark = pytest.mark.subprocess


@pytest.fixture(scope="module")
def box() -> Iterator[Sandbox]:
    """A sandbox shared by the module."""
    with sandbox() as running:
        yield running


def _spawn(box: Sandbox, path: Path) -> pexpect.spawn[str]:
    return pexpect.spawn(
        sys.executable,
        ["-m", "vexora_async", "payouts", "send", str(path), "--notify-url", NOTIFY],
        env=box.env(),
        encoding="utf-8",
        timeout=30,
    )


def test_the_total_typed_wrong_then_right_sends(box: Sandbox, tmp_path: Path) -> None:
    """A wrong total asks again; the right one (with separators) sends."""
    path = write_csv(tmp_path / "tty.csv", payout_rows(2, prefix="TTY"))
    child = _spawn(box, path)
    child.expect_exact("Type the total to send (2,001) to go on")
    child.sendline("2000")
    child.expect_exact("'2000' is not the total (2,001).")
    assert box.executions().get("TTY00000") is None
    child.expect_exact("Type the total to send (2,001) to go on")
    child.sendline("2,001")
    child.expect_exact("Report: ")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    assert {r["outcome"] for r in read_report(tmp_path / "tty.report.csv")} == {
        "accepted"
    }
    assert box.executions()["TTY00000"] == 1


def test_enter_declines_and_sends_nothing(box: Sandbox, tmp_path: Path) -> None:
    """An empty answer is a no: status 3, nothing sent, no report."""
    path = write_csv(tmp_path / "no.csv", payout_rows(1, prefix="TTYNO"))
    child = _spawn(box, path)
    child.expect_exact("Type the total to send (1,000) to go on")
    child.sendline("")
    child.expect_exact("Declined: nothing was sent.")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 3
    assert "TTYNO00000" not in box.executions()
    assert not (tmp_path / "no.report.csv").exists()


def test_ctrl_c_at_the_question_sends_nothing(box: Sandbox, tmp_path: Path) -> None:
    """Ctrl-C instead of an answer: 130, a plain message, no traceback."""
    path = write_csv(tmp_path / "q.csv", payout_rows(1, prefix="TTYQ"))
    child = _spawn(box, path)
    child.expect_exact("Type the total to send (1,000) to go on")
    child.sendintr()
    child.expect_exact("Interrupted: nothing was sent.")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 130
    assert "Traceback" not in (child.before or "")
    assert "TTYQ00000" not in box.executions()


def test_ctrl_c_on_the_terminal_stops_and_reports(box: Sandbox, tmp_path: Path) -> None:
    """Ctrl-C typed while the progress bar runs: 130, and a full report."""
    path = write_csv(tmp_path / "ctrlc.csv", payout_rows(800, prefix="CC"))
    child = _spawn(box, path)
    child.expect_exact("Type the total to send (1,119,600) to go on")
    child.sendline("1119600")
    child.expect_exact("Sending 800 rows")
    time.sleep(0.3)
    child.sendintr()
    child.expect_exact("Interrupted: finishing the rows in flight")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 130
    report = read_report(tmp_path / "ctrlc.report.csv")
    assert len(report) == 800
    accepted = {r["trade_no"] for r in report if r["outcome"] == "accepted"}
    assert {r["outcome"] for r in report} == {"accepted", "not_sent"}
    assert set(box.executions()) >= accepted
    assert not {t for t in box.executions() if t.startswith("CC")} - accepted
