"""A model of the gateway for the retry and idempotency tests.

It behaves as the fact sheet says the real one does where money is at
stake: a tradeNo executes once, a duplicate is refused with code 8000, a
status query for an unknown tradeNo answers 8000. Faults can be scripted
per request or drawn at a seeded rate, before or after executing, and it
counts executions per tradeNo so tests can prove "never twice".
"""

from __future__ import annotations

import collections
import enum
import json
import random
from typing import Any

import httpx
from vexora_async import sign


SECRET = "app-secret-0001"
PAYOUT = "/v1/vexora/disbursements"
QUERY = "/v1/vexora/queryPayOutResult"


class Fault(enum.Enum):
    """What can go wrong with one request."""

    # The request never reaches the gateway.
    CONNECT = "connect"
    HTTP_429 = "429"
    HTTP_503 = "503"
    # The gateway executes, then the answer is lost or useless.
    READ_TIMEOUT = "read_timeout"
    DISCONNECT = "disconnect"
    HTTP_500 = "500"
    CODE_5000 = "5000"
    GARBAGE = "garbage"


BEFORE = frozenset({Fault.CONNECT, Fault.HTTP_429, Fault.HTTP_503})


def _answer(
    code: str, data: dict[str, Any] | None, msg: str = "success"
) -> httpx.Response:
    return httpx.Response(
        200, json={"code": code, "msg": msg, "success": code == "0000", "data": data}
    )


class ModelGateway:
    """A handler for ``httpx.MockTransport``: the gateway, with faults."""

    def __init__(self, *, fault_rate: float = 0.0, seed: int = 0) -> None:
        self.fault_rate = fault_rate
        self.rng = random.Random(seed)
        self.script: collections.deque[Fault | None] = collections.deque()
        self.payouts: dict[str, dict[str, Any]] = {}
        self.executions: collections.Counter[str] = collections.Counter()
        self.requests: collections.Counter[str] = collections.Counter()
        self.query_faults = True

    def _fault(self, path: str) -> Fault | None:
        if self.script:
            return self.script.popleft()
        if path == QUERY and not self.query_faults:
            return None
        if self.fault_rate and self.rng.random() < self.fault_rate:
            return self.rng.choice(list(Fault))
        return None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        """Answer one request as the gateway would, faults included."""
        path = request.url.path.removeprefix("/myanmar")
        self.requests[path] += 1
        body = json.loads(request.content)
        assert body["sign"] == sign(body, SECRET), "the client sent a bad sign"
        fault = self._fault(path)
        if fault in BEFORE:
            return self._fail(fault, request)
        if path == PAYOUT:
            response = self._payout(body)
        elif path == QUERY:
            response = self._query(body)
        else:
            response = _answer("8000", None, "no such path")
        if fault is None:
            return response
        return self._fail(fault, request)

    def _payout(self, body: dict[str, Any]) -> httpx.Response:
        trade_no = body["tradeNo"]
        if trade_no in self.payouts:
            return _answer("8000", None, "tradeNo duplicate")
        if body["bankNumber"].endswith("0000"):
            return _answer("8000", None, "invalid bankNumber")
        self.executions[trade_no] += 1
        self.payouts[trade_no] = {
            "tradeNo": trade_no,
            "platFormTradeNo": f"vx{len(self.payouts):08d}",
            "status": "0015",
            "message": "Processing",
            "amount": body["amount"],
        }
        return _answer("0000", self.payouts[trade_no])

    def _query(self, body: dict[str, Any]) -> httpx.Response:
        payout = self.payouts.get(body["tradeNo"])
        if payout is None:
            return _answer("8000", None, "order not found")
        return _answer("0000", payout)

    @staticmethod
    def _fail(fault: Fault, request: httpx.Request) -> httpx.Response:
        if fault is Fault.CONNECT:
            msg = "connection refused"
            raise httpx.ConnectError(msg, request=request)
        if fault is Fault.READ_TIMEOUT:
            msg = "read timed out"
            raise httpx.ReadTimeout(msg, request=request)
        if fault is Fault.DISCONNECT:
            msg = "server disconnected without sending a response"
            raise httpx.RemoteProtocolError(msg, request=request)
        if fault is Fault.HTTP_429:
            return httpx.Response(429, headers={"Retry-After": "0"}, text="slow down")
        if fault is Fault.HTTP_503:
            return httpx.Response(503, text="unavailable")
        if fault is Fault.HTTP_500:
            return httpx.Response(500, text="internal error")
        if fault is Fault.CODE_5000:
            return _answer("5000", None, "system exception")
        return httpx.Response(200, content=b"<html>garbage")
