"""End-to-end tests of ``vexora payouts``: the CLI and ``vexora sandbox``, as processes.

What an operator would see and what the gateway would do: each test runs
the command line in a subprocess against a sandbox in another, and judges
exactly-once by the sandbox's own stats (``/_sandbox/stats``).
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import time
from decimal import Decimal
from typing import TYPE_CHECKING

import pytest

from tests.cli_payouts_helpers import (
    NOTIFY,
    Sandbox,
    cli_command,
    payout_rows,
    read_report,
    run_cli,
    sandbox,
    write_csv,
)


if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


pytestmark = pytest.mark.subprocess


@pytest.fixture(scope="module")
def box() -> Iterator[Sandbox]:
    """A sandbox without faults, shared by the module (tradeNos are unique)."""
    with sandbox() as running:
        yield running


def send(
    box: Sandbox, path: Path, *extra: str, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run ``vexora payouts send PATH --yes --notify-url ...``."""
    return run_cli(
        box,
        "payouts",
        "send",
        str(path),
        "--yes",
        "--notify-url",
        NOTIFY,
        *extra,
        **env,
    )


def test_every_kind_of_bad_row_is_reported_and_nothing_is_sent(
    box: Sandbox, tmp_path: Path
) -> None:
    """Each bad row is named by line and column; not one payout is sent."""
    path = tmp_path / "bad.csv"
    path.write_bytes(
        b"trade_no,amount,bank_code,bank_number,name\n"
        b"BAD1,12.5,KBZPAY,0912345,Ko\n"  # not whole kyat
        b"BAD2,150000,KPZPAY,0912345,Ko\n"  # unknown bank
        b"BAD3,150000,WAVEPAY,,Ko\n"  # empty cell
        b"BAD1,150000,WAVEPAY,0955,Ma\xff\n"  # repeated tradeNo, not UTF-8
        b"BAD5,1000,KBZPAY,0912345\n"  # a cell short
        b"GOOD,1000,KBZPAY,0912399,U Ba\n"
    )
    done = send(box, path)
    assert done.returncode == 2, done.stderr
    err = done.stderr
    assert "line 2, column amount: error: must be a whole number of kyat" in err
    assert "line 3, column bank_code: error: unknown code 'KPZPAY'" in err
    assert "line 4, column bank_number: error: must not be empty" in err
    assert "line 5, column name: error: not UTF-8" in err
    assert "line 2, column trade_no: error: 'BAD1' appears on lines 2, 5" in err
    assert "line 5, column trade_no: error: 'BAD1' appears on lines 2, 5" in err
    assert "line 6: error: has 4 cells where the header has 5 columns" in err
    assert "nothing was sent: 5 of 6 rows are invalid" in err
    assert not any(t.startswith(("BAD", "GOOD")) for t in box.executions())
    assert not (tmp_path / "bad.report.csv").exists()


def test_a_missing_column_is_reported_and_nothing_is_sent(
    box: Sandbox, tmp_path: Path
) -> None:
    """A header without a required column is refused before anything else."""
    path = tmp_path / "nocol.csv"
    path.write_text("trade_no,amount,bank_code,name\nNOCOL1,1000,KBZPAY,Ko\n")
    done = send(box, path)
    assert done.returncode == 2
    assert "line 1, column bank_number: error: required column is missing" in (
        done.stderr
    )
    assert "NOCOL1" not in box.executions()


def test_skip_invalid_sends_the_rest_and_reports_every_row(
    box: Sandbox, tmp_path: Path
) -> None:
    """With --skip-invalid the counts add up and every row is in the report."""
    rows = payout_rows(4, prefix="SKIP")
    rows[1]["amount"] = "1,000"  # a spreadsheet's thousands separator
    path = write_csv(tmp_path / "skip.csv", rows)
    done = send(box, path, "--skip-invalid")
    assert done.returncode == 0, done.stderr
    assert "line 3, column amount: error: '1,000' is not an amount" in done.stderr
    assert "To send       3 rows, total 3,005 MMK" in done.stdout
    assert "Invalid       1 (skipped: --skip-invalid)" in done.stdout
    report = read_report(tmp_path / "skip.report.csv")
    assert [r["trade_no"] for r in report] == [r["trade_no"] for r in rows]
    assert [r["outcome"] for r in report] == [
        "accepted",
        "invalid",
        "accepted",
        "accepted",
    ]
    assert report[0]["employee"] == "E-0"  # unknown columns are kept
    assert "SKIP00001" not in box.executions()
    summary = json.loads((tmp_path / "skip.report.json").read_text())
    assert (summary["rows"], summary["accepted"], summary["invalid"]) == (4, 3, 1)


def test_a_rerun_sends_nothing_again_and_a_changed_row_is_refused(
    box: Sandbox, tmp_path: Path
) -> None:
    """Accepted rows are never sent again; a new amount for a trade_no is refused."""
    rows = payout_rows(3, prefix="AGAIN")
    path = write_csv(tmp_path / "again.csv", rows)
    assert send(box, path).returncode == 0
    again = send(box, path)
    assert again.returncode == 0
    assert "Already done  3 (accepted 3, rejected 0)" in again.stdout
    assert "Nothing to send." in again.stdout
    rows[2]["amount"] = "999999"
    write_csv(path, rows)
    changed = send(box, path)
    assert changed.returncode == 2, changed.stdout
    assert (
        "line 4, column trade_no: error: 'AGAIN00002' was already sent with another "
        "payload: amount (sent as 1002, now 999999) changed" in changed.stderr
    )
    executions = box.executions()
    assert [executions[r["trade_no"]] for r in rows] == [1, 1, 1]


def test_no_terminal_and_no_yes_is_refused(box: Sandbox, tmp_path: Path) -> None:
    """Without a terminal to confirm on, --yes is needed; nothing is sent."""
    path = write_csv(tmp_path / "noyes.csv", payout_rows(1, prefix="NOYES"))
    done = run_cli(box, "payouts", "send", str(path), "--notify-url", NOTIFY)
    assert done.returncode == 2
    assert "confirm on a terminal" in done.stderr
    assert "NOYES00000" not in box.executions()


def test_dry_run_and_guards_send_nothing(box: Sandbox, tmp_path: Path) -> None:
    """--dry-run stops after the summary; --max-total and --max-row refuse."""
    path = write_csv(tmp_path / "guard.csv", payout_rows(2, prefix="GUARD"))
    dry = send(box, path, "--dry-run")
    assert dry.returncode == 0
    assert "Dry run: nothing was sent." in dry.stdout
    assert "Balance       " in dry.stdout
    assert "Gateway       127.0.0.1:" in dry.stdout
    over = send(box, path, "--max-total", "2000")
    assert over.returncode == 1
    assert "is over --max-total" in over.stderr
    row = send(box, path, "--max-row", "1000")
    assert row.returncode == 2
    assert "line 3, column amount: error: 1001 is over --max-row 1000" in row.stderr
    assert not any(t.startswith("GUARD") for t in box.executions())


def test_a_total_over_the_balance_is_refused(tmp_path: Path) -> None:
    """The balance from get_balance() bounds the run."""
    with sandbox() as poor:
        path = write_csv(tmp_path / "rich.csv", payout_rows(1, prefix="RICH"))
        rows = payout_rows(1, prefix="RICH")
        rows[0]["amount"] = "20000000000"
        write_csv(path, rows)
        done = send(poor, path)
        assert done.returncode == 1
        assert "is over the available balance" in done.stderr
        assert poor.executions() == {}


def test_a_config_file_others_can_read_is_refused(box: Sandbox, tmp_path: Path) -> None:
    """Mode 0644 is refused without reading it; 0600 works."""
    config = tmp_path / "config.ini"
    config.write_text(
        "[vexora]\nmerchant_no = 1000000001\n"
        f"app_secret = {box.env()['VEXORA_APP_SECRET']}\nbase_url = {box.url}\n"
    )
    config.chmod(0o644)
    env = {"VEXORA_MERCHANT_NO": "", "VEXORA_APP_SECRET": "", "VEXORA_BASE_URL": ""}
    refused = run_cli(box, "balance", "--config", str(config), **env)
    assert refused.returncode == 2
    assert "group or others may read it (mode 0644)" in refused.stderr
    assert f"chmod 600 {config}" in refused.stderr
    config.chmod(0o600)
    ok = run_cli(box, "balance", "--json", "--config", str(config), **env)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["merchant_no"] == "1000000001"


def test_wrong_credentials_exit_4(box: Sandbox, tmp_path: Path) -> None:
    """The gateway refusing the sign is status 4, before anything is sent."""
    path = write_csv(tmp_path / "auth.csv", payout_rows(1, prefix="AUTH"))
    done = send(box, path, VEXORA_APP_SECRET="not-the-secret")
    assert done.returncode == 4
    assert "refused the credentials or the sign" in done.stderr
    assert "not-the-secret" not in done.stdout + done.stderr
    assert "AUTH00000" not in box.executions()


def test_status_and_balance_json(box: Sandbox, tmp_path: Path) -> None:
    """The single calls print JSON for scripts."""
    path = write_csv(tmp_path / "one.csv", payout_rows(1, prefix="ONE"))
    assert send(box, path).returncode == 0
    status = run_cli(box, "payouts", "status", "ONE00000", "--json")
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout)
    assert data["trade_no"] == "ONE00000"
    assert Decimal(data["amount"]) == 1000
    unknown = run_cli(box, "payouts", "status", "NEVER-SENT")
    assert unknown.returncode == 1
    assert "does not know it" in unknown.stderr
    balance = run_cli(box, "balance", "--json")
    assert balance.returncode == 0
    assert "available" in json.loads(balance.stdout)


def test_reconcile_rewrites_processing_rows(tmp_path: Path) -> None:
    """Reconcile queries rows not final; a settled payout shows its final status."""
    with sandbox("--settle-delay", "0.2") as slow:
        path = write_csv(tmp_path / "rec.csv", payout_rows(3, prefix="REC"))
        assert send(slow, path).returncode == 0
        report = read_report(tmp_path / "rec.report.csv")
        assert {r["status"] for r in report} == {"processing"}
        time.sleep(0.5)
        done = run_cli(slow, "payouts", "reconcile", str(path))
        assert done.returncode == 0, done.stderr
        assert "Queried 3 rows" in done.stdout
        report = read_report(tmp_path / "rec.report.csv")
        assert {(r["outcome"], r["status"]) for r in report} == {
            ("accepted", "success")
        }
        assert slow.executions() == {r["trade_no"]: 1 for r in report}


@pytest.mark.slow
@pytest.mark.e2e
def test_faults_then_reruns_pay_every_row_exactly_once(tmp_path: Path) -> None:
    """2,000 rows through 10% gateway faults: reruns end at 0, each paid once."""
    with sandbox("--fault-rate", "0.1", "--seed", "7") as faulty:
        rows = payout_rows(2000, prefix="F")
        path = write_csv(tmp_path / "faults.csv", rows)
        statuses = []
        for _ in range(6):
            done = send(faulty, path, "--concurrency", "20", "--deadline", "20")
            statuses.append(done.returncode)
            if done.returncode == 0:
                break
            assert done.returncode in {1, 5}, done.stderr
        assert statuses[-1] == 0, statuses
        executions = faulty.executions()
        assert executions == {r["trade_no"]: 1 for r in rows}
        report = read_report(tmp_path / "faults.report.csv")
        assert len(report) == 2000
        assert {r["outcome"] for r in report} == {"accepted"}


def _start_send(box: Sandbox, path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(  # noqa: S603 - our own interpreter
        cli_command(
            "payouts",
            "send",
            str(path),
            "--yes",
            "--skip-invalid",
            "--notify-url",
            NOTIFY,
            "--concurrency",
            "10",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=box.env(),
    )


def _wait_for_progress(process: subprocess.Popen[str], at_least: int) -> None:
    """Read the plain progress lines until *at_least* rows are done."""
    assert process.stdout is not None
    while True:
        line = process.stdout.readline()
        assert line, "the run ended before the progress expected"
        if line.startswith("sent ") and int(line.split()[1].split("/")[0]) >= at_least:
            return


@pytest.mark.slow
@pytest.mark.e2e
def test_sigkill_twice_then_reruns_pay_each_valid_row_once(tmp_path: Path) -> None:
    """Killed twice mid-file, rerun until 0: exactly once, invalid never sent."""
    with sandbox("--fault-rate", "0.05", "--seed", "3") as faulty:
        rows = payout_rows(1000, prefix="K")
        for i in (5, 500, 995):
            rows[i]["bank_code"] = "NOPAY"
        path = write_csv(tmp_path / "kill.csv", rows)
        for at_least in (100, 400):
            process = _start_send(faulty, path)
            _wait_for_progress(process, at_least)
            process.kill()
            process.communicate(timeout=10)
        started = time.monotonic()
        resume = send(faulty, path, "--skip-invalid")
        statuses = [resume.returncode]
        assert "left unknown by an earlier run" in resume.stdout
        # The rows the killed runs left in flight are taken over at once, not
        # after a claim lease (180 s by default).
        assert time.monotonic() - started < 60
        while statuses[-1] != 0 and len(statuses) < 5:
            statuses.append(send(faulty, path, "--skip-invalid").returncode)
        assert statuses[-1] == 0, (statuses, resume.stdout, resume.stderr)
        valid = [r["trade_no"] for i, r in enumerate(rows) if i not in {5, 500, 995}]
        assert faulty.executions() == dict.fromkeys(valid, 1)
        report = read_report(tmp_path / "kill.report.csv")
        assert [r["trade_no"] for r in report] == [r["trade_no"] for r in rows]
        assert [i for i, r in enumerate(report) if r["outcome"] == "invalid"] == [
            5,
            500,
            995,
        ]
        assert {r["outcome"] for r in report} == {"accepted", "invalid"}


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=str)
def test_sigint_finishes_the_rows_in_flight_and_a_rerun_resumes(
    tmp_path: Path, signum: signal.Signals
) -> None:
    """Ctrl-C or SIGTERM: 130, a full report, nothing left in flight; a rerun ends."""
    with sandbox() as box2:
        rows = payout_rows(600, prefix="INT")
        path = write_csv(tmp_path / "int.csv", rows)
        process = _start_send(box2, path)
        _wait_for_progress(process, 60)
        process.send_signal(signum)
        _, err = process.communicate(timeout=60)
        assert process.returncode == 130, err
        assert "Interrupted: finishing the rows in flight" in err
        report = read_report(tmp_path / "int.report.csv")
        assert len(report) == 600
        outcomes = {r["outcome"] for r in report}
        assert outcomes == {"accepted", "not_sent"}, outcomes
        accepted = {r["trade_no"] for r in report if r["outcome"] == "accepted"}
        # Exactly the rows the gateway executed: none was left in flight.
        assert set(box2.executions()) == accepted
        summary = json.loads((tmp_path / "int.report.json").read_text())
        assert summary["exit_status"] == 130
        rerun = send(box2, path)
        assert rerun.returncode == 0, rerun.stderr
        assert f"Already done  {len(accepted)} (accepted {len(accepted)}" in (
            rerun.stdout
        )
        assert box2.executions() == {r["trade_no"]: 1 for r in rows}


def test_another_run_holding_the_journal_is_refused(
    box: Sandbox, tmp_path: Path
) -> None:
    """Two runs of one file at once: the second stops, sending nothing."""
    import fcntl

    path = write_csv(tmp_path / "busy.csv", payout_rows(1, prefix="BUSY"))
    lock = tmp_path / "busy.csv.vexora.lock"
    with lock.open("w") as held:
        held.write("4242")
        held.flush()
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        done = send(box, path)
    assert done.returncode == 1
    assert "another run (pid 4242) is using the journal of busy.csv" in done.stderr
    assert "BUSY00000" not in box.executions()


def test_the_journal_and_report_are_the_owners_only(
    box: Sandbox, tmp_path: Path
) -> None:
    """They hold account numbers and names: mode 0600."""
    path = write_csv(tmp_path / "mode.csv", payout_rows(1, prefix="MODE"))
    assert send(box, path).returncode == 0
    for name in ("mode.csv.vexora.db", "mode.report.csv", "mode.report.json"):
        assert (tmp_path / name).stat().st_mode & 0o077 == 0, name


def test_reconcile_after_a_kill_never_reports_a_paid_row_as_not_sent(
    tmp_path: Path,
) -> None:
    """Rows a killed run had in flight are looked up, not reported unsent."""
    with sandbox("--fault-rate", "0.05", "--seed", "11") as faulty:
        rows = payout_rows(400, prefix="RK")
        path = write_csv(tmp_path / "rk.csv", rows)
        process = _start_send(faulty, path)
        _wait_for_progress(process, 100)
        process.kill()
        process.communicate(timeout=10)
        done = run_cli(faulty, "payouts", "reconcile", str(path))
        assert done.returncode in {0, 1, 5, 6}, done.stderr
        report = {r["trade_no"]: r for r in read_report(tmp_path / "rk.report.csv")}
        assert len(report) == 400
        executed = faulty.executions()
        assert executed
        assert {report[t]["outcome"] for t in executed} == {"accepted"}
        # Nothing was sent by reconcile: it only asks.
        assert faulty.executions() == executed


def test_a_redis_ledger_keeps_the_runs_of_a_file_together(
    box: Sandbox, tmp_path: Path
) -> None:
    """--ledger redis://...: a rerun finds the accepted rows there."""
    from tests.servers import redis_url, unique

    url = redis_url()
    rows = payout_rows(5, prefix=unique("CLIR"))
    path = write_csv(tmp_path / "redis.csv", rows)
    assert send(box, path, "--ledger", url).returncode == 0
    # The journal file holds the report's side only: the ledger is in Redis.
    again = send(box, path, "--ledger", url)
    assert again.returncode == 0, again.stderr
    assert "Already done  5 (accepted 5, rejected 0)" in again.stdout
    executions = box.executions()
    assert [executions[r["trade_no"]] for r in rows] == [1] * 5


def test_an_unknown_ledger_url_is_a_usage_error(box: Sandbox, tmp_path: Path) -> None:
    """--ledger takes redis:// or postgresql:// only; nothing is sent."""
    path = write_csv(tmp_path / "url.csv", payout_rows(1, prefix="URL"))
    done = send(box, path, "--ledger", "mysql://127.0.0.1/x")
    assert done.returncode == 2
    assert "--ledger takes a redis:// or postgresql:// URL, not 'mysql'" in done.stderr
    assert "URL00000" not in box.executions()


@pytest.mark.slow
@pytest.mark.e2e
def test_resolve_after_a_kill_settles_the_rows_left_in_flight(
    box: Sandbox, tmp_path: Path
) -> None:
    """``resolve --json`` takes a dead run's rows over, queries, prints JSON only."""
    rows = payout_rows(400, prefix="RS")
    path = write_csv(tmp_path / "rs.csv", rows)
    process = _start_send(box, path)
    _wait_for_progress(process, 100)
    process.kill()
    process.communicate(timeout=10)
    done = run_cli(box, "payouts", "resolve", str(path), "--json")
    assert done.returncode == 1, done.stderr  # the rows never handed over
    resolved = json.loads(done.stdout)  # nothing but JSON on stdout
    assert resolved
    assert {item["outcome"] for item in resolved} == {"accepted"}
    assert "Report: " in done.stderr
    first = resolved[0]["trade_no"]
    again = run_cli(box, "payouts", "resolve", str(path), first, "--json")
    assert json.loads(again.stdout)[0]["attempts"] == resolved[0]["attempts"]
    assert f"{first}: accepted, nothing to resolve" in again.stderr
    assert send(box, path).returncode == 0
    executions = box.executions()
    assert [executions[r["trade_no"]] for r in rows] == [1] * 400


def test_a_ledger_that_forgot_does_not_make_a_row_go_twice(
    box: Sandbox, tmp_path: Path
) -> None:
    """The journal's own record stops a resend when the ledger lost its entries."""
    import sqlite3

    rows = payout_rows(3, prefix="FORGOT")
    path = write_csv(tmp_path / "forgot.csv", rows)
    assert send(box, path).returncode == 0
    # As a Redis ledger does once its settled entries expire.
    with contextlib.closing(sqlite3.connect(tmp_path / "forgot.csv.vexora.db")) as db:
        db.execute("DELETE FROM vexora_ledger")
        db.commit()
    again = send(box, path)
    assert again.returncode == 0, again.stderr
    assert "Already done  3 (accepted 3, rejected 0)" in again.stdout
    rows[0]["amount"] = "5000"
    write_csv(path, rows)
    changed = send(box, path)
    assert changed.returncode == 2
    assert "'FORGOT00000' was already sent with another payload" in changed.stderr
    executions = box.executions()
    assert [executions[r["trade_no"]] for r in rows] == [1, 1, 1]
