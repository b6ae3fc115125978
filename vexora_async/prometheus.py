"""Prometheus metrics from the SDK's events (the ``prometheus`` extra).

::

    from vexora_async.prometheus import PrometheusHook

    client = VexoraClient(..., on_event=PrometheusHook())

The metrics are those of the OpenTelemetry adapter under Prometheus names
(see :doc:`/observability`), registered in *registry* (default:
``prometheus_client.REGISTRY``). Serve them the way you serve your others
(``prometheus_client.start_http_server``, ``make_asgi_app``...).
"""

from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING, Any


try:
    import prometheus_client
except ImportError as exc:  # pragma: no cover - tested in a subprocess
    msg = (
        "vexora_async.prometheus needs prometheus-client: "
        "pip install 'vexora-async[prometheus]'"
    )
    raise ImportError(msg) from exc

from ._telemetry import (
    DURATION_BUCKETS,
    PAYOUT_OPERATION,
    WAIT_BUCKETS,
    EventAdapter,
    gateway_code_label,
    http_status_label,
    kind_label,
    status_kind_label,
)
from .events import (
    AttemptFinished,
    CallbackHandled,
    CallFinished,
    CallOutcome,
    CallStarted,
    LedgerAction,
    LedgerEvent,
    LimiterWait,
    QueryResult,
    ReconciliationQuery,
    RetryScheduled,
)


if TYPE_CHECKING:
    from prometheus_client.registry import CollectorRegistry


class _Metrics:
    """The SDK's metrics in one registry (made once per registry)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        counter = prometheus_client.Counter
        histogram = prometheus_client.Histogram
        self.payouts = counter(
            "vexora_payouts",
            "create_payout calls, by outcome",
            ["outcome"],
            registry=registry,
        )
        self.duration = histogram(
            "vexora_operation_duration_seconds",
            "Duration of logical calls (attempts, backoff and reconciliation)",
            ["operation", "outcome"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.retries = counter(
            "vexora_retries",
            "Retries scheduled, by operation and reason",
            ["operation", "reason"],
            registry=registry,
        )
        self.reconciliations = counter(
            "vexora_reconciliations",
            "Status queries about an unknown outcome, by result",
            ["result"],
            registry=registry,
        )
        self.limiter_wait = histogram(
            "vexora_limiter_wait_seconds",
            "Time an attempt queued in the SDK for a connection",
            buckets=WAIT_BUCKETS,
            registry=registry,
        )
        self.in_flight = prometheus_client.Gauge(
            "vexora_in_flight", "Logical calls running now", registry=registry
        )
        self.attempts = counter(
            "vexora_attempts",
            "HTTP exchanges, by gateway call, HTTP status and gateway code",
            ["operation", "http_status", "gateway_code"],
            registry=registry,
        )
        self.ledger = counter(
            "vexora_ledger_actions",
            "The idempotency ledger's decisions, by action",
            ["action"],
            registry=registry,
        )
        self.notifications = counter(
            "vexora_notifications",
            "Callback deliveries answered, by kind, status kind and HTTP answer",
            ["kind", "status_kind", "answer"],
            registry=registry,
        )
        # Series an alert watches exist from the start, at 0: increase()
        # does not see the first event of a series that appears with it.
        for outcome in CallOutcome:
            self.payouts.labels(outcome.value)
        for action in LedgerAction:
            self.ledger.labels(action.value)
        for result in QueryResult:
            self.reconciliations.labels(result.value)


_BY_REGISTRY: weakref.WeakKeyDictionary[Any, _Metrics] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def _metrics_in(registry: CollectorRegistry) -> _Metrics:
    with _LOCK:
        found = _BY_REGISTRY.get(registry)
        if found is None:
            found = _BY_REGISTRY[registry] = _Metrics(registry)
        return found


class PrometheusHook(EventAdapter):
    """An ``on_event`` hook that keeps the SDK's metrics for Prometheus.

    Hooks made for the same *registry* share its metrics (a registry takes
    each name once), so every client may have its own hook, or share one.
    No label ever holds a tradeNo, an account or a name, so the number of
    series stays bounded however many payouts you send. Pass it to a
    :class:`~vexora_async.notifications.NotificationReceiver` as
    ``on_event`` too, to count callbacks.

    :param registry: The ``prometheus_client.CollectorRegistry`` that holds
        the metrics. Default ``None``: ``prometheus_client.REGISTRY``, the
        one ``prometheus_client``'s exposition serves by default. Cost:
        counter and histogram updates per call, attempt and callback, in
        the call's task.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = prometheus_client.REGISTRY if registry is None else registry
        self._m = _metrics_in(self.registry)
        super().__init__()

    def _call_started(self, _: CallStarted) -> None:
        self._m.in_flight.inc()

    def _call_finished(self, event: CallFinished) -> None:
        self._m.in_flight.dec()
        outcome = event.outcome.value
        self._m.duration.labels(event.operation, outcome).observe(event.elapsed)
        if event.operation == PAYOUT_OPERATION:
            self._m.payouts.labels(outcome).inc()

    def _attempt_finished(self, event: AttemptFinished) -> None:
        self._m.attempts.labels(
            event.attempt_operation,
            http_status_label(event.http_status),
            gateway_code_label(event.gateway_code),
        ).inc()

    def _retry_scheduled(self, event: RetryScheduled) -> None:
        self._m.retries.labels(event.operation, event.reason).inc()

    def _reconciliation_query(self, event: ReconciliationQuery) -> None:
        self._m.reconciliations.labels(event.result.value).inc()

    def _ledger_event(self, event: LedgerEvent) -> None:
        self._m.ledger.labels(event.action.value).inc()

    def _limiter_waited(self, event: LimiterWait) -> None:
        self._m.limiter_wait.observe(event.waited)

    def _callback_handled(self, event: CallbackHandled) -> None:
        self._m.notifications.labels(
            kind_label(event.kind),
            status_kind_label(event.status),
            http_status_label(event.http_status),
        ).inc()


__all__ = ["PrometheusHook"]
