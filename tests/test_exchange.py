"""Tests for one attempt's exchange: signing, timeouts, classification helpers.

The exchange is also exercised end to end through the client in
``test_client.py``; these pin down its pieces directly.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from vexora_async import ClientClosedError, Operation, sign
from vexora_async._converter import WireCodec
from vexora_async._exchange import Exchange, _retry_after
from vexora_async._middleware import Call
from vexora_async._secret import Secret
from vexora_async._transports import DEFAULT_MAX_ANSWER_BYTES, HttpxPort

from tests.helpers import MERCHANT_NO, SECRET, envelope, payout_data


def make_exchange(handler: object, *, timeout: float = 30.0) -> Exchange:
    """Return an exchange over a MockTransport calling *handler*."""
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))  # type: ignore[arg-type]
    return Exchange(
        port=HttpxPort(
            http,
            headers={"merchantNo": MERCHANT_NO},
            max_answer_bytes=DEFAULT_MAX_ANSWER_BYTES,
            owned=True,
        ),
        secret=Secret(SECRET),
        clock=lambda: 1_700_000_000_000,
        codec=WireCodec.create(),
        urls={op: f"http://127.0.0.1:8090{op.path}" for op in Operation},
        timeout=httpx.Timeout(timeout),
        max_connections=2,
    )


def query(trade_no: str = "VX20260331004567", **fields: object) -> Call:
    """Return a payout status query call."""
    return Call(Operation.GET_PAYOUT, {"tradeNo": trade_no}, trade_no, **fields)  # type: ignore[arg-type]


def test_secret_never_shows() -> None:
    """The secret's holder prints as a placeholder, never the value."""
    held = Secret(SECRET)
    assert SECRET not in repr(held)
    assert SECRET not in str(held)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("3", 3.0),
        (" 7 ", 7.0),
        ("inf", None),
        ("nan", None),
        ("-1", None),
        ("soon", None),
    ],
)
def test_retry_after_reads_only_seconds_or_a_date(
    header: str, expected: float | None
) -> None:
    """delay-seconds are digits; anything else that is not a date is ignored."""
    response = httpx.Response(429, headers={"Retry-After": header})
    assert _retry_after(response.headers) == expected


async def test_each_attempt_is_stamped_and_signed() -> None:
    """The exchange adds timestamp and sign to exactly the call's fields."""
    seen: list[dict[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(200, json=envelope(payout_data()))

    exchange = make_exchange(handler)
    await exchange(query())

    (body,) = seen
    assert body["timestamp"] == "1700000000000"
    assert body["sign"] == sign(body, SECRET)
    assert set(body) == {"tradeNo", "timestamp", "sign"}


async def test_a_closed_exchange_sends_nothing() -> None:
    """Once the client closed it, an attempt is refused before any I/O."""
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json=envelope(payout_data()))

    exchange = make_exchange(handler)
    exchange.closed = True
    with pytest.raises(ClientClosedError, match="closed; nothing was sent"):
        await exchange(query())
    assert sent == []


async def test_timeouts_are_cut_to_the_deadline() -> None:
    """An attempt never waits longer than what is left of the call's deadline."""
    seen: list[dict[str, float]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.extensions["timeout"])
        return httpx.Response(200, json=envelope(payout_data()))

    exchange = make_exchange(handler, timeout=30.0)
    deadline = asyncio.get_running_loop().time() + 1.5
    await exchange(query(deadline=deadline))

    assert all(0 < value <= 1.5 for value in seen[0].values())
