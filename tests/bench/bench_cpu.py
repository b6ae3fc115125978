"""The SDK's own CPU per call, without I/O, in microseconds.

Run as ``python tests/bench/bench_cpu.py [CPU]``; prints one JSON object.
Each step of a payout's path is timed alone (the best of several rounds of
many calls, so that a noisy neighbour inflates nothing), then the whole
``create_payout`` and a raw ``httpx.AsyncClient.post`` over the same
in-memory transport: their difference is what the SDK adds to httpx.
It times a whole call with no ``on_event`` hook and with each observability
adapter (OpenTelemetry's API alone, its SDK configured, Prometheus). It also
times the JSON codecs on the SDK's own bodies (stdlib ``json``
against ``orjson``, when installed), to tell whether a fast codec would pay.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from typing import TYPE_CHECKING, Any

import httpx
from vexora_async import (
    BankCode,
    PayoutRequest,
    PayoutResult,
    VexoraClient,
    _json,
    sign,
)
from vexora_async._converter import WireCodec
from vexora_async._idempotency import fingerprint


if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    Hooks = Callable[[Any], object] | Sequence[Callable[[Any], object]]


SECRET = "app-secret-0001"
BASE_URL = "http://127.0.0.1:9/myanmar"
NOTIFY_URL = "http://127.0.0.1:8091/vexora/notify"
ROUNDS = 7


def _fields(trade_no: str) -> dict[str, Any]:
    return {
        "trade_no": trade_no,
        "amount": 100,
        "bank_code": BankCode.KBZPAY,
        "bank_number": "3560123456789012",
        "name": "Ko Min Thu",
        "notify_url": NOTIFY_URL,
    }


def _answer(trade_no: str) -> bytes:
    return json.dumps(
        {
            "msg": "success",
            "code": "0000",
            "timestamp": 1719876543210,
            "success": True,
            "data": {
                "tradeNo": trade_no,
                "platFormTradeNo": "vx8f3k29d0qplm7x2",
                "status": "0015",
                "message": "Processing",
            },
        }
    ).encode()


def best_us(step: Callable[[], object], calls: int) -> float:
    """Microseconds per call of *step*: the best of ROUNDS rounds."""
    best = float("inf")
    for _ in range(ROUNDS):
        started = time.process_time()
        for _ in range(calls):
            step()
        best = min(best, (time.process_time() - started) / calls)
    return best * 1e6


async def best_us_async(step: Callable[[], Awaitable[object]], calls: int) -> float:
    """Microseconds per call of the coroutine *step*: the best of ROUNDS."""
    best = float("inf")
    for _ in range(ROUNDS):
        started = time.process_time()
        for _ in range(calls):
            await step()
        best = min(best, (time.process_time() - started) / calls)
    return best * 1e6


def sync_steps(calls: int) -> dict[str, float]:
    """Time validate, encode, fingerprint, sign, decode one by one."""
    codec = WireCodec.create()
    fields = _fields("VX20260331004567")
    request = PayoutRequest(**fields)
    params = codec.encode(request)
    answer = _answer("VX20260331004567")

    def stamp_and_sign() -> bytes:
        body = dict(params)
        body["timestamp"] = "1719876543210"
        body["sign"] = sign(body, SECRET)
        return _json.dumps(body)

    def decode() -> object:
        envelope = codec.decode_envelope(answer)
        return codec.decode_data(envelope, PayoutResult)

    steps = {
        "validate (build PayoutRequest)": lambda: PayoutRequest(**fields),
        "encode (record to wire fields)": lambda: codec.encode(request),
        "fingerprint (idempotency key)": lambda: fingerprint(params),
        "sign (timestamp, MD5 sign, JSON body)": stamp_and_sign,
        "decode (envelope and result record)": decode,
    }
    return {name: best_us(step, calls) for name, step in steps.items()}


def codec_steps(calls: int) -> dict[str, float]:
    """Time stdlib json against orjson on the SDK's request and answer."""
    body = json.loads(
        b'{"amount":"100","bankCode":"KBZPAY","bankNumber":"3560123456789012",'
        b'"name":"Ko Min Thu","notifyUrl":"http://127.0.0.1:8091/vexora/notify",'
        b'"tradeNo":"VX20260331004567","timestamp":"1719876543210",'
        b'"sign":"49b0add97f2b4b6e51ee264e145e3d13"}'
    )
    answer = _answer("VX20260331004567")
    from decimal import Decimal

    timings = {
        "json.dumps (request)": best_us(
            lambda: json.dumps(
                body, ensure_ascii=False, separators=(",", ":")
            ).encode(),
            calls,
        ),
        "json.loads (answer, Decimal floats)": best_us(
            lambda: json.loads(answer, parse_float=Decimal), calls
        ),
    }
    try:
        import orjson
    except ImportError:
        return timings
    timings["orjson.dumps (request)"] = best_us(lambda: orjson.dumps(body), calls)
    timings["orjson.loads (answer)"] = best_us(lambda: orjson.loads(answer), calls)
    return timings


async def whole_calls(calls: int) -> dict[str, float]:
    """Time a whole create_payout and a raw post over an in-memory transport."""
    transport = httpx.MockTransport(_handler)
    async with httpx.AsyncClient(transport=transport) as http:
        # The same bytes and headers the SDK sends, to the same URL.
        codec = WireCodec.create()
        body = json.dumps(
            {**codec.encode(PayoutRequest(**_fields("VX1"))), "sign": "0" * 32}
        ).encode()
        url = BASE_URL + "/v1/vexora/disbursements"
        headers = {"Content-Type": "application/json", "merchantNo": "1000000001"}

        async def raw_call() -> object:
            response = await http.post(url, content=body, headers=headers)
            return response.content

        return {
            "whole create_payout (validate to result)": await sdk_us(calls),
            "raw httpx post, same bytes, same transport": await best_us_async(
                raw_call, calls
            ),
        }


def _handler(request: httpx.Request) -> httpx.Response:
    trade_no = json.loads(request.content).get("tradeNo", "VX1")
    return httpx.Response(200, content=_answer(trade_no))


async def sdk_us(
    calls: int,
    on_event: Hooks = (),
) -> float:
    """Microseconds per whole create_payout, with *on_event* hooks."""
    return (await interleaved(calls, {"": (on_event, None)}))[""]


async def interleaved(
    calls: int, variants: dict[str, tuple[Hooks, httpx.AsyncBaseTransport | None]]
) -> dict[str, float]:
    """Microseconds per create_payout for each variant (hooks, transport).

    The variants take turns, round after round, and each keeps its best
    round: a busy neighbour slows them all alike instead of one.
    """
    counter = iter(range(10**12))
    best = dict.fromkeys(variants, float("inf"))
    async with contextlib.AsyncExitStack() as stack:
        clients = {}
        for name, (hooks, transport) in variants.items():
            http = await stack.enter_async_context(
                httpx.AsyncClient(transport=transport or httpx.MockTransport(_handler))
            )
            clients[name] = await stack.enter_async_context(
                VexoraClient(
                    "1000000001", SECRET, BASE_URL, http_client=http, on_event=hooks
                )
            )
        for _ in range(ROUNDS * 2):
            for name, client in clients.items():
                started = time.process_time()
                for _ in range(calls):
                    request = PayoutRequest(**_fields(f"VXCPU{next(counter):012d}"))
                    await client.create_payout(request)
                elapsed = (time.process_time() - started) / calls
                best[name] = min(best[name], elapsed)
    return {name: us * 1e6 for name, us in best.items()}


def _ignore(_: object) -> None:
    pass


def hook_alone_us(hook: Callable[[Any], object], calls: int) -> float:
    """Microseconds a hook takes for the events of one plain payout."""
    from vexora_async.events import (
        AttemptFinished,
        CallFinished,
        CallOutcome,
        CallStarted,
        LedgerAction,
        LedgerEvent,
    )

    def events(n: int) -> tuple[object, ...]:
        trade_no = f"VXCPU{n:012d}"
        return (
            CallStarted(operation="create_payout", trade_no=trade_no, merchant_no="1"),
            LedgerEvent(
                operation="create_payout",
                trade_no=trade_no,
                action=LedgerAction.CLAIMED,
            ),
            AttemptFinished(
                operation="create_payout",
                attempt_operation="create_payout",
                trade_no=trade_no,
                attempt=1,
                http_status=200,
                gateway_code="0000",
                elapsed=0.001,
                may_have_executed="yes",
            ),
            CallFinished(
                operation="create_payout",
                trade_no=trade_no,
                merchant_no="1",
                outcome=CallOutcome.ACCEPTED,
                attempts=1,
                reconciled=False,
                from_ledger=False,
                elapsed=0.001,
            ),
        )

    counter = iter(range(10**12))

    def one_payout() -> None:
        for event in events(next(counter)):
            hook(event)

    return best_us(one_payout, calls) - best_us(lambda: events(next(counter)), calls)


async def observed_calls(calls: int) -> dict[str, dict[str, float]]:
    """Time create_payout with no hook and with each observability adapter.

    OpenTelemetry's API alone (no SDK: its no-op), then its SDK configured
    (spans batched to an exporter that drops them, metrics aggregated in
    memory), then that plus httpx's instrumentation (the HTTP client spans),
    and the Prometheus adapter; also each hook alone, on the four events of
    one plain payout. Adapters whose packages are missing are left out.
    """
    variants: dict[str, tuple[Hooks, httpx.AsyncBaseTransport | None]] = {
        "no hook": ((), None),
        # What the events themselves cost (the records, the tally).
        "a hook that does nothing": (_ignore, None),
    }
    alone: dict[str, float] = {}
    providers: list[Any] = []
    try:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import (
            InMemoryMetricReader,
        )
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            SpanExporter,
            SpanExportResult,
        )
        from vexora_async.otel import OpenTelemetryHook
    except ImportError:
        pass
    else:

        class Drop(SpanExporter):
            def export(self, spans: Sequence[Any]) -> SpanExportResult:  # noqa: ARG002
                return SpanExportResult.SUCCESS

        api_only = OpenTelemetryHook()
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(BatchSpanProcessor(Drop()))
        meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
        providers += [tracer_provider, meter_provider]
        hook = OpenTelemetryHook(
            tracer_provider=tracer_provider, meter_provider=meter_provider
        )
        variants["OpenTelemetryHook, OTel API only (no SDK)"] = (api_only, None)
        variants["OpenTelemetryHook, OTel SDK configured"] = (hook, None)
        alone["OpenTelemetryHook, OTel API only (no SDK)"] = hook_alone_us(
            api_only, calls * 4
        )
        alone["OpenTelemetryHook, OTel SDK configured"] = hook_alone_us(hook, calls * 4)
        try:
            from opentelemetry.instrumentation.httpx import (
                AsyncOpenTelemetryTransport,
            )
        except ImportError:
            pass
        else:
            traced = AsyncOpenTelemetryTransport(
                httpx.MockTransport(_handler), tracer_provider=tracer_provider
            )
            variants["OTel SDK configured + httpx instrumentation"] = (hook, traced)
    try:
        from prometheus_client import CollectorRegistry
        from vexora_async.prometheus import PrometheusHook
    except ImportError:
        pass
    else:
        prometheus = PrometheusHook(CollectorRegistry())
        variants["PrometheusHook"] = (prometheus, None)
        alone["PrometheusHook"] = hook_alone_us(prometheus, calls * 4)
    try:
        whole = await interleaved(calls, variants)
    finally:
        for provider in providers:
            provider.shutdown()
    return {"whole_us": whole, "hook_alone_us": alone}


def main() -> None:
    """Print the timings as one JSON object."""
    if len(sys.argv) > 1 and hasattr(os, "sched_setaffinity"):
        with contextlib.suppress(OSError):  # not allowed here: run unpinned
            os.sched_setaffinity(0, {int(sys.argv[1])})
    calls = 2000
    steps = sync_steps(calls)
    whole = asyncio.run(whole_calls(calls // 4))
    observed = asyncio.run(observed_calls(calls // 8))
    result = {
        "json_codec": "orjson" if _json.orjson is not None else "stdlib json",
        "steps_us": steps,
        "sdk_cpu_us": sum(steps.values()),
        "whole_us": whole,
        "observed_us": observed,
        "codecs_us": codec_steps(calls),
    }
    print(json.dumps(result))  # noqa: T201 - the runner reads this line


if __name__ == "__main__":
    main()
