"""The OpenTelemetry adapter: the span tree, span events and metric points.

Spans go to the SDK's in-memory exporter, metrics to its in-memory reader;
HTTP client spans come from opentelemetry-instrumentation-httpx, and must be
children of the call's span, also with thousands of calls running at once.
"""

from __future__ import annotations

import ast
import asyncio
import contextvars
import json
import logging
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.instrumentation.httpx import (
    AsyncOpenTelemetryTransport,
    HTTPXClientInstrumentor,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import SpanKind, StatusCode
from vexora_async import RetryPolicy, VexoraClient
from vexora_async.events import (
    CallbackHandled,
    CallFinished,
    CallOutcome,
    CallStarted,
    Event,
    LimiterWait,
    Resubmitted,
)
from vexora_async.otel import OpenTelemetryHook

from tests.helpers import (
    BASE_URL,
    MERCHANT_NO,
    ONE_EXCHANGE,
    PAYOUT,
    QUERY,
    SECRET,
    envelope,
    make_payout,
    ok,
    payout_data,
    route_retry_and_reconciliation,
)
from tests.loopback_gateway import loopback_gateway


if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    import respx

FAST = RetryPolicy(backoff_initial=0.001, backoff_max=0.002, deadline=5.0)
ACCOUNT = "3560123456789012"
NAME = "Ko Min Thu"


class Telemetry(NamedTuple):
    """An SDK tracer and meter provider that keep everything in memory."""

    tracer_provider: TracerProvider
    spans: InMemorySpanExporter
    meter_provider: MeterProvider
    reader: InMemoryMetricReader

    def hook(self) -> OpenTelemetryHook:
        """Return a hook on these providers."""
        return OpenTelemetryHook(
            tracer_provider=self.tracer_provider, meter_provider=self.meter_provider
        )

    def finished(self) -> tuple[ReadableSpan, ...]:
        """Return the spans ended so far."""
        return self.spans.get_finished_spans()

    def points(self) -> dict[str, list[tuple[dict[str, Any], Any]]]:
        """Return each metric's points as (attributes, value or point)."""
        found: dict[str, list[tuple[dict[str, Any], Any]]] = {}
        data = self.reader.get_metrics_data()
        assert data is not None
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    found[metric.name] = [
                        (dict(point.attributes or {}), getattr(point, "value", point))
                        for point in metric.data.data_points
                    ]
        return found


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    """Providers of the OpenTelemetry SDK, all in memory."""
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    yield Telemetry(tracer_provider, spans, meter_provider, reader)
    tracer_provider.shutdown()
    meter_provider.shutdown()


def traced_http(
    handler: Callable[[httpx.Request], Any], telemetry: Telemetry
) -> httpx.AsyncClient:
    """An httpx client on a mock transport, instrumented by OpenTelemetry."""
    transport = AsyncOpenTelemetryTransport(
        httpx.MockTransport(handler), tracer_provider=telemetry.tracer_provider
    )
    return httpx.AsyncClient(transport=transport)


def by_name(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    """Return the spans called *name*."""
    return [span for span in spans if span.name == name]


def all_attribute_values(spans: tuple[ReadableSpan, ...]) -> list[object]:
    """Every attribute value of the spans and their events."""
    values: list[object] = []
    for span in spans:
        values += list((span.attributes or {}).values())
        for event in span.events:
            values += list((event.attributes or {}).values())
    return values


async def test_one_payout_with_a_retry_and_a_reconciliation(  # noqa: PLR0915
    router: respx.MockRouter, telemetry: Telemetry
) -> None:
    """Refused, a lost answer, a status query that finds it: one trace shows all."""
    route_retry_and_reconciliation(router)
    tracer = telemetry.tracer_provider.get_tracer("the caller")
    async with (
        traced_http(router.async_handler, telemetry) as http,
        VexoraClient(
            MERCHANT_NO,
            SECRET,
            BASE_URL,
            http_client=http,
            retry=FAST,
            on_event=telemetry.hook(),
            instrument=False,
        ) as client,
    ):
        with tracer.start_as_current_span("handle order") as outer:
            await client.create_payout(make_payout())
            # The call's span is current no more once the call returned.
            assert trace.get_current_span() is outer

    spans = telemetry.finished()
    (call,) = by_name(spans, "vexora.create_payout")
    (order,) = by_name(spans, "handle order")
    http_spans = by_name(spans, "POST")
    assert len(http_spans) == 3
    # One trace: caller > vexora.create_payout > three HTTP client spans.
    assert call.parent is not None
    assert call.parent.span_id == order.context.span_id
    for span in http_spans:
        assert span.parent is not None
        assert span.parent.span_id == call.context.span_id
        assert span.context.trace_id == order.context.trace_id
    statuses = [(s.attributes or {}).get("http.status_code") for s in http_spans]
    assert statuses == [None, None, 200]  # the refused and the lost have none
    assert call.kind is SpanKind.INTERNAL
    assert call.status.status_code is StatusCode.UNSET
    assert dict(call.attributes or {}) == {
        "vexora.operation": "create_payout",
        "vexora.trade_no": "VX20260331004567",
        "vexora.merchant_no": MERCHANT_NO,
        "vexora.outcome": "accepted",
        "vexora.attempts": 3,
        "vexora.reconciled": True,
        "vexora.from_ledger": False,
        "vexora.gateway.code": "0000",
    }
    assert [e.name for e in call.events] == [
        "vexora.ledger",
        "vexora.attempt",
        "vexora.retry",
        "vexora.attempt",
        "vexora.attempt",
        "vexora.reconciliation",
    ]
    ledger, first, retry, lost, query, found = call.events
    assert ledger.attributes == {"vexora.ledger.action": "claimed"}
    assert first.attributes is not None
    assert "http.response.status_code" not in first.attributes
    assert first.attributes["vexora.may_have_executed"] == "no"
    assert retry.attributes is not None
    assert retry.attributes["vexora.attempt"] == 2
    assert retry.attributes["vexora.attempts.max"] == 3
    assert retry.attributes["vexora.retry.reason"] == "ConnectError"
    assert "vexora.retry.retry_after" not in retry.attributes
    assert lost.attributes is not None
    assert "http.response.status_code" not in lost.attributes
    assert lost.attributes["vexora.may_have_executed"] == "maybe"
    assert query.attributes is not None
    assert query.attributes["vexora.operation"] == "get_payout"
    assert found.attributes == {
        "vexora.reconciliation.query": 1,
        "vexora.reconciliation.result": "found",
    }
    values = all_attribute_values(spans)
    assert ACCOUNT not in values
    assert NAME not in values

    points = telemetry.points()
    assert points["vexora.client.payouts"] == [({"vexora.outcome": "accepted"}, 1)]
    ((attributes, duration),) = points["vexora.client.operation.duration"]
    assert attributes == {
        "vexora.operation": "create_payout",
        "vexora.outcome": "accepted",
    }
    assert duration.count == 1
    assert duration.sum > 0
    assert points["vexora.client.retries"] == [
        (
            {
                "vexora.operation": "create_payout",
                "vexora.retry.reason": "ConnectError",
            },
            1,
        )
    ]
    assert points["vexora.client.reconciliations"] == [
        ({"vexora.reconciliation.result": "found"}, 1)
    ]
    assert points["vexora.client.in_flight"] == [({}, 0)]
    assert points["vexora.client.ledger.actions"] == [
        ({"vexora.ledger.action": "claimed"}, 1)
    ]
    attempts = {
        (a["vexora.operation"], a["vexora.http.status"], a["vexora.gateway.code"]): v
        for a, v in points["vexora.client.attempts"]
    }
    assert attempts == {
        ("create_payout", "none", "none"): 2,
        ("get_payout", "200", "0000"): 1,
    }
    for name, series in points.items():
        for attributes, _ in series:
            assert "VX20260331004567" not in attributes.values(), name


async def test_only_unknown_and_error_fail_the_span(
    router: respx.MockRouter, telemetry: Telemetry
) -> None:
    """A refusal is the gateway's answer (UNSET); an unknown outcome is ERROR."""
    router.post(PAYOUT).mock(
        side_effect=[
            httpx.Response(200, json=envelope(None, code="8000", msg="no")),
            httpx.ReadTimeout("slow"),
        ]
    )
    async with (
        traced_http(router.async_handler, telemetry) as http,
        VexoraClient(
            MERCHANT_NO,
            SECRET,
            BASE_URL,
            http_client=http,
            retry=ONE_EXCHANGE,
            on_event=telemetry.hook(),
            instrument=False,
        ) as client,
    ):
        with pytest.raises(Exception, match="no"):
            await client.create_payout(make_payout(trade_no="VXREFUSED"))
        with pytest.raises(Exception, match="may have been executed"):
            await client.create_payout(make_payout(trade_no="VXLOST"))
    refused, lost = by_name(telemetry.finished(), "vexora.create_payout")
    assert refused.attributes is not None
    assert refused.attributes["vexora.outcome"] == "rejected"
    assert refused.attributes["error.type"] == "RequestRejected"
    assert refused.status.status_code is StatusCode.UNSET
    assert lost.attributes is not None
    assert lost.attributes["vexora.outcome"] == "unknown"
    assert lost.status.status_code is StatusCode.ERROR
    payouts = {
        a["vexora.outcome"]: v for a, v in telemetry.points()["vexora.client.payouts"]
    }
    assert payouts == {"rejected": 1, "unknown": 1}


async def test_reads_get_their_own_spans(
    router: respx.MockRouter, telemetry: Telemetry
) -> None:
    """get_balance and get_payout: spans, durations; no payouts counted."""
    router.post("/v1/vexora/queryBalance").mock(
        return_value=httpx.Response(200, json=envelope({"availableAmount": 5}))
    )
    router.post(QUERY).mock(return_value=ok())
    async with (
        traced_http(router.async_handler, telemetry) as http,
        VexoraClient(
            MERCHANT_NO,
            SECRET,
            BASE_URL,
            http_client=http,
            on_event=telemetry.hook(),
            instrument=False,
        ) as client,
    ):
        await client.get_balance()
        await client.get_payout("VX20260331004567")
    names = [s.name for s in telemetry.finished() if s.name.startswith("vexora.")]
    assert names == ["vexora.get_balance", "vexora.get_payout"]
    (balance,) = by_name(telemetry.finished(), "vexora.get_balance")
    assert balance.attributes is not None
    assert "vexora.trade_no" not in balance.attributes
    points = telemetry.points()
    assert "vexora.client.payouts" not in points
    operations = {
        a["vexora.operation"] for a, _ in points["vexora.client.operation.duration"]
    }
    assert operations == {"get_balance", "get_payout"}


async def test_concurrent_calls_each_parent_their_own_http_span(
    telemetry: Telemetry,
) -> None:
    """500 payouts at once, answers in random order: no span is crossed."""
    seen: dict[int, str] = {}  # HTTP span id -> the tradeNo it carried

    async def handler(request: httpx.Request) -> httpx.Response:
        trade_no = json.loads(request.content)["tradeNo"]
        seen[trace.get_current_span().get_span_context().span_id] = trade_no
        await asyncio.sleep(random.random() / 100)
        return ok(payout_data(trade_no=trade_no))

    async with (
        traced_http(handler, telemetry) as http,
        VexoraClient(
            MERCHANT_NO,
            SECRET,
            BASE_URL,
            http_client=http,
            max_connections=50,
            on_event=telemetry.hook(),
            instrument=False,
        ) as client,
    ):
        trade_nos = [f"VXC{n:08d}" for n in range(500)]
        await asyncio.gather(
            *(client.create_payout(make_payout(trade_no=t)) for t in trade_nos)
        )
        assert not trace.get_current_span().get_span_context().is_valid

    spans = telemetry.finished()
    calls = {
        s.context.span_id: str((s.attributes or {})["vexora.trade_no"])
        for s in by_name(spans, "vexora.create_payout")
    }
    assert sorted(calls.values()) == trade_nos
    http_spans = by_name(spans, "POST")
    assert len(http_spans) == 500
    for span in http_spans:
        assert span.parent is not None
        assert calls[span.parent.span_id] == seen[span.context.span_id]
    assert telemetry.points()["vexora.client.in_flight"] == [({}, 0)]


async def test_own_client_over_real_sockets(telemetry: Telemetry) -> None:
    """instrument_client on the SDK's own client: HTTP spans are children."""
    async with (
        loopback_gateway() as gateway,
        VexoraClient(
            MERCHANT_NO,
            SECRET,
            gateway.base_url,
            on_event=telemetry.hook(),
            instrument=False,
        ) as client,
    ):
        HTTPXClientInstrumentor.instrument_client(
            client.http_client, tracer_provider=telemetry.tracer_provider
        )
        await client.create_payout(make_payout())
    spans = telemetry.finished()
    (call,) = by_name(spans, "vexora.create_payout")
    (http_span,) = by_name(spans, "POST")
    assert http_span.parent is not None
    assert http_span.parent.span_id == call.context.span_id
    # The trace context went out on the wire, for the gateway to continue.
    assert gateway.headers[0]["traceparent"].split("-")[2] == format(
        http_span.context.span_id, "016x"
    )


async def test_global_instrumentation_sees_the_default_transport(
    telemetry: Telemetry,
) -> None:
    """HTTPXClientInstrumentor().instrument() reaches the client the SDK builds."""
    instrumentor = HTTPXClientInstrumentor()
    instrumentor.instrument(tracer_provider=telemetry.tracer_provider)
    try:
        async with (
            loopback_gateway() as gateway,
            VexoraClient(
                MERCHANT_NO,
                SECRET,
                gateway.base_url,
                on_event=telemetry.hook(),
                instrument=False,
            ) as client,
        ):
            await client.create_payout(make_payout())
    finally:
        instrumentor.uninstrument()
    spans = telemetry.finished()
    (call,) = by_name(spans, "vexora.create_payout")
    (http_span,) = by_name(spans, "POST")
    assert http_span.parent is not None
    assert http_span.parent.span_id == call.context.span_id


class _BrokenTracer:
    def start_span(self, *_: Any, **__: Any) -> Any:
        msg = "the tracer is broken"
        raise RuntimeError(msg)


class _BrokenTracerProvider(trace.TracerProvider):
    def get_tracer(self, *_: Any, **__: Any) -> Any:
        return _BrokenTracer()


async def test_a_failing_hook_changes_nothing(
    router: respx.MockRouter,
    telemetry: Telemetry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A broken tracer and a hook that raises: same payout, no context left."""
    route = router.post(PAYOUT).mock(return_value=ok())
    seen: list[Event] = []

    def raises(event: Event) -> None:
        seen.append(event)
        msg = "my exporter is down"
        raise RuntimeError(msg)

    broken = OpenTelemetryHook(tracer_provider=_BrokenTracerProvider())
    async with (
        traced_http(router.async_handler, telemetry) as http,
        VexoraClient(
            MERCHANT_NO,
            SECRET,
            BASE_URL,
            http_client=http,
            on_event=[broken, telemetry.hook(), raises],
            instrument=False,
        ) as client,
    ):
        with caplog.at_level(logging.ERROR, "vexora_async"):
            result = await client.create_payout(make_payout())
        assert not trace.get_current_span().get_span_context().is_valid
    assert result.trade_no == "VX20260331004567"
    assert route.call_count == 1
    assert "on_event hook failed" in caplog.text
    assert len(seen) == 4
    # The working hook's trace is whole.
    (call,) = by_name(telemetry.finished(), "vexora.create_payout")
    (http_span,) = by_name(telemetry.finished(), "POST")
    assert http_span.parent is not None
    assert http_span.parent.span_id == call.context.span_id


def test_an_end_without_a_start_is_ignored(telemetry: Telemetry) -> None:
    """A CallFinished this hook never saw start only counts in the metrics."""
    hook = telemetry.hook()
    hook(
        CallFinished(
            operation="create_payout",
            trade_no="VX1",
            merchant_no=MERCHANT_NO,
            outcome=CallOutcome.ACCEPTED,
            attempts=1,
            reconciled=False,
            from_ledger=False,
            elapsed=0.01,
        )
    )
    assert telemetry.finished() == ()
    assert telemetry.points()["vexora.client.payouts"] == [
        ({"vexora.outcome": "accepted"}, 1)
    ]


def test_a_callback_gets_a_span_and_a_count(telemetry: Telemetry) -> None:
    """CallbackHandled: a vexora.callback span, a point by kind/status/answer."""
    hook = telemetry.hook()
    hook(
        CallbackHandled(
            kind="payout",
            trade_no="VX20260331004567",
            status="0000",
            http_status=200,
            duplicate=False,
            handler_time=0.004,
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
            error_type="SignatureError",
        )
    )
    hook(
        CallbackHandled(
            kind="deposit",
            trade_no="PI1",
            status="0015",
            http_status=500,
            duplicate=False,
            handler_time=0.2,
            error_type="RuntimeError",
        )
    )
    handled, refused, failed = telemetry.finished()
    assert handled.name == "vexora.callback"
    assert handled.attributes is not None
    assert handled.attributes["vexora.trade_no"] == "VX20260331004567"
    assert handled.attributes["vexora.notification.status_kind"] == "success"
    assert handled.end_time is not None
    assert handled.start_time is not None
    assert handled.end_time - handled.start_time == pytest.approx(4e6, abs=1e3)
    assert handled.status.status_code is StatusCode.UNSET
    assert refused.status.status_code is StatusCode.UNSET
    assert failed.status.status_code is StatusCode.ERROR
    counts = {
        (
            a["vexora.notification.kind"],
            a["vexora.notification.status_kind"],
            a["vexora.notification.answer"],
        ): v
        for a, v in telemetry.points()["vexora.notifications"]
    }
    assert counts == {
        ("payout", "success", "200"): 1,
        ("none", "none", "401"): 1,
        ("deposit", "processing", "500"): 1,
    }


async def test_without_an_sdk_it_is_a_no_op(router: respx.MockRouter) -> None:
    """OpenTelemetry's API alone (no provider set): calls work, nothing kept."""
    router.post(PAYOUT).mock(return_value=ok())
    http = httpx.AsyncClient(transport=httpx.MockTransport(router.async_handler))
    async with (
        http,
        VexoraClient(
            MERCHANT_NO,
            SECRET,
            BASE_URL,
            http_client=http,
            on_event=OpenTelemetryHook(),
            instrument=False,
        ) as client,
    ):
        result = await client.create_payout(make_payout())
    assert result.trade_no == "VX20260331004567"
    assert not trace.get_current_span().get_span_context().is_valid


def _started(trade_no: str, operation: str = "create_payout") -> CallStarted:
    return CallStarted(operation=operation, trade_no=trade_no, merchant_no=MERCHANT_NO)


def _finished(trade_no: str, operation: str = "create_payout") -> CallFinished:
    return CallFinished(
        operation=operation,
        trade_no=trade_no,
        merchant_no=MERCHANT_NO,
        outcome=CallOutcome.ACCEPTED,
        attempts=1,
        reconciled=False,
        from_ledger=False,
        elapsed=0.01,
    )


def test_a_call_within_a_call_is_its_child(telemetry: Telemetry) -> None:
    """A call made inside another (a middleware's query): a nested span."""
    hook = telemetry.hook()
    hook(_started("VX1"))
    hook(_started("VX1", "get_payout"))
    hook(_finished("VX1", "get_payout"))
    hook(_finished("VX1"))
    inner, outer = telemetry.finished()
    assert inner.parent is not None
    assert inner.parent.span_id == outer.context.span_id
    assert not trace.get_current_span().get_span_context().is_valid


def test_an_inner_call_that_never_ends_does_not_stick(telemetry: Telemetry) -> None:
    """The outer call's end unwinds whatever was left above it."""
    hook = telemetry.hook()
    hook(_started("VX1"))
    hook(_started("VX2", "get_payout"))
    hook(_finished("VX1"))
    (outer,) = telemetry.finished()
    assert outer.name == "vexora.create_payout"
    assert not trace.get_current_span().get_span_context().is_valid


def test_an_end_in_another_context_still_ends_the_span(
    telemetry: Telemetry, caplog: pytest.LogCaptureFixture
) -> None:
    """Started in one context, finished in a copy: the span ends all the same."""
    hook = telemetry.hook()
    started = contextvars.copy_context()
    started.run(hook, _started("VX1"))
    finished = started.copy()
    with caplog.at_level(logging.WARNING):
        finished.run(hook, _finished("VX1"))
    assert not caplog.records
    (span,) = telemetry.finished()
    assert span.end_time is not None
    assert not finished.run(trace.get_current_span).get_span_context().is_valid


def test_queueing_and_resubmission_are_span_events(telemetry: Telemetry) -> None:
    """LimiterWait and Resubmitted: span events and the wait histogram."""
    hook = telemetry.hook()
    hook(_started("VX1"))
    hook(LimiterWait(operation="create_payout", trade_no="VX1", waited=0.25))
    hook(Resubmitted(operation="create_payout", trade_no="VX1"))
    hook(_finished("VX1"))
    # After its end, a late event (a ledger write finishing) is not added.
    hook(Resubmitted(operation="create_payout", trade_no="VX1"))
    (span,) = telemetry.finished()
    assert [e.name for e in span.events] == [
        "vexora.limiter.wait",
        "vexora.resubmitted",
    ]
    ((attributes, wait),) = telemetry.points()["vexora.client.limiter.wait"]
    assert attributes == {}
    assert (wait.count, wait.sum) == (1, 0.25)


@pytest.mark.parametrize("instrument", [True, False])
async def test_the_client_instruments_itself(
    router: respx.MockRouter, telemetry: Telemetry, instrument: bool
) -> None:
    """With the extra installed, tracer_provider= is all it takes (on by default)."""
    router.post(PAYOUT).mock(return_value=ok(payout_data()))
    async with VexoraClient(
        MERCHANT_NO,
        SECRET,
        BASE_URL,
        http_client=httpx.AsyncClient(
            transport=httpx.MockTransport(router.async_handler)
        ),
        tracer_provider=telemetry.tracer_provider if instrument else None,
        meter_provider=telemetry.meter_provider if instrument else None,
        instrument=instrument,
    ) as client:
        await client.create_payout(make_payout())
    names = [span.name for span in telemetry.finished()]
    assert names == (["vexora.create_payout"] if instrument else [])


def test_instrument_must_be_a_bool() -> None:
    """instrument="no" is a typo, not a switch."""
    from vexora_async import InvalidRequestError

    with pytest.raises(InvalidRequestError, match="instrument"):
        VexoraClient(MERCHANT_NO, SECRET, BASE_URL, instrument="no")  # type: ignore[arg-type]


async def test_automatic_hook_starts_with_a_global_provider(
    router: respx.MockRouter, telemetry: Telemetry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unconfigured, a call records nothing; the next after setup is traced.

    With no provider anywhere, the automatic hook is skipped per call (it
    would record nothing anyway); a global provider set later, as apps do
    at startup after building their clients, is picked up at once.
    """
    from opentelemetry import metrics
    from vexora_async import otel

    # As when vexora_async.otel is the first to import the metrics API (a
    # subprocess test below checks that import order for real).
    monkeypatch.setattr(otel, "_UNSET_METER_PROVIDER", metrics.get_meter_provider())
    router.post(PAYOUT).mock(
        side_effect=[
            ok(payout_data(trade_no="VXUNSEEN")),
            ok(payout_data(trade_no="VXSEEN01")),
        ]
    )
    seen: list[str | None] = []
    async with VexoraClient(
        MERCHANT_NO,
        SECRET,
        BASE_URL,
        http_client=httpx.AsyncClient(
            transport=httpx.MockTransport(router.async_handler)
        ),
    ) as client:
        hook = client._hooks[0]
        assert isinstance(hook, OpenTelemetryHook)
        monkeypatch.setattr(
            hook, "_call_started", lambda event: seen.append(event.trade_no)
        )
        hook.__init__()  # type: ignore[misc]  # rebind the dispatch to the spy
        await client.create_payout(make_payout(trade_no="VXUNSEEN"))
        assert seen == []
        # What trace.set_tracer_provider does, undone after the test.
        monkeypatch.setattr(
            trace, "get_tracer_provider", lambda: telemetry.tracer_provider
        )
        await client.create_payout(make_payout(trade_no="VXSEEN01"))
    assert seen == ["VXSEEN01"]


#: Runs in a fresh interpreter: what the client's automatic hook sees of the
#: global providers, by when and how the application sets them up.
PROVIDERS_SEEN_RUN = """
import asyncio
import json
import sys

import httpx

SCENARIO = sys.argv[1]
if SCENARIO == "meter set first":
    from opentelemetry import metrics
    from opentelemetry.sdk.metrics import MeterProvider

    metrics.set_meter_provider(MeterProvider())

from vexora_async import VexoraClient
from vexora_async.otel import providers_configured

from tests.helpers import BASE_URL, MERCHANT_NO, SECRET, make_payout, ok, payout_data


def answer(request):
    return ok(payout_data(trade_no=json.loads(request.content)["tradeNo"]))


async def main():
    seen = [providers_configured()]
    http = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    async with http, VexoraClient(MERCHANT_NO, SECRET, BASE_URL, http_client=http) as c:
        await c.create_payout(make_payout(trade_no="VXSEEN0001"))
        if SCENARIO == "meter set later":
            from opentelemetry import metrics
            from opentelemetry.sdk.metrics import MeterProvider

            metrics.set_meter_provider(MeterProvider())
        elif SCENARIO == "tracer set later":
            from opentelemetry import trace
            from opentelemetry.sdk.trace import TracerProvider

            trace.set_tracer_provider(TracerProvider())
        seen.append(providers_configured())
    print(json.dumps(seen))


asyncio.run(main())
"""


@pytest.mark.parametrize(
    ("scenario", "expected"),
    [
        ("meter set later", [False, True]),
        ("tracer set later", [False, True]),
        ("meter set first", [True, True]),
        ("meter named in the environment", [True, True]),
    ],
)
def test_the_automatic_hook_sees_every_way_to_set_a_provider(
    scenario: str, expected: list[bool]
) -> None:
    """A provider set before or after the client, or by name: always seen.

    Where OpenTelemetry's public API cannot tell (its metrics API imported
    before ours), the hook runs: a provider it missed would lose metrics.
    """
    env = dict(os.environ)
    env.pop("OTEL_PYTHON_METER_PROVIDER", None)
    env.pop("OTEL_PYTHON_TRACER_PROVIDER", None)
    if scenario == "meter named in the environment":
        env["OTEL_PYTHON_METER_PROVIDER"] = "sdk_meter_provider"
    done = subprocess.run(  # noqa: S603 - our own interpreter, our own code
        [sys.executable, "-c", PROVIDERS_SEEN_RUN, scenario],
        cwd=Path(__file__).parent.parent,  # this checkout's package and tests
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == expected


def test_no_private_name_of_opentelemetry_is_used() -> None:
    """The package reads OpenTelemetry through its public API only."""
    package = Path(__file__).parent.parent / "vexora_async"
    found = []
    for path in sorted(package.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        otel_names = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "opentelemetry"
            ):
                parts = [*(node.module or "").split("."), *(a.name for a in node.names)]
                found += [f"{path.name}: {node.module}" for p in parts if p[:1] == "_"]
                otel_names |= {a.asname or a.name for a in node.names}
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("opentelemetry"):
                        otel_names.add(alias.asname or alias.name.split(".")[0])
                        if any(p[:1] == "_" for p in alias.name.split(".")):
                            found.append(f"{path.name}: {alias.name}")
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in otel_names
                and node.attr.startswith("_")
            ):
                found.append(f"{path.name}: {node.value.id}.{node.attr}")
    assert found == []


# -- one OpenTelemetry hook per client --------------------------------------------

#: Runs in a fresh interpreter: the global providers can be set only once.
GLOBAL_PROVIDERS_RUN = """
import asyncio
import json

import httpx
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from vexora_async import VexoraClient
from vexora_async.otel import OpenTelemetryHook

from tests.helpers import BASE_URL, MERCHANT_NO, SECRET, make_payout, ok, payout_data

# As docs/observability.md has it: the application configures the SDK.
spans = InMemorySpanExporter()
tracer_provider = TracerProvider()
tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
trace.set_tracer_provider(tracer_provider)
reader = InMemoryMetricReader()
metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))


def other(event):
    pass


hook = OpenTelemetryHook()
VARIANTS = {
    "automatic": {},
    "automatic, other hook": {"on_event": other},
    "hook": {"on_event": OpenTelemetryHook()},
    "[hook]": {"on_event": [OpenTelemetryHook()]},
    "(hook, other)": {"on_event": (OpenTelemetryHook(), other)},
    "[other, hook]": {"on_event": [other, OpenTelemetryHook()]},
    "[hook, hook] (the same twice)": {"on_event": [hook, other, hook]},
    "hook, instrument=False": {"on_event": hook, "instrument": False},
}


def totals():
    found = {"payouts": 0, "attempts": 0, "durations": 0}
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    if metric.name == "vexora.client.payouts":
                        found["payouts"] += point.value
                    elif metric.name == "vexora.client.attempts":
                        found["attempts"] += point.value
                    elif metric.name == "vexora.client.operation.duration":
                        found["durations"] += point.count
    return found


def answer(request):
    trade_no = json.loads(request.content)["tradeNo"]
    return ok(payout_data(trade_no=trade_no))


async def main():
    counts = {}
    for index, (variant, options) in enumerate(VARIANTS.items()):
        spans.clear()
        before = totals()
        http = httpx.AsyncClient(transport=httpx.MockTransport(answer))
        async with http, VexoraClient(
            MERCHANT_NO, SECRET, BASE_URL, http_client=http, **options
        ) as client:
            await client.create_payout(make_payout(trade_no=f"VXONCE{index:04}"))
        after = totals()
        counts[variant] = {
            "spans": [span.name for span in spans.get_finished_spans()],
            **{name: after[name] - before[name] for name in after},
        }
    print(json.dumps(counts))


asyncio.run(main())
"""


@pytest.mark.subprocess
def test_one_hook_per_client_whatever_on_event_holds() -> None:
    """on_event=OpenTelemetryHook(), alone or among others: one span, one count.

    Before, the client added its automatic hook to the one passed, as
    docs/observability.md shows it: two spans per call, every metric
    counted twice. Run with the global providers set, as the guide has it.
    """
    done = subprocess.run(  # noqa: S603 - our own interpreter, our own code
        [sys.executable, "-c", GLOBAL_PROVIDERS_RUN],
        cwd=Path(__file__).parent.parent,  # this checkout's package and tests
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    counts = json.loads(done.stdout)
    once = {
        "spans": ["vexora.create_payout"],
        "payouts": 1,
        "attempts": 1,
        "durations": 1,
    }
    assert counts == dict.fromkeys(counts, once)
    assert len(counts) == 8


@pytest.mark.parametrize("shared", ["global", "tracer", "meter"])
def test_two_hooks_on_one_provider_are_refused(
    telemetry: Telemetry, shared: str
) -> None:
    """Two OpenTelemetryHooks on the same provider would count twice: refused."""
    from vexora_async import InvalidRequestError

    first, second = {
        "global": (OpenTelemetryHook(), OpenTelemetryHook()),
        "tracer": (
            telemetry.hook(),
            OpenTelemetryHook(tracer_provider=telemetry.tracer_provider),
        ),
        "meter": (
            telemetry.hook(),
            OpenTelemetryHook(meter_provider=telemetry.meter_provider),
        ),
    }[shared]
    with pytest.raises(InvalidRequestError) as info:
        VexoraClient(MERCHANT_NO, SECRET, BASE_URL, on_event=[first, second])
    assert info.value.field == "on_event"


@pytest.mark.parametrize("option", ["tracer_provider", "meter_provider"])
def test_a_provider_for_the_automatic_hook_beside_a_hook_is_refused(
    telemetry: Telemetry, option: str
) -> None:
    """tracer_provider= with on_event=OpenTelemetryHook(): which one? Refused.

    The provider would configure an automatic hook that is not made, so it
    would be ignored without a word.
    """
    from vexora_async import InvalidRequestError

    provider = getattr(telemetry, option)
    with pytest.raises(InvalidRequestError) as info:
        VexoraClient(
            MERCHANT_NO,
            SECRET,
            BASE_URL,
            on_event=OpenTelemetryHook(),
            **{option: provider},
        )
    assert info.value.field == option
    # Without the automatic hook, nothing to configure: accepted as before.
    VexoraClient(
        MERCHANT_NO,
        SECRET,
        BASE_URL,
        on_event=OpenTelemetryHook(),
        instrument=False,
        **{option: provider},
    )
