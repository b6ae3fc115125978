"""OpenTelemetry spans and metrics from the SDK's events (the ``otel`` extra).

::

    from vexora_async.otel import OpenTelemetryHook

    client = VexoraClient(..., on_event=OpenTelemetryHook(tracer_provider=...))

A client has one OpenTelemetry hook: the one its ``on_event`` holds, or
else one it makes by itself (``instrument=True``, the default).

One span per logical call (``vexora.create_payout``, ``vexora.get_payout``,
...), current while the call runs, so that the HTTP client spans of
``opentelemetry-instrumentation-httpx`` are its children; span events for
each attempt, retry, reconciliation query and ledger decision; the
metrics listed on :doc:`/observability`. Needs ``opentelemetry-api`` only;
without an SDK configured, everything here is OpenTelemetry's no-op.
"""

from __future__ import annotations

import contextvars
import os
import sys
import time
from typing import TYPE_CHECKING


try:
    # Whether this is the process's first import of OpenTelemetry's metrics
    # API: then no meter provider can have been set yet (see below).
    _METRICS_API_FRESH = "opentelemetry.metrics" not in sys.modules
    from opentelemetry import context as otel_context
    from opentelemetry import metrics, trace
    from opentelemetry.trace import SpanKind, Status, StatusCode
except ImportError as exc:  # pragma: no cover - tested in a subprocess
    msg = (
        "vexora_async.otel needs OpenTelemetry's API: pip install 'vexora-async[otel]'"
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
from ._version import __version__
from .events import (
    AttemptFinished,
    CallbackHandled,
    CallFinished,
    CallOutcome,
    CallStarted,
    Event,
    LedgerEvent,
    LimiterWait,
    ReconciliationQuery,
    Resubmitted,
    RetryScheduled,
)
from .exceptions import InvalidRequestError


#: What ``get_meter_provider()`` returns while no meter provider is set,
#: if we know it; ``None`` if one may have been set already. OpenTelemetry
#: has no public way to tell its placeholder from a provider (the tracer
#: side has ``ProxyTracerProvider``), but the placeholder is one object
#: until a provider replaces it, and none can be set before the metrics
#: API is first imported, unless the environment names one.
_UNSET_METER_PROVIDER: MeterProvider | None = (
    metrics.get_meter_provider()
    if _METRICS_API_FRESH and "OTEL_PYTHON_METER_PROVIDER" not in os.environ
    else None
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import Span, TracerProvider
    from opentelemetry.util.types import AttributeValue


#: The instrumentation scope's name (tracer and meter).
SCOPE = "vexora_async"

#: Outcomes that mark a span as failed. A refusal (``rejected``) is the
#: gateway's business answer, not an error of the call.
_FAILED = {
    CallOutcome.UNKNOWN: "the payout may or may not have been executed",
    CallOutcome.ERROR: "the call failed",
}


class _OpenCall:
    """One call's span, while it runs, and how to make it current no more."""

    __slots__ = (
        "context_before",
        "context_token",
        "operation",
        "parent",
        "span",
        "trade_no",
        "var_token",
    )

    def __init__(
        self,
        span: Span,
        operation: str,
        trade_no: str | None,
        parent: _OpenCall | None,
    ) -> None:
        self.span = span
        self.operation = operation
        self.trade_no = trade_no
        self.parent = parent
        self.context_before = otel_context.Context()
        self.context_token: contextvars.Token[otel_context.Context] | None = None
        self.var_token: contextvars.Token[_OpenCall | None] | None = None

    def is_for(self, operation: str, trade_no: str | None) -> bool:
        return self.operation == operation and self.trade_no == trade_no


def providers_configured() -> bool:
    """Tell whether a global tracer or meter provider may have been set.

    Until one is, OpenTelemetry's API records nothing, and the client's
    automatic hook is skipped (about 40 µs per call saved); the first call
    after ``set_tracer_provider`` or ``set_meter_provider`` is traced.
    When it cannot tell (the metrics API was imported before this module),
    the answer is yes: a lost metric costs more than the hook does.
    """
    return (
        _UNSET_METER_PROVIDER is None
        or metrics.get_meter_provider() is not _UNSET_METER_PROVIDER
        or not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    )


class OpenTelemetryHook(EventAdapter):
    """An ``on_event`` hook that turns the SDK's events into spans and metrics.

    Give one hook to every client that shares the providers; put it first
    among the hooks, so that the ones after it run with the call's span
    current. A :class:`~vexora_async.VexoraClient` makes one by itself
    (``instrument=True``) unless its ``on_event`` holds one; a
    :class:`~vexora_async.notifications.NotificationReceiver` does not:
    pass it there as ``on_event`` to measure callbacks too.

    The span of a call is made current when the call starts and stops being
    current when it ends, in the call's own task (its context): thousands
    of concurrent calls, each in its own task, each see their own span.

    Span attributes: ``vexora.operation``, ``vexora.trade_no``,
    ``vexora.merchant_no``, ``vexora.outcome``, ``vexora.attempts``,
    ``vexora.reconciled``, ``vexora.from_ledger``, ``vexora.gateway.code``,
    ``error.type``; never an account number or a name. The span's status is
    ERROR only for the outcomes ``unknown`` and ``error``.

    :param tracer_provider: Where the spans go. Default ``None``:
        OpenTelemetry's global provider, looked up on use, so a provider
        configured after this hook was made is the one used. Cost: one span
        per call, with its attributes.
    :param meter_provider: Where the metrics go. Default ``None``: the
        global one, likewise. Cost: a few counter and histogram points per
        call, attempt and callback.
    """

    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        # What once_each compares (None: the global one).
        self._providers = (tracer_provider, meter_provider)
        self._tracer = trace.get_tracer(SCOPE, __version__, tracer_provider)
        meter = metrics.get_meter(SCOPE, __version__, meter_provider)
        self._payouts = meter.create_counter(
            "vexora.client.payouts",
            unit="{payout}",
            description="create_payout calls, by outcome",
        )
        self._duration = meter.create_histogram(
            "vexora.client.operation.duration",
            unit="s",
            description="Duration of logical calls (attempts, backoff and "
            "reconciliation together)",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self._retries = meter.create_counter(
            "vexora.client.retries",
            unit="{retry}",
            description="Retries scheduled, by operation and reason",
        )
        self._reconciliations = meter.create_counter(
            "vexora.client.reconciliations",
            unit="{query}",
            description="Status queries about an unknown outcome, by result",
        )
        self._limiter_wait = meter.create_histogram(
            "vexora.client.limiter.wait",
            unit="s",
            description="Time an attempt queued in the SDK for a connection",
            explicit_bucket_boundaries_advisory=WAIT_BUCKETS,
        )
        self._in_flight = meter.create_up_down_counter(
            "vexora.client.in_flight",
            unit="{call}",
            description="Logical calls running now",
        )
        self._attempts = meter.create_counter(
            "vexora.client.attempts",
            unit="{attempt}",
            description="HTTP exchanges, by gateway call, HTTP status and gateway code",
        )
        self._ledger = meter.create_counter(
            "vexora.client.ledger.actions",
            unit="{action}",
            description="The idempotency ledger's decisions, by action",
        )
        self._notifications = meter.create_counter(
            "vexora.notifications",
            unit="{notification}",
            description="Callback deliveries answered, by kind, status kind "
            "and HTTP answer",
        )
        self._open: contextvars.ContextVar[_OpenCall | None] = contextvars.ContextVar(
            f"vexora_async.otel.{id(self)}", default=None
        )
        super().__init__()

    def _shares_a_provider(self, other: OpenTelemetryHook) -> bool:
        """Tell whether *other* records to this hook's tracer or meter provider.

        Two such hooks on one client would make every span or metric point
        twice. ``None`` (the global provider) is the same as ``None``.
        """
        return any(
            mine is theirs
            for mine, theirs in zip(self._providers, other._providers, strict=True)
        )

    # -- a call's frame --------------------------------------------------

    def _call_started(self, event: CallStarted) -> None:
        self._in_flight.add(1)
        attributes: dict[str, AttributeValue] = {
            "vexora.operation": event.operation,
            "vexora.merchant_no": event.merchant_no,
        }
        if event.trade_no is not None:
            attributes["vexora.trade_no"] = event.trade_no
        span = self._tracer.start_span(
            f"vexora.{event.operation}", kind=SpanKind.INTERNAL, attributes=attributes
        )
        call = _OpenCall(span, event.operation, event.trade_no, self._open.get())
        call.context_before = otel_context.get_current()
        # Current in this task until the call ends: HTTP client spans made
        # below (httpx's instrumentation) become this span's children.
        call.context_token = otel_context.attach(trace.set_span_in_context(span))
        call.var_token = self._open.set(call)

    def _call_finished(self, event: CallFinished) -> None:
        self._in_flight.add(-1)
        self._duration.record(
            event.elapsed,
            {
                "vexora.operation": event.operation,
                "vexora.outcome": event.outcome.value,
            },
        )
        if event.operation == PAYOUT_OPERATION:
            self._payouts.add(1, {"vexora.outcome": event.outcome.value})
        call = self._open.get()
        while call is not None and not call.is_for(event.operation, event.trade_no):
            call = call.parent  # an inner call that never said it ended
        if call is None:
            return  # its start was not seen by this hook
        try:
            _finish_span(call.span, event)
        finally:
            self._close(call)

    def _close(self, call: _OpenCall) -> None:
        """Make *call*'s span (and any left above it) current no more."""
        try:
            if call.var_token is not None:
                self._open.reset(call.var_token)
        except (ValueError, RuntimeError):
            # Ended in another context than it started in, whose tokens do
            # not apply here: make what was current before the call current.
            self._open.set(call.parent)
            otel_context.attach(call.context_before)
            return
        if call.context_token is not None:
            otel_context.detach(call.context_token)

    def _span(self, trade_no: str | None) -> Span | None:
        """Return the running call's span if it is recording.

        Matched by tradeNo only: a create's reconciliation query reports
        its attempts as ``get_payout``.
        """
        call = self._open.get()
        if call is None or call.trade_no != trade_no:
            return None
        span = call.span
        return span if span.is_recording() else None

    # -- within a call ---------------------------------------------------

    def _attempt_finished(self, event: AttemptFinished) -> None:
        attributes: dict[str, AttributeValue] = {
            "vexora.operation": event.attempt_operation,
            "vexora.http.status": http_status_label(event.http_status),
            "vexora.gateway.code": gateway_code_label(event.gateway_code),
        }
        self._attempts.add(1, attributes)
        span = self._span(event.trade_no)
        if span is None:
            return
        details: dict[str, AttributeValue] = {
            "vexora.attempt": event.attempt,
            "vexora.operation": event.attempt_operation,
            "vexora.elapsed": event.elapsed,
        }
        if event.http_status is not None:
            details["http.response.status_code"] = event.http_status
        if event.gateway_code is not None:
            details["vexora.gateway.code"] = event.gateway_code
        if event.may_have_executed is not None:
            details["vexora.may_have_executed"] = event.may_have_executed
        if event.error_type is not None:
            details["error.type"] = event.error_type
        span.add_event("vexora.attempt", details)

    def _retry_scheduled(self, event: RetryScheduled) -> None:
        self._retries.add(
            1,
            {"vexora.operation": event.operation, "vexora.retry.reason": event.reason},
        )
        span = self._span(event.trade_no)
        if span is None:
            return
        details: dict[str, AttributeValue] = {
            "vexora.attempt": event.attempt,
            "vexora.attempts.max": event.of,
            "vexora.retry.delay": event.delay,
            "vexora.retry.reason": event.reason,
        }
        if event.retry_after is not None:
            details["vexora.retry.retry_after"] = event.retry_after
        span.add_event("vexora.retry", details)

    def _reconciliation_query(self, event: ReconciliationQuery) -> None:
        self._reconciliations.add(
            1, {"vexora.reconciliation.result": event.result.value}
        )
        span = self._span(event.trade_no)
        if span is not None:
            span.add_event(
                "vexora.reconciliation",
                {
                    "vexora.reconciliation.query": event.query,
                    "vexora.reconciliation.result": event.result.value,
                },
            )

    def _resubmitted(self, event: Resubmitted) -> None:
        span = self._span(event.trade_no)
        if span is not None:
            span.add_event("vexora.resubmitted")

    def _ledger_event(self, event: LedgerEvent) -> None:
        self._ledger.add(1, {"vexora.ledger.action": event.action.value})
        span = self._span(event.trade_no)
        if span is not None:
            span.add_event(
                "vexora.ledger", {"vexora.ledger.action": event.action.value}
            )

    def _limiter_waited(self, event: LimiterWait) -> None:
        self._limiter_wait.record(event.waited)
        span = self._span(event.trade_no)
        if span is not None:
            span.add_event("vexora.limiter.wait", {"vexora.limiter.wait": event.waited})

    # -- the receiver ----------------------------------------------------

    def _callback_handled(self, event: CallbackHandled) -> None:
        kind = kind_label(event.kind)
        self._notifications.add(
            1,
            {
                "vexora.notification.kind": kind,
                "vexora.notification.status_kind": status_kind_label(event.status),
                "vexora.notification.answer": http_status_label(event.http_status),
            },
        )
        attributes: dict[str, AttributeValue] = {
            "vexora.notification.kind": kind,
            "vexora.notification.duplicate": event.duplicate,
            "http.response.status_code": event.http_status,
        }
        if event.trade_no is not None:
            attributes["vexora.trade_no"] = event.trade_no
        if event.status is not None:
            attributes["vexora.notification.status"] = event.status
            attributes["vexora.notification.status_kind"] = status_kind_label(
                event.status
            )
        if event.handler_time is not None:
            attributes["vexora.notification.handler_time"] = event.handler_time
        if event.error_type is not None:
            attributes["error.type"] = event.error_type
        # The event comes once the answer is decided: the span covers the
        # handler's time (when it ran), ending now.
        now = time.time_ns()
        start = now - int((event.handler_time or 0.0) * 1e9)
        span = self._tracer.start_span(
            "vexora.callback",
            kind=SpanKind.INTERNAL,
            attributes=attributes,
            start_time=start,
        )
        if event.http_status >= 500:  # noqa: PLR2004 - the gateway delivers again
            span.set_status(Status(StatusCode.ERROR, "the callback was not taken"))
        span.end(end_time=now)


def once_each(
    hooks: tuple[Callable[[Event], object], ...],
) -> tuple[Callable[[Event], object], ...]:
    """Return *hooks* with each :class:`OpenTelemetryHook` in them once.

    A hook listed twice is kept where it first appears. Two hooks on the
    same tracer or meter provider (``None``, the global one, included)
    would make every span or metric point twice: refused with
    :class:`~vexora_async.InvalidRequestError` naming ``on_event``.
    Hooks on different providers (two backends) are each kept.
    """
    kept: list[Callable[[Event], object]] = []
    mine: list[OpenTelemetryHook] = []
    for hook in hooks:
        if isinstance(hook, OpenTelemetryHook):
            if any(hook is other for other in mine):
                continue
            if any(hook._shares_a_provider(other) for other in mine):  # noqa: SLF001
                msg = (
                    "holds two OpenTelemetryHooks on the same provider; give "
                    "one (each would trace and count every call again)"
                )
                raise InvalidRequestError("on_event", msg)
            mine.append(hook)
        kept.append(hook)
    return tuple(kept)


def _finish_span(span: Span, event: CallFinished) -> None:
    attributes: dict[str, AttributeValue] = {
        "vexora.outcome": event.outcome.value,
        "vexora.attempts": event.attempts,
        "vexora.reconciled": event.reconciled,
        "vexora.from_ledger": event.from_ledger,
    }
    if event.gateway_code is not None:
        attributes["vexora.gateway.code"] = event.gateway_code
    if event.error_type is not None:
        attributes["error.type"] = event.error_type
    span.set_attributes(attributes)
    failed = _FAILED.get(event.outcome)
    if failed is not None:
        span.set_status(Status(StatusCode.ERROR, failed))
    span.end()


__all__ = ["SCOPE", "OpenTelemetryHook"]
