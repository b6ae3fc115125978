"""The one client per process, wired to OpenTelemetry and Prometheus."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import Counter, Histogram
from vexora_async import VexoraClient
from vexora_async.otel import OpenTelemetryHook
from vexora_async.prometheus import PrometheusHook


if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider
    from vexora_async import Ledger

    from .settings import Settings

#: The service's own metrics, beside the SDK's (vexora_*).
ESCALATED = Counter(
    "withdrawals_escalated_total",
    "Withdrawals still open past WITHDRAWALS_ESCALATE_AFTER: a human must look.",
)
TRANSITIONS = Counter(
    "withdrawals_transitions_total",
    "State changes of withdrawals, by new state and by who made them.",
    ["state", "source"],
)
SEND_SECONDS = Histogram(
    "withdrawals_send_seconds",
    "Seconds from a withdrawal's claim by a sender to the gateway's answer.",
)


def make_client(
    settings: Settings,
    ledger: Ledger | None = None,
    *,
    tracer_provider: TracerProvider | None = None,
) -> VexoraClient:
    """Return this process's client: its spans and metrics go to both.

    Spans go to *tracer_provider*, by default OpenTelemetry's global one
    (set by your OpenTelemetry SDK setup, or ``opentelemetry-instrument``).
    """
    return VexoraClient(
        settings.merchant_no,
        settings.app_secret,
        settings.base_url,
        ledger=ledger,
        deadline=settings.deadline,
        claim_lease=settings.claim_lease,
        max_connections=settings.batch,
        # Without an OpenTelemetry SDK configured these are no-ops.
        on_event=[OpenTelemetryHook(tracer_provider), PrometheusHook()],
    )
