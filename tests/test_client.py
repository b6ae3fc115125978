"""Tests for VexoraClient: the wire format, lifecycle and every error path."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from email.utils import format_datetime
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from vexora_async import (
    Balance,
    BankCode,
    ClientClosedError,
    ConnectError,
    DecodingError,
    DepositResult,
    DepositStatus,
    GatewayError,
    HTTPStatusError,
    InvalidRequestError,
    OutcomeUnknown,
    PayoutOutcomeUnknown,
    PayoutResult,
    PayoutStatus,
    RequestRejected,
    RequestTimeout,
    RetryPolicy,
    TransportError,
    VexoraClient,
    VexoraError,
    __version__,
    sign,
)

from tests.helpers import (
    BASE_URL,
    FIXED_MS,
    MERCHANT_NO,
    SECRET,
    envelope,
    make_deposit,
    make_payout,
    mock_client,
    payout_data,
    sent_body,
)


if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    import respx


#: One HTTP exchange per call: no retry, no reconciliation, no confirming
#: query. Most tests here pin down how one exchange is classified; the retry
#: layer built on that is tested in test_retry.py.
ONE_EXCHANGE = RetryPolicy(max_retries=0, reconcile=False, verify_rejections=False)
#: The default layers (retries, reconciliation), without waiting in between.
NO_WAIT = RetryPolicy(backoff_initial=0, backoff_max=0, deadline=10)
PAYOUT_TRADE_NO = "VX20260331004567"
DEPOSIT_TRADE_NO = "PI20260331000001"
PATHS = {
    "create_payout": "/v1/vexora/disbursements",
    "get_payout": "/v1/vexora/queryPayOutResult",
    "get_balance": "/v1/vexora/queryBalance",
    "create_deposit": "/v1/vexora/deposits",
    "get_deposit": "/v1/vexora/queryPayInResult",
}
CREATES = ["create_payout", "create_deposit"]
QUERIES = ["get_payout", "get_balance", "get_deposit"]
ALL_CALLS = CREATES + QUERIES
TRADE_NOS: dict[str, str | None] = {
    "create_payout": PAYOUT_TRADE_NO,
    "get_payout": PAYOUT_TRADE_NO,
    "get_balance": None,
    "create_deposit": DEPOSIT_TRADE_NO,
    "get_deposit": DEPOSIT_TRADE_NO,
}
GOOD_DATA: dict[str, dict[str, Any]] = {
    "create_payout": payout_data(),
    "get_payout": {
        **payout_data(status="0000"),
        "amount": "100.00",
        "successTime": "2026-03-31 18:34:31",
    },
    "get_balance": {
        "availableAmount": 15000.5,
        "freezeAmount": "200.00",
        "unsettledAmount": 0,
    },
    "create_deposit": {
        "tradeNo": DEPOSIT_TRADE_NO,
        "platFormTradeNo": "vxpi0001",
        "status": "0015",
        "payUrl": "http://127.0.0.1:8092/pay/vxpi0001",
    },
    "get_deposit": {
        "tradeNo": DEPOSIT_TRADE_NO,
        "status": "0001",
        "amount": "1000",
        "receivedAmount": "600.00",
    },
}
RESULT_TYPES: dict[str, type[Any]] = {
    "create_payout": PayoutResult,
    "get_payout": PayoutStatus,
    "get_balance": Balance,
    "create_deposit": DepositResult,
    "get_deposit": DepositStatus,
}


@pytest.fixture
async def client(router: respx.MockRouter) -> AsyncIterator[VexoraClient]:
    """Yield a one-exchange client talking to *router*, with a fixed clock."""
    async with mock_client(
        router.async_handler, clock=lambda: FIXED_MS, retry=ONE_EXCHANGE
    ) as vexora:
        yield vexora


def invoke(client: VexoraClient, name: str) -> Awaitable[object]:
    """Start the call *name* with the standard test request."""
    if name == "create_payout":
        return client.create_payout(make_payout())
    if name == "create_deposit":
        return client.create_deposit(make_deposit())
    if name == "get_balance":
        return client.get_balance()
    trade_no = TRADE_NOS[name]
    assert trade_no is not None
    method: Callable[[str], Awaitable[object]] = getattr(client, name)
    return method(trade_no)


def route(router: respx.MockRouter, name: str) -> respx.Route:
    """Return the respx route of the call *name*."""
    return router.post(PATHS[name])


def answer(
    router: respx.MockRouter, name: str, *args: Any, **kwargs: Any
) -> respx.Route:
    """Make the call *name* answer an httpx.Response(*args, **kwargs)."""
    return route(router, name).mock(return_value=httpx.Response(*args, **kwargs))


def fail_with(router: respx.MockRouter, name: str, exc: Exception) -> respx.Route:
    """Make the call *name* raise *exc* from the transport."""
    return route(router, name).mock(side_effect=exc)


async def raises_from(call: Awaitable[object]) -> VexoraError:
    """Await *call* and return the VexoraError it raised."""
    with pytest.raises(VexoraError) as info:
        await call
    return info.value


# -- the request on the wire ------------------------------------------------


EXPECTED_BODIES: dict[str, dict[str, str]] = {
    "create_payout": {
        "tradeNo": PAYOUT_TRADE_NO,
        "amount": "100",
        "bankCode": "KBZPAY",
        "bankNumber": "3560123456789012",
        "name": "Ko Min Thu",
        "notifyUrl": "http://127.0.0.1:8091/vexora/notify",
    },
    "get_payout": {"tradeNo": PAYOUT_TRADE_NO},
    "get_balance": {},
    "create_deposit": {
        "tradeNo": DEPOSIT_TRADE_NO,
        "amount": "1000",
        "name": "Daw Aye",
        "notifyUrl": "http://127.0.0.1:8091/vexora/notify",
    },
    "get_deposit": {"tradeNo": DEPOSIT_TRADE_NO},
}


@pytest.mark.parametrize("name", ALL_CALLS)
async def test_request_on_the_wire(
    client: VexoraClient, router: respx.MockRouter, name: str
) -> None:
    """Each call POSTs its documented path, headers and signed camelCase body."""
    call = answer(router, name, 200, json=envelope(GOOD_DATA[name]))
    await invoke(client, name)
    assert call.call_count == 1
    request = call.calls.last.request
    assert request.method == "POST"
    assert request.url == BASE_URL + PATHS[name]
    assert request.headers["merchantNo"] == MERCHANT_NO
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"].startswith(f"vexora-async/{__version__} ")
    body = sent_body(request)
    assert body == {
        **EXPECTED_BODIES[name],
        "timestamp": str(FIXED_MS),
        "sign": sign(body, SECRET),
    }
    assert all(type(value) is str for value in body.values())


async def test_query_reproduces_the_fact_sheet_vector(router: respx.MockRouter) -> None:
    """The fact sheet's second vector comes out of a real get_payout call."""
    call = answer(
        router, "get_payout", 200, json=envelope(payout_data("test_00000002"))
    )
    async with mock_client(router.async_handler, clock=lambda: 1728613320708) as client:
        await client.get_payout("test_00000002")
    assert json.loads(call.calls.last.request.content) == {
        "tradeNo": "test_00000002",
        "timestamp": "1728613320708",
        "sign": "6ccd0944ed42d02b91b2a0d36547b866",
    }


async def test_body_is_compact_utf8_json(
    client: VexoraClient, router: respx.MockRouter
) -> None:
    """A name in Myanmar script goes out as UTF-8 bytes, not JSON escapes."""
    call = answer(router, "create_payout", 200, json=envelope(payout_data()))
    await client.create_payout(make_payout(name="ကိုမင်းသူ", remark="လစာ"))
    content = call.calls.last.request.content
    assert "ကိုမင်းသူ".encode() in content
    assert b"\\u" not in content
    assert b", " not in content
    assert sent_body(call.calls.last.request)["remark"] == "လစာ"


async def test_every_attempt_reads_the_clock(router: respx.MockRouter) -> None:
    """The timestamp comes from the injected clock, fresh on every call."""
    ticks = iter([1000, 2000])
    call = answer(router, "get_balance", 200, json=envelope(GOOD_DATA["get_balance"]))
    async with mock_client(router.async_handler, clock=lambda: next(ticks)) as client:
        await client.get_balance()
        await client.get_balance()
    stamps = [sent_body(c.request)["timestamp"] for c in call.calls]
    assert stamps == ["1000", "2000"]


@pytest.mark.parametrize(
    ("amount_format", "wire"), [("integer", "100"), ("decimal2", "100.00")]
)
async def test_amount_format_option(
    router: respx.MockRouter, amount_format: Any, wire: str
) -> None:
    """amount_format="decimal2" sends "100.00"; the default sends "100"."""
    call = answer(router, "create_payout", 200, json=envelope(payout_data()))
    async with mock_client(router.async_handler, amount_format=amount_format) as client:
        await client.create_payout(make_payout(amount=Decimal(100)))
    assert sent_body(call.calls.last.request)["amount"] == wire


def test_unknown_amount_format_is_refused() -> None:
    """Only "integer" and "decimal2" exist."""
    with pytest.raises(InvalidRequestError, match="amount_format"):
        VexoraClient(MERCHANT_NO, SECRET, BASE_URL, amount_format="cents")  # type: ignore[arg-type]  # the point


# -- decoding the answers ---------------------------------------------------


async def test_create_payout_result(
    client: VexoraClient, router: respx.MockRouter
) -> None:
    """The docs' payout answer decodes into a PayoutResult."""
    answer(router, "create_payout", 200, json=envelope(payout_data()))
    result = await client.create_payout(make_payout())
    assert result == PayoutResult(
        trade_no=PAYOUT_TRADE_NO,
        platform_trade_no="vx8f3k29d0qplm7x2",
        status="0015",  # type: ignore[arg-type]  # compares equal to the status
        message="Processing",
        remark="collection_vx_04567",
        amount=Decimal("100.00"),
    )
    assert result.status.is_processing
    assert not result.status.is_final


async def test_get_payout_result(
    client: VexoraClient, router: respx.MockRouter
) -> None:
    """A payout query decodes status, amount and the naive successTime."""
    answer(router, "get_payout", 200, json=envelope(GOOD_DATA["get_payout"]))
    status = await client.get_payout(PAYOUT_TRADE_NO)
    assert isinstance(status, PayoutStatus)
    assert status.status == "0000"
    assert status.status.is_success
    assert status.amount == Decimal(100)
    assert status.success_time == datetime(2026, 3, 31, 18, 34, 31)  # noqa: DTZ001 - gateway-local


async def test_get_balance_result(
    client: VexoraClient, router: respx.MockRouter
) -> None:
    """The balance's three amounts decode into Decimals."""
    answer(router, "get_balance", 200, json=envelope(GOOD_DATA["get_balance"]))
    balance = await client.get_balance()
    assert balance.available_amount == Decimal("15000.5")
    assert balance.freeze_amount == Decimal(200)
    assert balance.unsettled_amount == 0


async def test_create_deposit_result(
    client: VexoraClient, router: respx.MockRouter
) -> None:
    """A pay-in answer decodes, its checkout URL kept in raw."""
    answer(router, "create_deposit", 200, json=envelope(GOOD_DATA["create_deposit"]))
    result = await client.create_deposit(
        make_deposit(way_code=BankCode.KBZPAY, channel_code="EWALLET")
    )
    assert result.trade_no == DEPOSIT_TRADE_NO
    assert result.platform_trade_no == "vxpi0001"
    assert result.raw["payUrl"] == "http://127.0.0.1:8092/pay/vxpi0001"


async def test_get_deposit_result(
    client: VexoraClient, router: respx.MockRouter
) -> None:
    """A pay-in query decodes a partial success and the received amount."""
    answer(router, "get_deposit", 200, json=envelope(GOOD_DATA["get_deposit"]))
    status = await client.get_deposit(DEPOSIT_TRADE_NO)
    assert status.status == "0001"
    assert status.status.is_final
    assert status.received_amount == Decimal(600)


async def test_envelope_success_flag_is_ignored(
    client: VexoraClient, router: respx.MockRouter
) -> None:
    """Code 0000 with success false is still a success: code is what counts."""
    body = {**envelope(payout_data()), "success": False}
    answer(router, "get_payout", 200, json=body)
    assert (await client.get_payout(PAYOUT_TRADE_NO)).trade_no == PAYOUT_TRADE_NO


# -- construction -----------------------------------------------------------


@pytest.mark.parametrize(
    "base_url",
    [
        "https://127.0.0.1:8443/myanmar",
        "http://127.0.0.1:8090/myanmar",
        "http://127.0.0.2:8090",
        "http://localhost:8090/",
        "http://[::1]:8090/myanmar",
    ],
)
async def test_base_url_https_or_loopback_http(base_url: str) -> None:
    """HTTPS is accepted, plain http only for loopback; a trailing / goes."""
    async with VexoraClient(MERCHANT_NO, SECRET, base_url) as client:
        assert client.base_url == base_url.rstrip("/")


@pytest.mark.parametrize(
    ("base_url", "reason"),
    [
        ("", "is required"),
        (None, "is required"),
        ("http://gateway.invalid/myanmar", "must be https"),
        ("ftp://127.0.0.1/myanmar", "must be https"),
        ("127.0.0.1:8090", "absolute URL"),
        ("/myanmar", "absolute URL"),
        ("https://127.0.0.1/myanmar?x=1", "no query"),
        ("https://127.0.0.1/myanmar#top", "no query"),
        ("http://[::1/myanmar", "not a valid URL"),
        ("https://127.0.0.1:abc/myanmar", "not a valid URL"),
        ("https://127.0.0.1:99999/myanmar", "not a valid URL"),
    ],
)
def test_base_url_refusals(base_url: Any, reason: str) -> None:
    """A missing, plain-http remote, relative or odd base URL is refused."""
    with pytest.raises(InvalidRequestError, match=reason) as e:
        VexoraClient(MERCHANT_NO, SECRET, base_url)
    assert e.value.field == "base_url"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"merchant_no": ""}, "merchant_no"),
        ({"merchant_no": 1000000001}, "merchant_no"),
        ({"app_secret": ""}, "app_secret"),
        ({"app_secret": f" {SECRET}"}, "app_secret"),
        ({"app_secret": f"{SECRET}\n"}, "app_secret"),
        ({"max_retries": -1}, "max_retries"),
        ({"max_retries": True}, "max_retries"),
        ({"max_connections": 0}, "max_connections"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": -1.5}, "timeout"),
        ({"timeout": "30"}, "timeout"),
        ({"deadline": 0}, "deadline"),
        ({"deadline": "60"}, "deadline"),
    ],
)
def test_constructor_refusals(kwargs: dict[str, Any], field: str) -> None:
    """Bad credentials and options are refused, naming the option."""
    args: dict[str, Any] = {
        "merchant_no": MERCHANT_NO,
        "app_secret": SECRET,
        "base_url": BASE_URL,
        **kwargs,
    }
    with pytest.raises(InvalidRequestError) as e:
        VexoraClient(**args)
    assert e.value.field == field
    assert SECRET not in str(e.value)


async def test_repr_shows_no_secret() -> None:
    """The client's repr names the merchant and URL, never the secret."""
    async with VexoraClient(MERCHANT_NO, SECRET, BASE_URL) as client:
        text = repr(client)
        assert MERCHANT_NO in text
        assert BASE_URL in text
        assert SECRET not in text
        assert SECRET not in repr(vars(client))
        assert client.merchant_no == MERCHANT_NO
        assert client.max_retries == 2


# -- ownership of the httpx client -----------------------------------------


async def test_owned_http_client_is_closed_by_aclose() -> None:
    """A client the SDK created is closed by aclose(), which is idempotent."""
    client = VexoraClient(MERCHANT_NO, SECRET, BASE_URL)
    http = client.http_client
    states = [http.is_closed]
    await client.aclose()
    states.append(http.is_closed)
    await client.aclose()
    assert states == [False, True]


async def test_owned_http_client_is_closed_by_async_with() -> None:
    """Leaving ``async with`` closes the httpx client the SDK created."""
    async with VexoraClient(MERCHANT_NO, SECRET, BASE_URL) as client:
        http = client.http_client
    assert http.is_closed


async def test_injected_http_client_is_left_open(router: respx.MockRouter) -> None:
    """The SDK never closes an httpx client it was given."""
    http = httpx.AsyncClient(transport=httpx.MockTransport(router.async_handler))
    async with http:
        async with VexoraClient(MERCHANT_NO, SECRET, BASE_URL, http_client=http) as c:
            assert c.http_client is http
        assert not http.is_closed
        answer(router, "get_balance", 200, json=envelope(GOOD_DATA["get_balance"]))
        response = await http.post(BASE_URL + PATHS["get_balance"])
        assert response.status_code == 200


@pytest.mark.parametrize("name", ALL_CALLS)
async def test_calls_after_aclose_are_refused_unsent(
    router: respx.MockRouter, name: str
) -> None:
    """After aclose() every call is refused and nothing reaches the network."""
    call = answer(router, name, 200, json=envelope(GOOD_DATA[name]))
    http = httpx.AsyncClient(transport=httpx.MockTransport(router.async_handler))
    async with http:
        client = VexoraClient(MERCHANT_NO, SECRET, BASE_URL, http_client=http)
        await client.aclose()
        with pytest.raises(
            ClientClosedError, match="closed; nothing was sent; retry on a live"
        ) as info:
            await invoke(client, name)
    assert call.call_count == 0
    assert not isinstance(info.value, InvalidRequestError)
    assert info.value.may_have_executed is False
    assert info.value.operation == name


async def test_calls_on_a_closed_injected_client_are_refused(
    router: respx.MockRouter,
) -> None:
    """If the user closed their httpx client, calls are refused unsent."""
    call = answer(router, "get_balance", 200, json=envelope(GOOD_DATA["get_balance"]))
    http = httpx.AsyncClient(transport=httpx.MockTransport(router.async_handler))
    client = VexoraClient(MERCHANT_NO, SECRET, BASE_URL, http_client=http)
    await http.aclose()
    with pytest.raises(ClientClosedError, match="closed"):
        await client.get_balance()
    assert call.call_count == 0


async def test_owned_client_sends_user_agent_and_no_redirects(
    router: respx.MockRouter,
) -> None:
    """The SDK's own httpx client identifies itself and never follows a redirect."""
    moved = route(router, "get_payout").mock(
        return_value=httpx.Response(
            302, headers={"Location": BASE_URL + PATHS["get_balance"]}
        )
    )
    elsewhere = answer(router, "get_balance", 200, json=envelope({}))
    async with VexoraClient(MERCHANT_NO, SECRET, BASE_URL) as client:
        error = await raises_from(client.get_payout(PAYOUT_TRADE_NO))
    assert isinstance(error, HTTPStatusError)
    assert error.status_code == 302
    assert elsewhere.call_count == 0
    assert moved.calls.last.request.headers["User-Agent"].startswith("vexora-async/")


async def test_owned_client_has_default_timeouts(router: respx.MockRouter) -> None:
    """Without a timeout the SDK's client connects in 5 s and reads in 30 s."""
    call = answer(router, "get_balance", 200, json=envelope(GOOD_DATA["get_balance"]))
    async with VexoraClient(MERCHANT_NO, SECRET, BASE_URL) as client:
        await client.get_balance()
    timeout = call.calls.last.request.extensions["timeout"]
    assert (timeout["connect"], timeout["read"]) == (5.0, 30.0)


async def test_injected_client_keeps_its_own_timeout(router: respx.MockRouter) -> None:
    """An injected httpx client's timeout is used unless one is given."""
    call = answer(router, "get_balance", 200, json=envelope(GOOD_DATA["get_balance"]))
    http = httpx.AsyncClient(
        transport=httpx.MockTransport(router.async_handler), timeout=7.0
    )
    async with http, VexoraClient(MERCHANT_NO, SECRET, BASE_URL, http_client=http) as c:
        await c.get_balance()
        await c.get_balance(timeout=2.5)
    first, second = (r.request.extensions["timeout"] for r in call.calls)
    assert first["read"] == 7.0
    assert second["read"] == 2.5
    assert second["connect"] == 2.5


async def test_invalid_per_call_timeout_is_refused_unsent(
    client: VexoraClient, router: respx.MockRouter
) -> None:
    """A bad per-call timeout is refused before anything is sent."""
    call = answer(router, "get_balance", 200, json=envelope(GOOD_DATA["get_balance"]))
    with pytest.raises(InvalidRequestError, match="timeout"):
        await client.get_balance(timeout=-1)
    assert call.call_count == 0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_retries": -1}, "max_retries"),
        ({"max_retries": 1.5}, "max_retries"),
        ({"deadline": 0}, "deadline"),
        ({"deadline": -3}, "deadline"),
        ({"timeout": 0}, "timeout"),
    ],
)
@pytest.mark.parametrize("name", ["create_payout", "get_payout"])
async def test_invalid_per_call_options_are_refused_unsent(
    client: VexoraClient,
    router: respx.MockRouter,
    name: str,
    kwargs: dict[str, Any],
    field: str,
) -> None:
    """Bad per-call max_retries, deadline or timeout: refused, nothing sent."""
    call = answer(router, name, 200, json=envelope(payout_data()))
    method = getattr(client, name)
    argument = make_payout() if name == "create_payout" else PAYOUT_TRADE_NO
    with pytest.raises(InvalidRequestError) as e:
        await method(argument, **kwargs)
    assert e.value.field == field
    assert call.call_count == 0


async def test_wrong_request_types_are_refused(client: VexoraClient) -> None:
    """Passing a deposit to create_payout (or a bad tradeNo) is refused unsent."""
    with pytest.raises(InvalidRequestError, match="PayoutRequest"):
        await client.create_payout(make_deposit())  # type: ignore[arg-type]  # the point
    with pytest.raises(InvalidRequestError, match="DepositRequest"):
        await client.create_deposit(make_payout())  # type: ignore[arg-type]  # the point
    with pytest.raises(InvalidRequestError, match="PayoutRequest"):
        await client.resolve_payout(make_deposit())  # type: ignore[arg-type]  # the point
    with pytest.raises(InvalidRequestError, match="trade_no"):
        await client.get_payout("")
    with pytest.raises(InvalidRequestError, match="trade_no"):
        await client.get_deposit("a b")


# -- errors: not sent -------------------------------------------------------


NOT_SENT = [
    httpx.ConnectError("connection refused"),
    httpx.ConnectTimeout("connect timed out"),
    httpx.PoolTimeout("no connection free"),
    httpx.ProxyError("the proxy refused the tunnel"),
    httpx.UnsupportedProtocol("no transport for this scheme"),
]


@pytest.mark.parametrize("exc", NOT_SENT, ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("name", ALL_CALLS)
async def test_unreached_gateway_is_a_connect_error(
    client: VexoraClient, router: respx.MockRouter, name: str, exc: Exception
) -> None:
    """Refused, connect or pool timeout: ConnectError, even for a create."""
    fail_with(router, name, exc)
    error = await raises_from(invoke(client, name))
    assert type(error) is ConnectError
    assert error.sent is False
    assert "nothing was sent" in str(error)
    assert error.operation == name
    assert error.trade_no == TRADE_NOS[name]
    assert error.__cause__ is exc


# -- errors: queries --------------------------------------------------------


@pytest.mark.parametrize(
    "exc", [httpx.ReadTimeout("read"), httpx.WriteTimeout("write")], ids=str
)
@pytest.mark.parametrize("name", QUERIES)
async def test_query_timeout_is_request_timeout(
    client: VexoraClient, router: respx.MockRouter, name: str, exc: Exception
) -> None:
    """A query that times out after connecting raises RequestTimeout."""
    fail_with(router, name, exc)
    error = await raises_from(invoke(client, name))
    assert type(error) is RequestTimeout
    assert error.trade_no == TRADE_NOS[name]


@pytest.mark.parametrize(
    "exc",
    [
        httpx.RemoteProtocolError("server disconnected"),
        httpx.ReadError("connection reset"),
        httpx.WriteError("broken pipe"),
        RuntimeError("a custom transport broke"),
    ],
    ids=lambda e: type(e).__name__,
)
@pytest.mark.parametrize("name", QUERIES)
async def test_query_connection_lost_is_transport_error(
    client: VexoraClient, router: respx.MockRouter, name: str, exc: Exception
) -> None:
    """A query whose exchange broke raises a plain TransportError."""
    fail_with(router, name, exc)
    error = await raises_from(invoke(client, name))
    assert type(error) is TransportError
    assert error.sent is True
    assert error.__cause__ is exc


@pytest.mark.parametrize("name", QUERIES)
async def test_query_code_8000_is_request_rejected(
    client: VexoraClient, router: respx.MockRouter, name: str
) -> None:
    """Code 8000 on a query is RequestRejected: the query failed, not the money."""
    answer(router, name, 200, json=envelope(None, code="8000", msg="order not exist"))
    error = await raises_from(invoke(client, name))
    assert isinstance(error, RequestRejected)
    assert (error.code, error.msg) == ("8000", "order not exist")
    assert error.trade_no == TRADE_NOS[name]


@pytest.mark.parametrize("code", ["5000", "9999", "0015"])
@pytest.mark.parametrize("name", QUERIES)
async def test_query_other_codes_are_gateway_errors(
    client: VexoraClient, router: respx.MockRouter, name: str, code: str
) -> None:
    """Codes other than 0000 and 8000 on a query are plain GatewayErrors."""
    answer(router, name, 200, json=envelope(None, code=code, msg="system busy"))
    error = await raises_from(invoke(client, name))
    assert type(error) is GatewayError
    assert error.code == code
    assert error.operation == name


UNREADABLE_200 = {
    "not json": b"<html>oops</html>",
    "empty": b"",
    "no code": b'{"msg":"success","data":{}}',
    "list": b"[]",
    "data is a list": b'{"code":"0000","data":[]}',
    "no data": b'{"code":"0000"}',
    "wrong shape": b'{"code":"0000","data":{"tradeNo":{"x":1},"status":15}}',
}


@pytest.mark.parametrize("body", UNREADABLE_200.values(), ids=UNREADABLE_200.keys())
@pytest.mark.parametrize("name", QUERIES)
async def test_query_unreadable_answer_is_decoding_error(
    client: VexoraClient, router: respx.MockRouter, name: str, body: bytes
) -> None:
    """An unreadable 200 on a query is a DecodingError naming the call."""
    answer(router, name, 200, content=body)
    error = await raises_from(invoke(client, name))
    assert type(error) is DecodingError
    assert error.operation == name
    assert error.trade_no == TRADE_NOS[name]


@pytest.mark.parametrize("name", ["get_payout", "get_deposit"])
async def test_query_answer_about_another_trade_no(
    client: VexoraClient, router: respx.MockRouter, name: str
) -> None:
    """A status for another tradeNo is never taken as ours."""
    answer(router, name, 200, json=envelope(payout_data("SOMEONE-ELSE", "00029")))
    error = await raises_from(invoke(client, name))
    assert type(error) is DecodingError
    assert "SOMEONE-ELSE" in str(error)


@pytest.mark.parametrize("status", [400, 401, 404, 429, 500, 502, 503, 504])
@pytest.mark.parametrize("name", QUERIES)
async def test_query_non_2xx_is_http_status_error(
    client: VexoraClient, router: respx.MockRouter, name: str, status: int
) -> None:
    """Any non-2xx answer to a query raises HTTPStatusError with the status."""
    answer(router, name, status, text="upstream said no")
    error = await raises_from(invoke(client, name))
    assert isinstance(error, HTTPStatusError)
    assert error.status_code == status
    assert error.body_excerpt == "upstream said no"
    assert error.retry_after is None
    assert str(status) in str(error)


async def test_http_status_excerpt_is_short_and_redacted(
    client: VexoraClient, router: respx.MockRouter
) -> None:
    """The excerpt masks long digit runs and the secret, and is cut short."""
    body = f"bad account 3560123456789012 secret={SECRET} " + "x" * 1000
    answer(router, "get_payout", 500, text=body)
    error = await raises_from(client.get_payout(PAYOUT_TRADE_NO))
    assert isinstance(error, HTTPStatusError)
    assert error.body_excerpt.startswith("bad account ****9012 secret=<secret> x")
    assert len(error.body_excerpt) == 200
    assert "3560123456789012" not in str(error)
    assert SECRET not in str(error)


async def test_http_status_excerpt_survives_bad_utf8(
    client: VexoraClient, router: respx.MockRouter
) -> None:
    """A body that is not UTF-8 still gives a readable excerpt."""
    answer(router, "get_balance", 502, content=b"\xff\xfe bad gateway")
    error = await raises_from(client.get_balance())
    assert isinstance(error, HTTPStatusError)
    assert error.body_excerpt.endswith(" bad gateway")


def _http_date(seconds_from_now: int) -> str:
    when = datetime.now(timezone.utc) + timedelta(seconds=seconds_from_now)
    return format_datetime(when, usegmt=True)


@pytest.mark.parametrize(
    ("header", "low", "high"),
    [
        ("7", 7.0, 7.0),
        (" 120 ", 120.0, 120.0),
        ("0", 0.0, 0.0),
        (-3600, 0.0, 0.0),
        (600, 590.0, 600.0),
    ],
)
async def test_retry_after_is_parsed(
    client: VexoraClient,
    router: respx.MockRouter,
    header: str | int,
    low: float,
    high: float,
) -> None:
    """Retry-After in seconds or as an HTTP date becomes seconds to wait.

    An int *header* is an HTTP date that many seconds from now.
    """
    if isinstance(header, int):
        header = _http_date(header)
    answer(router, "get_balance", 429, headers={"Retry-After": header})
    error = await raises_from(client.get_balance())
    assert isinstance(error, HTTPStatusError)
    assert error.retry_after is not None
    assert low <= error.retry_after <= high


@pytest.mark.parametrize(
    "header", [b"inf", b"nan", b"-5", b"1e9", b"soon", b"", "٣".encode()]
)
async def test_retry_after_garbage_is_none(
    client: VexoraClient, router: respx.MockRouter, header: bytes
) -> None:
    """A Retry-After that is neither digits nor a date is ignored, never inf."""
    answer(router, "get_balance", 503, headers={"Retry-After": header})
    error = await raises_from(client.get_balance())
    assert isinstance(error, HTTPStatusError)
    assert error.retry_after is None


# -- errors: creates --------------------------------------------------------


def _assert_unknown(error: VexoraError, name: str) -> None:
    """Check that *error* is the unknown outcome of the create *name*."""
    assert isinstance(error, OutcomeUnknown)
    assert not isinstance(error, (GatewayError, RequestRejected, TransportError))
    assert not isinstance(error, (HTTPStatusError, DecodingError))
    if name == "create_payout":
        assert isinstance(error, PayoutOutcomeUnknown)
    else:
        assert not isinstance(error, PayoutOutcomeUnknown)
    assert error.trade_no == TRADE_NOS[name]
    assert error.operation == name
    assert "may have been executed" in str(error)
    assert "never resend it under a new one" in str(error)


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ReadTimeout("read timed out"),
        httpx.WriteTimeout("write timed out"),
        httpx.RemoteProtocolError("server disconnected"),
        httpx.ReadError("connection reset"),
        httpx.WriteError("broken pipe"),
        RuntimeError("a custom transport broke"),
    ],
    ids=lambda e: type(e).__name__,
)
@pytest.mark.parametrize("name", CREATES)
async def test_create_lost_after_sending_is_unknown(
    client: VexoraClient, router: respx.MockRouter, name: str, exc: Exception
) -> None:
    """A timeout or lost connection after sending a create: outcome unknown."""
    fail_with(router, name, exc)
    error = await raises_from(invoke(client, name))
    _assert_unknown(error, name)
    assert error.__cause__ is exc


@pytest.mark.parametrize("status", [500, 502, 504, 520, 408])
@pytest.mark.parametrize("name", CREATES)
async def test_create_5xx_is_unknown(
    client: VexoraClient, router: respx.MockRouter, name: str, status: int
) -> None:
    """HTTP 5xx (but 503) or 408 after a create: it may have been executed."""
    answer(router, name, status, text="Internal Server Error")
    _assert_unknown(await raises_from(invoke(client, name)), name)


@pytest.mark.parametrize(
    "status", [400, 401, 403, 404, 409, 302, 303, 201, 204, 429, 503]
)
@pytest.mark.parametrize("name", CREATES)
async def test_create_other_statuses_are_unknown(
    client: VexoraClient, router: respx.MockRouter, name: str, status: int
) -> None:
    """The gateway refuses with 200 + code 8000: any other status is unknown.

    429 and 503 too: a proxy in front of the gateway answers them after it
    forwarded the request.
    """
    answer(router, name, status, text="Conflict")
    _assert_unknown(await raises_from(invoke(client, name)), name)


@pytest.mark.parametrize("code", ["5000", "9999", "0015", "1"])
@pytest.mark.parametrize("name", CREATES)
async def test_create_code_5000_or_unknown_is_unknown(
    client: VexoraClient, router: respx.MockRouter, name: str, code: str
) -> None:
    """Code 5000 or any undocumented code on a create: outcome unknown."""
    answer(router, name, 200, json=envelope(None, code=code, msg="system error"))
    error = await raises_from(invoke(client, name))
    _assert_unknown(error, name)
    assert code in str(error)


@pytest.mark.parametrize("body", UNREADABLE_200.values(), ids=UNREADABLE_200.keys())
@pytest.mark.parametrize("name", CREATES)
async def test_create_unreadable_answer_is_unknown(
    client: VexoraClient, router: respx.MockRouter, name: str, body: bytes
) -> None:
    """An unreadable 200 to a create: the gateway may have executed it."""
    answer(router, name, 200, content=body)
    error = await raises_from(invoke(client, name))
    _assert_unknown(error, name)
    assert isinstance(error.__cause__, DecodingError)


@pytest.mark.parametrize("name", CREATES)
async def test_create_answer_about_another_trade_no_is_unknown(
    client: VexoraClient, router: respx.MockRouter, name: str
) -> None:
    """An acceptance for another tradeNo says nothing about ours: unknown."""
    answer(router, name, 200, json=envelope(payout_data("SOMEONE-ELSE")))
    _assert_unknown(await raises_from(invoke(client, name)), name)


@pytest.mark.parametrize("name", CREATES)
async def test_create_code_8000_is_request_rejected(
    client: VexoraClient, router: respx.MockRouter, name: str
) -> None:
    """Code 8000 on a create is RequestRejected: nothing was made."""
    answer(router, name, 200, json=envelope(None, code="8000", msg="sign error"))
    error = await raises_from(invoke(client, name))
    assert type(error) is RequestRejected
    assert isinstance(error, GatewayError)
    assert not isinstance(error, OutcomeUnknown)
    assert (error.code, error.msg) == ("8000", "sign error")
    assert error.trade_no == TRADE_NOS[name]


# -- secrets and personal data ---------------------------------------------


SCENARIOS: dict[str, Callable[[], object]] = {
    "ok": lambda: httpx.Response(200, json=envelope(payout_data())),
    "8000": lambda: httpx.Response(200, json=envelope(None, code="8000", msg="bad")),
    "5000": lambda: httpx.Response(200, json=envelope(None, code="5000")),
    "500": lambda: httpx.Response(500, text="oops"),
    "429": lambda: httpx.Response(429, text="slow"),
    "garbage": lambda: httpx.Response(200, content=b"\x00"),
    "connect": lambda: httpx.ConnectError("refused"),
    "timeout": lambda: httpx.ReadTimeout("slow"),
    "lost": lambda: httpx.RemoteProtocolError("gone"),
}


@pytest.mark.parametrize("policy", [ONE_EXCHANGE, NO_WAIT], ids=["once", "retries"])
@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("name", ["create_payout", "get_payout"])
async def test_secret_and_personal_data_never_leak(
    router: respx.MockRouter,
    caplog: pytest.LogCaptureFixture,
    name: str,
    scenario: str,
    policy: RetryPolicy,
) -> None:
    """No exception or log record shows the secret, the sign, an account or name.

    With retries on, the reconciliation queries and their errors are in the
    logs and messages too.
    """
    caplog.set_level(logging.DEBUG)

    def gateway(_: httpx.Request) -> httpx.Response:
        outcome = SCENARIOS[scenario]()
        if isinstance(outcome, Exception):
            raise outcome
        assert isinstance(outcome, httpx.Response)
        return outcome

    router.route().mock(side_effect=gateway)
    http = httpx.AsyncClient(transport=httpx.MockTransport(router.async_handler))
    texts: list[str] = []
    async with (
        http,
        VexoraClient(
            MERCHANT_NO, SECRET, BASE_URL, http_client=http, retry=policy
        ) as c,
    ):
        try:
            await invoke(c, name)
        except VexoraError as exc:
            texts += [str(exc), repr(exc), repr(exc.__cause__), repr(vars(exc))]
    texts += [record.getMessage() for record in caplog.records]
    texts += [repr(record.__dict__) for record in caplog.records]
    signs = [sent_body(call.request)["sign"] for call in router.calls]
    assert signs
    for text in texts:
        assert SECRET not in text
        assert "3560123456789012" not in text
        assert "Ko Min Thu" not in text
        for the_sign in signs:
            assert the_sign not in text


async def test_payout_is_logged_masked(
    client: VexoraClient, router: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    """The log shows the path, tradeNo, status and masked account and name."""
    caplog.set_level(logging.DEBUG, logger="vexora_async")
    answer(router, "create_payout", 200, json=envelope(payout_data()))
    await client.create_payout(make_payout())
    text = "\n".join(r.getMessage() for r in caplog.records if r.name == "vexora_async")
    assert "****9012" in text
    assert "K***" in text
    assert PAYOUT_TRADE_NO in text
    assert PATHS["create_payout"] in text
    assert "http=200" in text
    assert "code=0000" in text
    assert "elapsed_ms=" in text


async def test_unknown_outcome_is_logged_as_a_warning(
    router: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    """A payout left unknown is one warning, with its tradeNo, for the operator."""
    caplog.set_level(logging.WARNING, logger="vexora_async")
    fail_with(router, "create_payout", httpx.ReadTimeout("slow"))
    fail_with(router, "get_payout", httpx.ReadTimeout("slow"))
    async with mock_client(router.async_handler, retry=NO_WAIT) as c:
        with pytest.raises(PayoutOutcomeUnknown):
            await c.create_payout(make_payout())
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert PAYOUT_TRADE_NO in warnings[0].getMessage()
    assert "outcome unknown" in warnings[0].getMessage()


async def test_unknown_outcome_with_reconciliation_off_is_still_a_warning(
    client: VexoraClient, router: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    """Even with reconciliation off, the operator hears about an unknown payout."""
    caplog.set_level(logging.WARNING, logger="vexora_async")
    fail_with(router, "create_payout", httpx.ReadTimeout("slow"))
    with pytest.raises(PayoutOutcomeUnknown):
        await client.create_payout(make_payout())
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("reconciliation is off" in w and PAYOUT_TRADE_NO in w for w in warnings)


@pytest.mark.parametrize("name", ALL_CALLS)
async def test_gateway_msg_is_redacted(
    client: VexoraClient, router: respx.MockRouter, name: str
) -> None:
    """A gateway msg echoing the secret or an account number is redacted."""
    msg = f"bad sign for {SECRET} on account 3560123456789012"
    answer(router, name, 200, json=envelope(None, code="8000", msg=msg))
    error = await raises_from(invoke(client, name))
    assert SECRET not in str(error)
    assert isinstance(error, RequestRejected)
    assert error.msg == "bad sign for <secret> on account ****9012"


# -- concurrency ------------------------------------------------------------


async def test_1000_concurrent_calls_share_one_pool(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """1,000 gathered calls all complete over a few reused loopback connections."""
    connections: set[tuple[str, int]] = set()
    handlers: list[asyncio.Task[Any]] = []
    served = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal served
        connections.add(writer.get_extra_info("peername")[:2])
        handlers.append(asyncio.current_task())  # type: ignore[arg-type]  # in a task
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                request = json.loads(await reader.readexactly(length))
                payload = json.dumps(
                    envelope(payout_data(request["tradeNo"], "0000"))
                ).encode()
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(payload), payload)
                )
                served += 1
                await writer.drain()
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()

    # The SDK's own client honours proxy variables; this one must go direct.
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
        monkeypatch.delenv(var.lower(), raising=False)
    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with (
        server,
        VexoraClient(
            MERCHANT_NO,
            SECRET,
            f"http://127.0.0.1:{port}/myanmar",
            max_connections=20,
        ) as client,
    ):
        trade_nos = [f"VX{i:06d}" for i in range(1000)]
        results = await asyncio.gather(*(client.get_payout(t) for t in trade_nos))
    # The client closed its connections; let the server's side finish.
    await asyncio.gather(*handlers)
    assert [r.trade_no for r in results] == trade_nos
    assert all(r.status.is_success for r in results)
    assert served == 1000
    # One pool: never more connections than its limit, each reused many times.
    assert 1 <= len(connections) <= 20


# -- arbitrary answers ------------------------------------------------------


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=12,
)
data_objects = st.dictionaries(
    st.sampled_from(
        [
            "tradeNo",
            "status",
            "amount",
            "platFormTradeNo",
            "successTime",
            "availableAmount",
        ]
    )
    | st.text(max_size=6),
    st.sampled_from([PAYOUT_TRADE_NO, DEPOSIT_TRADE_NO, "0000", "0015", "100.00"])
    | json_values,
    max_size=8,
)
envelopes = st.fixed_dictionaries(
    {"code": st.sampled_from(["0000", "8000", "5000", "9999", 0, 8000]) | json_values},
    optional={
        "msg": json_values,
        "success": json_values,
        "timestamp": json_values,
        "data": data_objects | json_values,
    },
)
bodies = (
    st.binary(max_size=100)
    | json_values.map(lambda v: json.dumps(v).encode())
    | envelopes.map(lambda v: json.dumps(v).encode())
)


@pytest.mark.parametrize("policy", [ONE_EXCHANGE, NO_WAIT], ids=["once", "retries"])
@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    name=st.sampled_from(ALL_CALLS),
    status=st.sampled_from([200, 200, 200, 201, 400, 408, 429, 500, 503]),
    body=bodies,
)
async def test_any_answer_gives_a_record_or_our_error(
    policy: RetryPolicy, name: str, status: int, body: bytes
) -> None:
    """Whatever comes back, only records or VexoraErrors come out.

    And a create never ends in an error that reads as "failed" unless the
    gateway said 8000 or refused at the HTTP level: everything else is an
    unknown outcome. With retries on, every attempt and reconciliation
    query gets the same answer.
    """

    def handler(_: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body)

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler), trust_env=False)
    async with (
        http,
        VexoraClient(
            MERCHANT_NO, SECRET, BASE_URL, http_client=http, retry=policy
        ) as c,
    ):
        outcome: object
        try:
            outcome = await invoke(c, name)
        except VexoraError as exc:
            outcome = exc
    if not isinstance(outcome, VexoraError):
        assert isinstance(outcome, RESULT_TYPES[name])
        assert status in {200, 201}
    elif name in CREATES:
        assert isinstance(outcome, (RequestRejected, OutcomeUnknown, HTTPStatusError))
        assert type(outcome) is not GatewayError


async def test_a_call_queued_past_its_deadline_is_not_sent(
    router: respx.MockRouter,
) -> None:
    """Time waiting for a free connection counts: at the deadline, nothing is sent.

    With the one connection busy, a second payout whose deadline passes
    while it waits raises ConnectError ("nothing was sent") at its
    deadline, not when the connection frees up, and the gateway never sees it.
    """
    started, release = asyncio.Event(), asyncio.Event()

    async def slow(request: httpx.Request) -> httpx.Response:
        started.set()
        await release.wait()
        return httpx.Response(200, json=envelope(payout_data()))

    route = router.post(PATHS["create_payout"]).mock(side_effect=slow)
    async with mock_client(router.async_handler, max_connections=1) as vexora:
        first = asyncio.create_task(vexora.create_payout(make_payout()))
        await started.wait()
        queued = asyncio.create_task(
            vexora.create_payout(make_payout(trade_no="QUEUED"), deadline=0.05)
        )
        with pytest.raises(ConnectError, match="deadline passed while it waited"):
            await asyncio.wait_for(queued, 5)  # ends at its deadline, not later
        assert not first.done()  # the connection it waited for is still busy
        release.set()
        assert (await first).status == "0015"
    assert [sent_body(call.request)["tradeNo"] for call in route.calls] == [
        PAYOUT_TRADE_NO
    ]
