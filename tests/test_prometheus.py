"""The Prometheus adapter, read back from a real registry's exposition text."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from vexora_async import RetryPolicy
from vexora_async.events import CallbackHandled
from vexora_async.prometheus import PrometheusHook

from tests.helpers import make_payout, mock_client, route_retry_and_reconciliation


if TYPE_CHECKING:
    import respx

FAST = RetryPolicy(backoff_initial=0.001, backoff_max=0.002, deadline=5.0)


def samples(registry: CollectorRegistry) -> dict[tuple[str, frozenset[Any]], float]:
    """Parse the registry's exposition text into {(name, labels): value}."""
    text = generate_latest(registry).decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(
    found: dict[tuple[str, frozenset[Any]], float], name: str, **labels: str
) -> float:
    """Return one sample's value."""
    return found[name, frozenset(labels.items())]


async def test_one_payout_with_a_retry_and_a_reconciliation(
    router: respx.MockRouter,
) -> None:
    """Refused, a lost answer, a status query: every metric moves as it should."""
    route_retry_and_reconciliation(router)
    registry = CollectorRegistry()
    async with mock_client(
        router.async_handler, retry=FAST, on_event=PrometheusHook(registry)
    ) as client:
        await client.create_payout(make_payout())
    text = generate_latest(registry).decode()
    assert "VX20260331004567" not in text
    assert "3560123456789012" not in text
    assert "Ko Min Thu" not in text

    found = samples(registry)
    assert value(found, "vexora_payouts_total", outcome="accepted") == 1
    assert value(found, "vexora_payouts_total", outcome="unknown") == 0
    assert (
        value(
            found,
            "vexora_operation_duration_seconds_count",
            operation="create_payout",
            outcome="accepted",
        )
        == 1
    )
    assert (
        value(
            found,
            "vexora_operation_duration_seconds_bucket",
            operation="create_payout",
            outcome="accepted",
            le="+Inf",
        )
        == 1
    )
    assert (
        value(
            found,
            "vexora_retries_total",
            operation="create_payout",
            reason="ConnectError",
        )
        == 1
    )
    assert value(found, "vexora_reconciliations_total", result="found") == 1
    assert value(found, "vexora_reconciliations_total", result="not_found") == 0
    assert value(found, "vexora_in_flight") == 0
    assert value(found, "vexora_ledger_actions_total", action="claimed") == 1
    assert value(found, "vexora_ledger_actions_total", action="taken_over") == 0
    attempts = {
        key: count for key, count in found.items() if key[0] == "vexora_attempts_total"
    }
    assert attempts == {
        (
            "vexora_attempts_total",
            frozenset(
                {
                    "operation": operation,
                    "http_status": status,
                    "gateway_code": code,
                }.items()
            ),
        ): count
        for operation, status, code, count in [
            ("create_payout", "none", "none", 2),
            ("get_payout", "200", "0000", 1),
        ]
    }
    assert value(found, "vexora_limiter_wait_seconds_count") == 0


def test_callbacks_are_counted_by_kind_status_kind_and_answer() -> None:
    """CallbackHandled: one sample per (kind, status kind, answer)."""
    registry = CollectorRegistry()
    hook = PrometheusHook(registry)
    for status, answer in [("0000", 200), ("0000", 200), ("00029", 500)]:
        hook(
            CallbackHandled(
                kind="payout",
                trade_no="VX1",
                status=status,
                http_status=answer,
                duplicate=False,
                handler_time=0.01,
            )
        )
    hook(
        CallbackHandled(
            kind=None,
            trade_no=None,
            status=None,
            http_status=401,
            duplicate=False,
            handler_time=None,
        )
    )
    found = samples(registry)
    name = "vexora_notifications_total"
    assert value(found, name, kind="payout", status_kind="success", answer="200") == 2
    assert value(found, name, kind="payout", status_kind="failed", answer="500") == 1
    assert value(found, name, kind="none", status_kind="none", answer="401") == 1


def test_hooks_on_one_registry_share_its_metrics() -> None:
    """Two hooks, one registry: no duplicate-name error, one count."""
    registry = CollectorRegistry()
    first, second = PrometheusHook(registry), PrometheusHook(registry)
    for hook in (first, second):
        hook(
            CallbackHandled(
                kind="deposit",
                trade_no="PI1",
                status="0001",
                http_status=200,
                duplicate=True,
                handler_time=0.0,
            )
        )
    found = samples(registry)
    assert (
        value(
            found,
            "vexora_notifications_total",
            kind="deposit",
            status_kind="partial",
            answer="200",
        )
        == 2
    )


def test_a_gateway_code_never_becomes_a_label_of_its_own() -> None:
    """An unexpected envelope code counts as "other": bounded series."""
    from vexora_async.events import AttemptFinished

    registry = CollectorRegistry()
    hook = PrometheusHook(registry)
    for code in ("X1", "X2", "5000"):
        hook(
            AttemptFinished(
                operation="create_payout",
                attempt_operation="create_payout",
                trade_no="VX1",
                attempt=1,
                http_status=200,
                gateway_code=code,
                elapsed=0.01,
                may_have_executed="maybe",
            )
        )
    found = samples(registry)
    name = "vexora_attempts_total"
    labels = {"operation": "create_payout", "http_status": "200"}
    assert value(found, name, **labels, gateway_code="other") == 2
    assert value(found, name, **labels, gateway_code="5000") == 1


def test_limiter_waits_are_observed() -> None:
    """LimiterWait: the vexora_limiter_wait_seconds histogram."""
    from vexora_async.events import LimiterWait

    registry = CollectorRegistry()
    PrometheusHook(registry)(
        LimiterWait(operation="create_payout", trade_no="VX1", waited=0.02)
    )
    found = samples(registry)
    assert value(found, "vexora_limiter_wait_seconds_count") == 1
    assert value(found, "vexora_limiter_wait_seconds_bucket", le="0.05") == 1
    assert value(found, "vexora_limiter_wait_seconds_bucket", le="0.01") == 0
