"""Shared fixtures: a client wired to a respx router, request and callback factories."""

from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING, Any, NamedTuple

import httpx
import pytest
import respx
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
    FakeGateway,
    SandboxApp,
    SandboxConfig,
    serve_sandbox,
)


if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator


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


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    """Yield a respx router for the gateway; every request must match a route."""
    with respx.mock(base_url=BASE_URL, assert_all_called=False) as mock:
        yield mock


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


@pytest.fixture
async def client(router: respx.MockRouter) -> AsyncIterator[VexoraClient]:
    """Yield a client whose HTTP goes to *router*, with a fixed clock."""
    async with mock_client(router.async_handler, clock=lambda: FIXED_MS) as vexora:
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


# -- the sandbox gateway (vexora_async.testing) -----------------------------
# The package's pytest plugin offers the same fixtures to users; these are
# defined here so that the suite does not depend on the plugin's entry point
# being installed (and does not register it twice once it is).


@pytest.fixture
def gateway() -> FakeGateway:
    """Return a sandbox gateway that settles only when told to."""
    return FakeGateway(SandboxConfig(settle_delay=None, time_scale=0.001))


@pytest.fixture
async def sandbox(gateway: FakeGateway) -> AsyncIterator[SandboxApp]:
    """Yield the gateway's ASGI app, started."""
    async with SandboxApp(gateway) as app:
        yield app


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


@pytest.fixture
async def sandbox_client(sandbox: SandboxApp) -> AsyncIterator[VexoraClient]:
    """Yield a client talking to the sandbox in process."""
    async with in_process_client(sandbox) as vexora:
        yield vexora


@pytest.fixture
async def socket_url(sandbox: SandboxApp) -> AsyncIterator[str]:
    """Serve the sandbox on a free loopback port; yield its base URL."""
    async with serve_sandbox(sandbox) as url:
        yield url


@pytest.fixture
async def socket_client(socket_url: str) -> AsyncIterator[VexoraClient]:
    """Yield a client (default layers, fast backoff) to the sandbox over loopback."""
    async with VexoraClient(
        SANDBOX_MERCHANT_NO, SANDBOX_APP_SECRET, socket_url, retry=FAST_RETRY
    ) as c:
        yield c


@pytest.fixture(params=["in-process", "socket"])
async def any_client(
    request: pytest.FixtureRequest, sandbox: SandboxApp
) -> AsyncIterator[VexoraClient]:
    """Yield a sandbox client in process, then one over a loopback socket.

    Both have the default layers with fast backoff (:data:`FAST_RETRY`).
    """
    opener = in_process_client if request.param == "in-process" else loopback_client
    async with opener(sandbox) as vexora:
        yield vexora


class ClientPair(NamedTuple):
    """Two clients to one sandbox: raw single exchanges, and the SDK's defaults."""

    one_exchange: VexoraClient
    default: VexoraClient


@pytest.fixture(params=["in-process", "socket"])
async def client_pair(
    request: pytest.FixtureRequest, sandbox: SandboxApp
) -> AsyncIterator[ClientPair]:
    """Yield a :class:`ClientPair` in process, then over a loopback socket.

    ``one_exchange`` uses :data:`ONE_EXCHANGE` (each fault shows raw);
    ``default`` the default layers with :data:`FAST_RETRY`'s backoff.
    """
    if request.param == "in-process":
        async with (
            in_process_client(sandbox, ONE_EXCHANGE) as raw,
            in_process_client(sandbox) as default,
        ):
            yield ClientPair(raw, default)
        return
    async with (
        serve_sandbox(sandbox) as url,
        VexoraClient(
            SANDBOX_MERCHANT_NO, SANDBOX_APP_SECRET, url, retry=ONE_EXCHANGE
        ) as raw,
        VexoraClient(
            SANDBOX_MERCHANT_NO, SANDBOX_APP_SECRET, url, retry=FAST_RETRY
        ) as default,
    ):
        yield ClientPair(raw, default)
