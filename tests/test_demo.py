"""Tests for the demo: it runs, accounts for everything, and says so."""

from __future__ import annotations

import logging
import re

import pytest
from vexora_async import OutcomeKind, PayoutOutcome, PayoutOutcomeUnknown
from vexora_async._cli import main
from vexora_async._cli.demo import _resolve, _Tally
from vexora_async.testing import FakeGateway, Fault, SandboxApp, SandboxConfig

from tests.helpers import ONE_EXCHANGE, in_process_client, make_payout


def summary_rows(out: str) -> dict[str, str]:
    """Return the summary table's rows, by their label."""
    return {
        line.split("│")[1].strip(): line.split("│")[2].strip()
        for line in out.splitlines()
        if line.count("│") == 3
    }


def count(rows: dict[str, str], label: str) -> int:
    """Return the number in the row *label*."""
    return int(rows[label].replace(",", ""))


def test_demo_accounts_for_every_payout(capsys: pytest.CaptureFixture[str]) -> None:
    """A small run with many faults ends with nothing unknown, nothing doubled.

    The SDK's retry layer turns the faults into acceptances: some retried
    after a 429/503, some reconciled after an unknown outcome, and the rows
    add up to the payouts sent.
    """
    code = main(["demo", "--count", "150", "--fault-rate", "0.2", "--seed", "7"])
    out = capsys.readouterr().out
    assert code == 0, out
    rows = summary_rows(out)
    assert rows["payouts sent"] == "150"
    assert rows["still unknown"] == "0"
    assert rows["double executions"] == "0"
    assert rows["bad signatures"] == "0"
    assert rows["money accounted for"] == "yes"
    ends = [
        "accepted",
        "refused by the gateway (8000)",
        "not executed (error after retries)",
        "unknown after the batch",
    ]
    assert sum(count(rows, label) for label in ends) == 150
    accepted = [
        "at the first attempt",
        "never reached, resent by the SDK",
        "unknown → reconciled by the SDK",
    ]
    assert sum(count(rows, label) for label in accepted) == count(rows, "accepted")
    reconciled = count(rows, "unknown → reconciled by the SDK")
    assert reconciled > 0
    found = count(rows, "found by a status query")
    resent = count(rows, "not found, resent (same tradeNo)")
    assert found + resent == reconciled
    verified, expected = rows["callbacks verified"].split(" of ")
    assert verified == expected
    succeeded = count(rows, "succeeded (0000)")
    failed = count(rows, "failed on purpose (account …0029)")
    assert succeeded + failed == int(expected)
    assert "failed otherwise" not in rows
    assert count(rows, "faults injected") > 0
    assert count(rows, "deliveries retried by the gateway") > 0


def test_demo_status_queries_add_up(capsys: pytest.CaptureFixture[str]) -> None:
    """The status-query count splits into its answers, and covers the unknowns.

    Each query either found the payout, did not find it (the SDK then
    resends), or failed (a fault: asked again); every payout reconciled
    after an unknown outcome took one query or more, and the screen says
    why the counts need not be equal.
    """
    code = main(["demo", "--count", "150", "--fault-rate", "0.2", "--seed", "7"])
    out = capsys.readouterr().out
    assert code == 0, out
    rows = summary_rows(out)
    queries = count(rows, "status queries sent by the SDK")
    found = count(rows, "found the payout")
    not_found = count(rows, "did not find it (8000)")
    failed = count(rows, "failed (an injected fault)")
    assert found + not_found + failed == queries
    assert found >= count(rows, "found by a status query")
    assert not_found >= count(rows, "not found, resent (same tradeNo)")
    assert queries >= count(rows, "unknown → reconciled by the SDK")
    assert "one after each unknown outcome, again after a failed one" in out
    assert "one payout may take several queries" in out


def test_demo_says_the_0029_failures_are_deliberate(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The failed payouts are the accounts the sandbox fails, and it says so.

    Every failed callback belongs to a payout whose account ends in 0029
    (the sandbox's rule, which the demo states before the table and after
    it), so none is counted as "failed otherwise".
    """
    code = main(["demo", "--count", "300", "--fault-rate", "0", "--seed", "3"])
    out = capsys.readouterr().out
    assert code == 0, out
    rows = summary_rows(out)
    assert count(rows, "failed on purpose (account …0029)") > 0
    assert "failed otherwise" not in rows
    assert "accounts ending in 0029: the sandbox fails those on purpose." in out
    assert "fails every payout to an account ending in 0029, on purpose." in out
    assert "Accepted means the gateway took the payout" in out


def test_the_demo_fails_the_accounts_the_sandbox_fails() -> None:
    """The demo's failing suffix is the sandbox's own rule, not a copy that drifts."""
    from vexora_async._cli.demo import FAILED_SUFFIX
    from vexora_async.testing import _transactions

    assert FAILED_SUFFIX == _transactions.FAILED_SUFFIX


@pytest.mark.parametrize("columns", ["80", "120"])
def test_no_demo_line_breaks_mid_sentence(
    columns: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """At 80 columns and at a wider terminal's, every line of text is whole.

    rich wraps a line longer than the terminal wherever it ends: the old
    header split "callback receiver at" from its URL. Each line outside
    the table and the progress bar must end a sentence or be a URL.
    """
    monkeypatch.setenv("COLUMNS", columns)
    assert main(["demo", "--count", "20", "--fault-rate", "0.1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    text = [
        line.rstrip()
        for line in lines
        if line.strip()
        and not any(mark in line for mark in "┌│└━")
        and line.strip() != "vexora-async demo"
    ]
    assert len(text) == 8, text
    for line in text:
        assert re.search(r"(\.|https?://\S+)$", line), line


async def test_what_the_batch_left_unknown_is_settled_by_the_sdk() -> None:
    """resolve_payout settles each unknown payout once, or leaves it unknown.

    One was paid before its answer was lost (found), one never reached the
    gateway (sent again under its tradeNo), and one whose every status
    query fails stays unknown, unpaid and counted as such.
    """
    gateway = FakeGateway(SandboxConfig(settle_delay=None, callbacks=False))
    requests = [make_payout(trade_no=f"U{i}") for i in range(3)]
    async with (
        SandboxApp(gateway) as app,
        in_process_client(app, ONE_EXCHANGE) as earlier_run,
        in_process_client(app) as client,
    ):
        gateway.faults.queue(Fault.drop())
        with pytest.raises(PayoutOutcomeUnknown):
            await earlier_run.create_payout(requests[0])
        tally = _Tally(
            unknown_after_batch=[
                PayoutOutcome(
                    r,
                    OutcomeKind.UNKNOWN,
                    error=PayoutOutcomeUnknown("lost", trade_no=r.trade_no),
                )
                for r in requests
            ]
        )
        queries = client.retry_policy.max_reconcile_queries
        gateway.faults.for_trade_no("U2", *[Fault.garbage()] * queries)
        await _resolve(client, tally)
    assert tally.resolved == 2
    assert tally.executed == {"U0", "U1"}
    assert tally.still_unknown == {"U2"}
    assert gateway.stats.executions == {"U0": 1, "U1": 1}


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
