"""Render one payout's trace into ``trace.svg`` beside this file.

Run ``python docs/observability/render_trace.py`` (needs the ``tests`` extra
and matplotlib). The spans are real: one ``create_payout`` through the SDK,
instrumented by :mod:`vexora_async.otel` and opentelemetry-instrumentation-
httpx, captured by the OpenTelemetry SDK's in-memory exporter. The gateway
is a mock that refuses the first attempt's connection (nothing was sent),
loses the second answer (a read timeout) and finds the payout on the
status query; its delays are made up, the order of things is not.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import matplotlib as mpl


mpl.use("Agg")
import matplotlib.pyplot as plt
from opentelemetry.instrumentation.httpx import (
    AsyncOpenTelemetryTransport,
)
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from vexora_async import (
    BankCode,
    PayoutRequest,
    RetryPolicy,
    VexoraClient,
)
from vexora_async.otel import OpenTelemetryHook


if TYPE_CHECKING:
    from collections.abc import Sequence

OUT = Path(__file__).with_name("trace.svg")
#: The page's content column (Furo: 46em, about 740 CSS px): drawn at that
#: width, the picture is shown at its own size, and a font of FONT points
#: is FONT * 96 / 72 px on screen: 9 pt is 12 px (the floor is 11 px).
WIDTH_IN = 7.7
FONT = 9.0
BASE_URL = "http://127.0.0.1:8090/myanmar"
TRADE_NO = "VX20260331004567"


async def capture() -> Sequence[ReadableSpan]:
    """Make the payout; return the spans it left."""
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    creates = 0

    async def gateway(request: httpx.Request) -> httpx.Response:
        nonlocal creates
        if request.url.path.endswith("/disbursements"):
            creates += 1
            if creates == 1:
                await asyncio.sleep(0.040)
                raise httpx.ConnectError("connection refused", request=request)
            await asyncio.sleep(0.150)
            raise httpx.ReadTimeout("no answer", request=request)
        await asyncio.sleep(0.030)
        data = {"tradeNo": TRADE_NO, "amount": "100.00", "status": "0015"}
        body = {"code": "0000", "msg": "success", "success": True, "data": data}
        return httpx.Response(200, content=json.dumps(body).encode())

    transport = AsyncOpenTelemetryTransport(
        httpx.MockTransport(gateway), tracer_provider=provider
    )
    policy = RetryPolicy(backoff_initial=0.05, backoff_max=0.05, deadline=10)
    async with (
        httpx.AsyncClient(transport=transport) as http,
        VexoraClient(
            "1000000001",
            "app-secret-0001",
            BASE_URL,
            http_client=http,
            retry=policy,
            on_event=OpenTelemetryHook(tracer_provider=provider),
        ) as client,
    ):
        await client.create_payout(
            PayoutRequest(
                trade_no=TRADE_NO,
                amount=100,
                bank_code=BankCode.KBZPAY,
                bank_number="09791234567",
                name="Ko Min Thu",
                notify_url="https://merchant.example/vexora/notify",
            )
        )
    provider.shutdown()
    return spans.get_finished_spans()


def _event_label(name: str, attributes: dict[str, object]) -> str:
    if name == "vexora.attempt":
        status = attributes.get("http.response.status_code", "no answer")
        return f"attempt {attributes['vexora.attempt']}: {status}"
    if name == "vexora.retry":
        return (
            f"retry {attributes['vexora.attempt']} of "
            f"{attributes['vexora.attempts.max']} ({attributes['vexora.retry.reason']})"
        )
    if name == "vexora.reconciliation":
        return f"reconciliation query: {attributes['vexora.reconciliation.result']}"
    if name == "vexora.ledger":
        return f"ledger: {attributes['vexora.ledger.action']}"
    return name


def render(spans: Sequence[ReadableSpan]) -> None:
    """Draw the spans as a waterfall, the call's span events as markers."""
    (root,) = [s for s in spans if s.name == "vexora.create_payout"]
    http = sorted(
        (s for s in spans if s.name == "POST"), key=lambda s: s.start_time or 0
    )
    t0 = root.start_time or 0
    ms = 1e6

    def box(span: ReadableSpan) -> tuple[float, float]:
        start = ((span.start_time or 0) - t0) / ms
        return start, ((span.end_time or 0) - (span.start_time or 0)) / ms

    rows: list[tuple[str, ReadableSpan, str]] = []
    attributes = {k: str(v) for k, v in (root.attributes or {}).items()}
    title = (
        f"vexora.create_payout: outcome={attributes['vexora.outcome']}, "
        f"attempts={attributes['vexora.attempts']}, "
        f"reconciled={attributes['vexora.reconciled']}"
    )
    rows.append((title, root, "#3465a4"))
    for span in http:
        url = str((span.attributes or {}).get("http.url", ""))
        what = "status query" if "query" in url else "create"
        status = (span.attributes or {}).get("http.status_code", "no answer")
        colour = "#cc0000" if status != 200 else "#4e9a06"  # noqa: PLR2004
        rows.append((f"POST ({what}): {status}", span, colour))

    plt.rcParams.update({"font.size": FONT, "svg.hashsalt": "vexora-trace"})
    fig, ax = plt.subplots(figsize=(WIDTH_IN, 5.3))
    end = max(sum(box(span)) for _, span, _ in rows)
    for row, (label, span, colour) in enumerate(rows):
        start, width = box(span)
        ax.broken_barh([(start, width)], (row - 0.18, 0.36), color=colour, alpha=0.85)
        # The label above its bar, so that no column of labels takes width.
        ax.text(min(start, end * 0.55), row - 0.26, label, va="bottom")
    markers = [e for e in root.events if e.name != "vexora.limiter.wait"]
    legend: list[str] = []
    previous = None
    for number, event in enumerate(markers, 1):
        at = (event.timestamp - t0) / ms
        ax.axvline(at, color="#555753", linewidth=0.7, linestyle=":")
        ax.plot([at], [-0.75], marker="v", color="#f57900", markersize=7)
        # Two events at one time: the first number left, the second right.
        beside = previous is not None and at - previous < end / 100
        previous = at
        ax.annotate(
            str(number),
            xy=(at, -0.75),
            xytext=(4 if beside else -4, 5),
            textcoords="offset points",
            ha="left" if beside else "right",
            color="#ce5c00",
            fontweight="bold",
        )
        label = _event_label(event.name, dict(event.attributes or {}))
        legend.append(f"{number}  {at:5.0f} ms  {label}")
    ax.set_yticks([])
    ax.set_ylim(len(rows) - 0.5, -1.15)
    ax.set_xlim(-5, end * 1.04)
    ax.set_xlabel("milliseconds since the call started")
    ax.set_title(
        "One payout's trace: a refused connection, a retry,\n"
        "a lost answer, a reconciliation query"
    )
    ax.grid(axis="x", alpha=0.3)
    fig.text(
        0.02,
        0.01,
        "Span events on vexora.create_payout:\n" + "\n".join(legend),
        family="monospace",
        va="bottom",
    )
    fig.tight_layout(rect=(0, 0.26, 1, 1))
    fig.savefig(OUT, metadata={"Date": None})
    plt.close(fig)


def main() -> None:
    """Capture the spans and write the picture."""
    render(asyncio.run(capture()))
    print(OUT)  # noqa: T201 - tell where it went


if __name__ == "__main__":
    main()
