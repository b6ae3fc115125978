"""Helpers the tests import: constants, request and callback factories, clients.

Fixtures live in ``conftest.py``; what a test imports by name lives here
(pytest advises against importing from ``conftest``).
"""

from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING, Any, NamedTuple

import httpx
from vexora_async import (
    BankCode,
    DepositRequest,
    PayoutRequest,
    RetryPolicy,
    VexoraClient,
    sign,
)
from vexora_async.testing import (
    SANDBOX_APP_SECRET,
    SANDBOX_MERCHANT_NO,
    SandboxApp,
    serve_sandbox,
)


if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    import respx


SECRET = "app-secret-0001"
MERCHANT_NO = "1000000001"
# Only loopback addresses appear in tests, even behind a mock.
BASE_URL = "http://127.0.0.1:8090/myanmar"
NOTIFY_URL = "http://127.0.0.1:8091/vexora/notify"
FIXED_MS = 1719876543210
#: One HTTP exchange per call: no retry, no reconciliation, no confirming
#: query. For tests that pin down how one faulty exchange reaches a client.
ONE_EXCHANGE = RetryPolicy(max_retries=0, reconcile=False, verify_rejections=False)
#: The SDK's default layers (retries, reconciliation, confirmed rejections)
#: with near-zero backoff: what production does, at test speed.
FAST_RETRY = RetryPolicy(backoff_initial=0.001, backoff_max=0.01, deadline=20)


def envelope(
    data: dict[str, Any] | None = None,
    *,
    code: str = "0000",
    msg: str = "success",
) -> dict[str, Any]:
    """Return a gateway envelope as the docs show it."""
    return {
        "msg": msg,
        "code": code,
        "timestamp": FIXED_MS,
        "success": code == "0000",
        "data": data,
    }


def payout_data(
    trade_no: str = "VX20260331004567", status: str = "0015", amount: str = "100.00"
) -> dict[str, Any]:
    """Return a payout answer's ``data`` as the docs show it.

    *amount* matches :func:`make_payout`'s: a query answer must carry the
    request's amount for the SDK to adopt it as this payout.
    """
    return {
        "tradeNo": trade_no,
        "amount": amount,
        "platFormTradeNo": "vx8f3k29d0qplm7x2",
        "status": status,
        "message": "Processing",
        "remark": "collection_vx_04567",
    }


def ok(data: dict[str, Any] | None = None) -> httpx.Response:
    """Return an accepted answer carrying *data* (a payout's, by default)."""
    return httpx.Response(200, json=envelope(data or payout_data()))


def code(value: str, msg: str = "x") -> httpx.Response:
    """Return an envelope with *value* as its code and no data."""
    return httpx.Response(200, json=envelope(None, code=value, msg=msg))


#: A payout's path and its status query's, below :data:`BASE_URL`.
PAYOUT = "/v1/vexora/disbursements"
QUERY = "/v1/vexora/queryPayOutResult"


def route_retry_and_reconciliation(router: respx.MockRouter) -> None:
    """Route a payout's refused connection, then its lost answer; a query finds it.

    One create that is retried (nothing was sent the first time) and then
    reconciled: what the event hooks are checked against.
    """
    router.post(PAYOUT).mock(
        side_effect=[
            httpx.ConnectError("connection refused"),
            httpx.ReadTimeout("slow"),
        ]
    )
    router.post(QUERY).mock(return_value=ok(payout_data(status="0000")))


def make_payout(**overrides: Any) -> PayoutRequest:
    """Return a valid payout request, with *overrides* applied."""
    fields: dict[str, Any] = {
        "trade_no": "VX20260331004567",
        "amount": 100,
        "bank_code": BankCode.KBZPAY,
        "bank_number": "3560123456789012",
        "name": "Ko Min Thu",
        "notify_url": NOTIFY_URL,
    }
    fields.update(overrides)
    return PayoutRequest(**fields)


def make_deposit(**overrides: Any) -> DepositRequest:
    """Return a valid deposit request, with *overrides* applied."""
    fields: dict[str, Any] = {
        "trade_no": "PI20260331000001",
        "amount": 1000,
        "name": "Daw Aye",
        "notify_url": NOTIFY_URL,
    }
    fields.update(overrides)
    return DepositRequest(**fields)


def sent_body(request: httpx.Request) -> dict[str, Any]:
    """Return the JSON body of a request the client sent, checking its sign."""
    body: dict[str, Any] = json.loads(request.content)
    assert body["sign"] == sign(body, SECRET)
    return body


@contextlib.asynccontextmanager
async def mock_client(handler: Any, **options: Any) -> AsyncIterator[VexoraClient]:
    """Yield a client whose HTTP goes to *handler* (a MockTransport's).

    *options* are VexoraClient's keyword options. The client and the httpx
    client under it are closed on exit.
    """
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    async with (
        http,
        VexoraClient(
            MERCHANT_NO, SECRET, BASE_URL, http_client=http, **options
        ) as vexora,
    ):
        yield vexora


# -- callbacks ---------------------------------------------------------------

#: The fact sheet's callback vector (secret ``app-secret-0001``).
CALLBACK_FIELDS: dict[str, Any] = {
    "platFormTradeNo": "vx8f3k29d0qplm7x2",
    "tradeNo": "VX20260331004567",
    "amount": "100",
    "status": "0000",
    "message": "SUCCESS",
    "successTime": "2026-03-31 18:34:31",
    "timestamp": "1774953271000",
}
CALLBACK_SIGN = "11cf5c6a611d50f5ffde1befab3cd912"
CALLBACK_BODY = (
    b'{"platFormTradeNo":"vx8f3k29d0qplm7x2","tradeNo":"VX20260331004567",'
    b'"amount":"100","status":"0000","message":"SUCCESS",'
    b'"successTime":"2026-03-31 18:34:31","timestamp":"1774953271000",'
    b'"sign":"11cf5c6a611d50f5ffde1befab3cd912"}'
)


class Num:
    """A JSON number written exactly as *text*: ``Num("3.0000")``."""

    def __init__(self, text: str) -> None:
        self.text = text


def json_text(value: Any) -> str:
    """Serialise JSON, writing :class:`Num` values as bare numbers."""
    if isinstance(value, Num):
        return value.text
    if isinstance(value, dict):
        items = (f"{json.dumps(k)}:{json_text(v)}" for k, v in value.items())
        return "{" + ",".join(items) + "}"
    if isinstance(value, list):
        return "[" + ",".join(json_text(v) for v in value) + "]"
    return json.dumps(value)


def callback(
    overrides: dict[str, Any] | None = None,
    *,
    drop: tuple[str, ...] = (),
    secret: str = SECRET,
) -> bytes:
    """Return the vector's callback with *overrides*, re-signed with *secret*.

    The sign is computed over the values as written (a :class:`Num`'s text),
    as the gateway does. Fields in *drop* are left out.
    """
    fields = {**CALLBACK_FIELDS, **(overrides or {})}
    fields = {k: v for k, v in fields.items() if k not in drop}
    signed = {k: v.text if isinstance(v, Num) else v for k, v in fields.items()}
    fields["sign"] = sign(signed, secret)
    return json_text(fields).encode()


@contextlib.asynccontextmanager
async def in_process_client(
    app: SandboxApp, retry: RetryPolicy = FAST_RETRY
) -> AsyncIterator[VexoraClient]:
    """Open a client with the *retry* policy that reaches *app* in process."""
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as http,
        VexoraClient(
            SANDBOX_MERCHANT_NO,
            SANDBOX_APP_SECRET,
            "http://127.0.0.1/sandbox",
            http_client=http,
            retry=retry,
        ) as vexora,
    ):
        yield vexora


@contextlib.asynccontextmanager
async def loopback_client(
    app: SandboxApp, retry: RetryPolicy = FAST_RETRY
) -> AsyncIterator[VexoraClient]:
    """Serve *app* on loopback; open a client with the *retry* policy to it."""
    async with (
        serve_sandbox(app) as url,
        VexoraClient(SANDBOX_MERCHANT_NO, SANDBOX_APP_SECRET, url, retry=retry) as c,
    ):
        yield c


class ClientPair(NamedTuple):
    """Two clients to one sandbox: raw single exchanges, and the SDK's defaults."""

    one_exchange: VexoraClient
    default: VexoraClient
