"""Tests for the demo: it runs, accounts for everything, and says so."""

from __future__ import annotations

import logging

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
    assert found + count(rows, "not found, resent (same tradeNo)") == reconciled
    assert count(rows, "status queries sent by the SDK") >= found
    verified, expected = rows["callbacks verified"].split(" of ")
    assert verified == expected
    succeeded = count(rows, "succeeded (callback 0000)")
    failed = count(rows, "failed (callback 00029)")
    assert succeeded + failed == int(expected)
    assert count(rows, "faults injected") > 0
    assert count(rows, "deliveries retried by the gateway") > 0


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
