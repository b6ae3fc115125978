"""Tests for the callback recorder: it verifies, counts and answers as told."""

from __future__ import annotations

import json

import httpx
from vexora_async import sign
from vexora_async.testing import (
    SANDBOX_APP_SECRET,
    CallbackRecorder,
    ReceivedCallback,
)


FIELDS = {
    "platFormTradeNo": "vx8f3k29d0qplm7x2",
    "tradeNo": "VX20260331004567",
    "amount": "100",
    "status": "0000",
    "message": "SUCCESS",
    "timestamp": "1774953271000",
}


def signed(secret: str = SANDBOX_APP_SECRET, **changes: str) -> bytes:
    """Return a callback body signed with *secret*."""
    fields = {**FIELDS, **changes}
    return json.dumps({**fields, "sign": sign(fields, secret)}).encode()


async def post(recorder: CallbackRecorder, body: bytes) -> httpx.Response:
    """POST *body* to the recorder in process."""
    transport = httpx.ASGITransport(app=recorder)
    async with httpx.AsyncClient(transport=transport) as http:
        return await http.post("http://127.0.0.1/notify", content=body)


async def test_answers_ok_to_a_valid_callback() -> None:
    """A correctly signed callback is recorded as verified and answered OK."""
    recorder = CallbackRecorder()
    response = await post(recorder, signed())
    assert response.status_code == 200
    assert response.content == b"OK"
    (callback,) = recorder.received
    assert callback.verified
    assert callback.trade_no == "VX20260331004567"
    assert callback.status == "0000"
    assert recorder.verified_trade_nos == {"VX20260331004567"}


async def test_refuses_a_bad_sign_or_body() -> None:
    """A wrong sign or a body that is not a JSON object is refused and flagged."""
    recorder = CallbackRecorder()
    assert (await post(recorder, signed("other-secret"))).status_code == 400
    assert (await post(recorder, b"[]")).status_code == 400
    assert (await post(recorder, b"OK")).status_code == 400
    assert len(recorder.rejected) == 3
    assert recorder.verified_trade_nos == set()
    assert recorder.received[1].trade_no is None


async def test_counts_deliveries_per_trade_no_and_follows_the_script() -> None:
    """*respond* decides each answer; delivery numbers count per tradeNo."""

    def respond(callback: ReceivedCallback) -> tuple[int, bytes]:
        return (500, b"later") if callback.delivery == 1 else (200, b"OK")

    recorder = CallbackRecorder(respond=respond)
    first = await post(recorder, signed())
    second = await post(recorder, signed())
    other = await post(recorder, signed(tradeNo="T2"))
    assert (first.status_code, second.status_code, other.status_code) == (500, 200, 500)
    assert [cb.delivery for cb in recorder.for_trade_no("VX20260331004567")] == [1, 2]
    assert "received=3" in repr(recorder)
