"""The alert rules of docs/observability.md, checked and unit-tested by promtool.

The rules live in ``docs/observability/alerts.yml`` (the page includes that
file, so it cannot drift from what is tested). Their test inputs are not
made up: two runs of real clients against the sandbox gateway (in process)
are scraped from the SDK's own :class:`~vexora_async.prometheus.PrometheusHook`
after every round, each scrape becoming one sample a minute apart:

- a run that should page: payouts whose create and status queries get code
  ``5000`` until they end unknown, and a worker that stalls past its claim
  lease while another takes its tradeNo over (and then fences it off);
- a run of routine work: refused and lost answers retried and reconciled,
  a call cancelled by a shutdown and settled later by ``resolve_payout``
  (the ledger's ``resumed``), a status query retried.

promtool (Debian's ``prometheus`` package) must be on the PATH: without it
the tests skip, and fail in CI (``CI`` set), as the server tests do
(tests/servers.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from vexora_async import (
    BankCode,
    MemoryLedger,
    Operation,
    PayoutOutcomeUnknown,
    PayoutRequest,
    RetryPolicy,
    VexoraClient,
)
from vexora_async.prometheus import PrometheusHook
from vexora_async.testing import FakeGateway, Fault, SandboxApp, SandboxConfig


if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable


pytestmark = pytest.mark.subprocess

RULES = Path(__file__).resolve().parent.parent / "docs" / "observability" / "alerts.yml"
#: One scrape a minute: 20 rounds give the 5000 rate's ``for: 10m`` its time.
ROUNDS = 20
#: The round in which the paging run's worker stalls past its lease.
STALL_ROUND = 15
BASE_URL = "http://127.0.0.1/sandbox"
FAST = RetryPolicy(backoff_initial=0.001, backoff_max=0.002)


def promtool() -> str:
    """Return promtool's path, or skip (fail in CI)."""
    found = shutil.which("promtool")
    if found:
        return found
    reason = "needs promtool on the PATH (Debian: apt-get install prometheus)"
    if os.environ.get("CI"):
        pytest.fail(f"CI: {reason}")
    pytest.skip(reason)


def payout(number: int, bank_number: str = "09123456789") -> PayoutRequest:
    """Return payout *number* of a run."""
    return PayoutRequest(
        trade_no=f"PAY-{number:04d}",
        amount=15_000,
        bank_code=BankCode.KBZPAY,
        bank_number=bank_number,
        name="Ko Min Thu",
        notify_url="https://merchant.example/vexora/notify",
    )


@dataclass
class Recording:
    """Every scrape of one registry: each series' value, by scrape."""

    scrapes: list[dict[str, float]] = field(default_factory=list)

    def scrape(self, registry: CollectorRegistry) -> None:
        """Read the registry as Prometheus would (its text exposition)."""
        text = generate_latest(registry).decode()
        samples: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name.endswith("_created"):
                    continue  # a timestamp, not a count
                labels = ",".join(
                    f'{name}="{value}"' for name, value in sorted(sample.labels.items())
                )
                samples[f"{sample.name}{{{labels}}}"] = sample.value
        self.scrapes.append(samples)

    def input_series(self) -> list[dict[str, str]]:
        """Return promtool's input series; ``_`` before a series first appears."""
        names = sorted({name for scrape in self.scrapes for name in scrape})
        return [
            {
                "series": name,
                "values": " ".join(
                    repr(scrape[name]) if name in scrape else "_"
                    for scrape in self.scrapes
                ),
            }
            for name in names
        ]

    def last(self, name: str) -> float:
        """Return a series' value at the last scrape (0 if never seen)."""
        return self.scrapes[-1].get(name, 0.0)


@dataclass
class Workers:
    """Two workers sharing one ledger, as two processes share a Redis one."""

    gateway: FakeGateway
    a: VexoraClient
    b: VexoraClient
    #: The shared ledger's clock (epoch seconds), to stall a worker past its lease.
    now: list[float]


async def record(one_round: Callable[[Workers, int], Awaitable[None]]) -> Recording:
    """Run *one_round* ROUNDS times against the sandbox, scraping after each."""
    registry = CollectorRegistry()
    hook = PrometheusHook(registry)
    recording = Recording()
    recording.scrape(registry)  # the hook's series at 0, before any call
    now = [1_000_000.0]
    ledger = MemoryLedger(clock=lambda: now[0])
    gateway = FakeGateway(SandboxConfig(settle_delay=None))
    config = gateway.config
    async with (
        SandboxApp(gateway) as app,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as http,
    ):
        a, b = (
            VexoraClient(
                config.merchant_no,
                config.app_secret,
                BASE_URL,
                http_client=http,
                retry=FAST,
                ledger=ledger,
                on_event=hook,
            )
            for _ in range(2)
        )
        async with a, b:
            for number in range(1, ROUNDS + 1):
                await one_round(Workers(gateway, a, b, now), number)
                recording.scrape(registry)
    return recording


async def paging_round(workers: Workers, number: int) -> None:
    """A routine payout, one left unknown, and once a worker taken over."""
    gateway, a, b = workers.gateway, workers.a, workers.b
    await a.create_payout(payout(100 * number))
    lost = payout(100 * number + 1)
    # Code 5000 on the create and on every status query after it.
    gateway.faults.for_trade_no(lost.trade_no, *[Fault.system_error()] * 50)
    with pytest.raises(PayoutOutcomeUnknown):
        await a.create_payout(lost)
    if number == STALL_ROUND:
        stalled = payout(100 * number + 2)
        gateway.faults.for_trade_no(stalled.trade_no, Fault.delay(0.05))
        first = asyncio.create_task(a.create_payout(stalled))
        await asyncio.sleep(0.01)  # a's create is at the gateway, held there
        workers.now[0] += a.claim_lease + 1  # a stalled past its lease
        taken = await b.create_payout(stalled)  # takes the claim over
        late = await first  # a's record is fenced off; its caller still learns
        assert taken.trade_no == late.trade_no == stalled.trade_no


async def routine_round(workers: Workers, number: int) -> None:
    """Retries, reconciliations and resolves: a day's work, nothing to page."""
    gateway, a, b = workers.gateway, workers.a, workers.b
    base = 100 * number
    refused = payout(base)  # a proxy's 503, the create never reached it
    gateway.faults.for_trade_no(refused.trade_no, Fault.http_error(503, executed=False))
    assert (await a.create_payout(refused)).status.is_processing
    lost = payout(base + 1)  # paid, the answer lost: found by a status query
    gateway.faults.for_trade_no(lost.trade_no, Fault.drop())
    assert (await b.create_payout(lost)).status.is_processing
    queried = payout(base + 2)  # a status query's connection dropped: retried
    await a.create_payout(queried)
    gateway.faults.for_trade_no(
        queried.trade_no, Fault.drop(), operations=Operation.GET_PAYOUT
    )
    await a.get_payout(queried.trade_no)
    # A shutdown cancels a create at the gateway; the resolve job settles it.
    cancelled = payout(base + 3)
    gateway.faults.for_trade_no(cancelled.trade_no, Fault.delay(0.02))
    task = asyncio.create_task(a.create_payout(cancelled))
    await asyncio.sleep(0.005)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (await b.resolve_payout(cancelled)).status.is_processing


#: What each alert says when it fires: its labels and annotations.
FIRING = {
    "VexoraPayoutOutcomeUnknown": (
        {"severity": "page"},
        {"summary": "payouts were left unknown after their deadline"},
    ),
    "VexoraLedgerClaimTakenOver": (
        {"severity": "page"},
        {"summary": "a payout's ledger claim was taken over or fenced"},
    ),
    "VexoraGateway5000Rate": (
        {"severity": "ticket"},
        {"summary": "over 5% of the gateway's answers are code 5000"},
    ),
}


def alert_tests(recording: Recording, *, firing: bool) -> dict[str, object]:
    """Return promtool's test of one run: every alert fires, or none does."""
    cases = []
    for name, (labels, summary) in FIRING.items():
        expected = (
            [{"exp_labels": labels, "exp_annotations": summary}] if firing else []
        )
        cases.append(
            {"eval_time": f"{ROUNDS}m", "alertname": name, "exp_alerts": expected}
        )
    return {
        "interval": "1m",
        "input_series": recording.input_series(),
        "alert_rule_test": cases,
    }


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    """Run promtool; return its result (its output says what failed)."""
    return subprocess.run(  # noqa: S603 - our own arguments
        [promtool(), *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_the_rules_file_is_valid() -> None:
    """The rules file loads in Prometheus (``promtool check rules``)."""
    result = run_promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(FIRING)} rules found" in result.stdout


def test_each_alert_fires_on_the_paging_run_and_not_on_routine_work(
    tmp_path: Path,
) -> None:
    """Series recorded from the hook: every alert fires, then none does."""
    promtool()  # skip before the runs when it is missing
    paging = asyncio.run(record(paging_round))
    routine = asyncio.run(record(routine_round))
    # What each run was: the paging run's signals, and routine work that
    # retried, reconciled and resumed without any of them.
    assert paging.last('vexora_payouts_total{outcome="unknown"}') == ROUNDS
    assert paging.last('vexora_ledger_actions_total{action="taken_over"}') == 1
    assert paging.last('vexora_ledger_actions_total{action="fenced"}') == 1
    assert routine.last('vexora_payouts_total{outcome="unknown"}') == 0
    assert routine.last('vexora_ledger_actions_total{action="resumed"}') == ROUNDS
    assert routine.last('vexora_reconciliations_total{result="found"}') >= ROUNDS
    assert (
        routine.last(
            'vexora_retries_total{operation="get_payout",reason="TransportError"}'
        )
        == ROUNDS
    )
    for name in (
        'vexora_ledger_actions_total{action="taken_over"}',
        'vexora_ledger_actions_total{action="fenced"}',
    ):
        assert routine.last(name) == 0
    assert not any("5000" in series["series"] for series in routine.input_series())

    tests = tmp_path / "alerts_test.yml"
    document = {
        "rule_files": [str(RULES)],
        "evaluation_interval": "1m",
        "tests": [
            alert_tests(paging, firing=True),
            alert_tests(routine, firing=False),
        ],
    }
    # JSON is YAML: promtool reads it as written.
    tests.write_text(json.dumps(document, indent=1), encoding="utf-8")
    result = run_promtool("test", "rules", str(tests))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
