"""Both transports' ports, end to end over real loopback sockets.

Every test that takes *transport* runs once on the default port (the
SDK's httpx client) and once on the aiohttp port: the aiohttp one passes
when it behaves exactly like the default, both in the facts its port
reports (sent or not sent, timed out or not) and in what the SDK makes of
them.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import TYPE_CHECKING

import httpx
import pytest
from vexora_async import (
    ConnectError,
    InvalidRequestError,
    PayoutOutcomeUnknown,
    RequestTimeout,
    RetryPolicy,
    TransportError,
    VexoraClient,
    sign,
)
from vexora_async._outcomes import Phase
from vexora_async._transports import (
    USER_AGENT,
    Port,
    Reply,
    SendFailed,
    TransportName,
    make_port,
)
from vexora_async._transports._aiohttp import AiohttpPort

from tests.helpers import MERCHANT_NO, SECRET, make_payout
from tests.loopback_gateway import LoopbackGateway, loopback_gateway, refused_port


if TYPE_CHECKING:
    from collections.abc import AsyncIterator


TRANSPORTS: list[TransportName] = ["httpx", "aiohttp"]
# Short enough to keep the suite fast, long enough for a loaded 2-core box.
SHORT = 0.3


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> TransportName:
    """The transport under test: httpx's own, then aiohttp's."""
    name: TransportName = request.param
    return name


@pytest.fixture
async def gateway() -> AsyncIterator[LoopbackGateway]:
    """A loopback gateway answering ``0000`` until told otherwise."""
    async with loopback_gateway() as server:
        yield server


def port(
    transport: TransportName,
    *,
    timeout: float = 5.0,
    max_connections: int = 10,
    max_answer_bytes: int = 1024 * 1024,
) -> Port:
    """The port *transport* names, as the SDK builds it."""
    return make_port(
        transport=transport,
        http_client=None,
        headers={"User-Agent": USER_AGENT, "Accept-Encoding": "gzip, deflate"},
        timeout=httpx.Timeout(timeout),
        max_connections=max_connections,
        max_answer_bytes=max_answer_bytes,
    )


async def post(
    transport: Port,
    url: str,
    timeout: httpx.Timeout | None = None,
    deadline: float | None = None,
) -> Reply:
    """POST an empty JSON object through *transport*, by *deadline* (loop time)."""
    return await transport.send(
        url, b"{}", timeout or transport.default_timeout, deadline
    )


async def failure(transport: TransportName, url: str, **options: object) -> SendFailed:
    """The SendFailed a POST to *url* raises on a fresh port."""
    sender = port(transport, **options)  # type: ignore[arg-type]  # test-only kwargs
    try:
        with pytest.raises(SendFailed) as info:
            await post(sender, url)
    finally:
        await sender.aclose()
    return info.value


def sdk(base_url: str, transport: TransportName, **options: object) -> VexoraClient:
    """A VexoraClient on *transport*."""
    return VexoraClient(
        MERCHANT_NO,
        SECRET,
        base_url,
        transport=transport,
        **options,  # type: ignore[arg-type]  # test-only kwargs
    )


# -- success ----------------------------------------------------------------


async def test_payout_round_trip(
    gateway: LoopbackGateway, transport: TransportName
) -> None:
    """A payout goes out signed with the merchant header and comes back typed."""
    async with sdk(gateway.base_url, transport) as client:
        result = await client.create_payout(make_payout(trade_no="VXRT0001"))
        balance = await client.get_balance()
    assert result.trade_no == "VXRT0001"
    assert result.status.is_processing
    assert balance.available_amount == 1000
    body, headers = gateway.requests[0], gateway.headers[0]
    assert body["sign"] == sign(body, SECRET)
    assert body["bankNumber"] == "3560123456789012"
    assert headers["merchantno"] == MERCHANT_NO
    assert headers["user-agent"].startswith("vexora-async/")
    assert headers["content-type"] == "application/json"


async def test_http_client_only_on_the_httpx_transport(
    transport: TransportName,
) -> None:
    """The default transport is an httpx client; aiohttp's has none to give."""
    async with sdk("http://127.0.0.1:9/myanmar", transport) as client:
        assert client.transport == transport
        if transport == "httpx":
            assert isinstance(client.http_client, httpx.AsyncClient)
        else:
            with pytest.raises(InvalidRequestError) as info:
                _ = client.http_client
            assert info.value.field == "http_client"


async def test_many_concurrent_payouts_share_few_connections(
    gateway: LoopbackGateway, transport: TransportName
) -> None:
    """200 concurrent payouts all succeed over at most max_connections sockets."""
    async with sdk(gateway.base_url, transport, max_connections=4) as client:
        results = await asyncio.gather(
            *(
                client.create_payout(make_payout(trade_no=f"VXMANY{i:04d}"))
                for i in range(200)
            )
        )
    assert [r.trade_no for r in results] == [f"VXMANY{i:04d}" for i in range(200)]
    assert gateway.max_open_connections <= 4


async def test_gzip_answer_is_decoded_once(
    gateway: LoopbackGateway, transport: TransportName
) -> None:
    """A gzip-encoded answer reads as the envelope, not as compressed bytes."""
    gateway.mode = "gzip"
    sender = port(transport)
    try:
        reply = await post(sender, gateway.base_url)
    finally:
        await sender.aclose()
    assert reply.status == 200
    assert reply.problem is None
    assert json.loads(reply.body)["code"] == "0000"
    assert reply.headers["content-encoding"] == "gzip"


async def test_answer_over_the_cap_is_a_problem(
    gateway: LoopbackGateway, transport: TransportName
) -> None:
    """An answer over max_answer_bytes is reported, not handed over."""
    sender = port(transport, max_answer_bytes=16)
    try:
        reply = await post(sender, gateway.base_url)
        # The connection of an unread answer is not reused: the next
        # request still gets a whole, fresh answer.
        again = await post(sender, gateway.base_url)
    finally:
        await sender.aclose()
    assert reply.body == b""
    assert reply.problem == "the answer is over the 16-byte cap"
    assert again.problem == reply.problem


# -- failures: the facts each port reports -----------------------------------


async def test_refused_port_was_not_sent(transport: TransportName) -> None:
    """A refused connection: provably not sent, not a timeout."""
    failed = await failure(transport, f"http://127.0.0.1:{refused_port()}/")
    assert failed.failure.phase is Phase.NOT_SENT
    assert not failed.failure.timed_out
    assert isinstance(failed.__cause__, Exception)


async def test_silence_may_have_been_sent(
    gateway: LoopbackGateway, transport: TransportName
) -> None:
    """A server that never answers: the port's own read timeout, maybe sent.

    The timeout is the one the port was made with (``make_port(timeout=)``),
    read when a request gives none: ending near 0.3 s, not the SDK's 30 s
    default (the aiohttp port once waited 35 s here).
    """
    gateway.mode = "hang"
    sender = port(transport, timeout=SHORT)
    assert sender.default_timeout == httpx.Timeout(SHORT)
    started = asyncio.get_running_loop().time()
    try:
        with pytest.raises(SendFailed) as info:
            await post(sender, gateway.base_url)
    finally:
        await sender.aclose()
    elapsed = asyncio.get_running_loop().time() - started
    failed = info.value
    assert failed.failure.phase is Phase.MAYBE_SENT
    assert failed.failure.timed_out
    # Connect and read are SHORT each; far below the 30 s default either way.
    assert SHORT <= elapsed < 2 * SHORT + 3.0


@pytest.mark.parametrize("mode", ["close_before", "close_mid"])
async def test_closed_connection_may_have_been_sent(
    gateway: LoopbackGateway, transport: TransportName, mode: str
) -> None:
    """A connection closed before or during the answer: maybe sent."""
    gateway.mode = mode  # type: ignore[assignment]  # parametrized literal
    failed = await failure(transport, gateway.base_url)
    assert failed.failure.phase is Phase.MAYBE_SENT
    assert not failed.failure.timed_out


async def test_deadline_ends_the_exchange_and_frees_the_connection(
    gateway: LoopbackGateway, transport: TransportName
) -> None:
    """Past the deadline: TimeoutError, and the connection is not kept."""
    gateway.mode = "hang"
    sender = port(transport, timeout=30.0, max_connections=1)
    try:
        started = asyncio.get_running_loop().time()
        with pytest.raises(TimeoutError):
            await post(sender, gateway.base_url, deadline=started + SHORT)
        assert asyncio.get_running_loop().time() - started < SHORT + 1.0
        await asyncio.wait_for(
            gateway.until(lambda: gateway.open_connections == 0), timeout=10
        )
        gateway.mode = "ok"
        reply = await post(sender, gateway.base_url, deadline=started + 10)
    finally:
        await sender.aclose()
    assert reply.status == 200


async def test_sdk_waits_for_a_connection_no_longer_than_the_deadline(
    gateway: LoopbackGateway, transport: TransportName
) -> None:
    """All connections busy past the deadline: ConnectError, nothing sent."""
    gateway.mode = "hang"
    async with sdk(gateway.base_url, transport, max_connections=1) as client:
        holder = asyncio.create_task(client.get_balance(deadline=5))
        await gateway.until(lambda: bool(gateway.requests))
        with pytest.raises(ConnectError) as info:
            await client.create_payout(make_payout(), deadline=SHORT)
        holder.cancel()
        await asyncio.gather(holder, return_exceptions=True)
    assert info.value.sent is False
    assert len(gateway.requests) == 1


async def test_pool_wait_times_out_as_not_sent(gateway: LoopbackGateway) -> None:
    """Waiting too long for a connection in httpx's pool is a not-sent timeout.

    (The aiohttp port never waits for its pool: the SDK's limiter, above,
    admits no more requests than it has connections.)
    """
    transport: TransportName = "httpx"
    gateway.mode = "hang"
    sender = port(transport, max_connections=1)
    try:
        holder = asyncio.create_task(post(sender, gateway.base_url))
        await gateway.until(lambda: bool(gateway.requests))
        with pytest.raises(SendFailed) as info:
            await post(sender, gateway.base_url, httpx.Timeout(5.0, pool=SHORT))
        holder.cancel()
        await asyncio.gather(holder, return_exceptions=True)
    finally:
        await sender.aclose()
    assert info.value.failure.phase is Phase.NOT_SENT
    assert info.value.failure.timed_out
    assert len(gateway.requests) == 1


# -- failures: what the SDK makes of them ------------------------------------


async def test_sdk_refused_means_nothing_sent(transport: TransportName) -> None:
    """A payout to a refused port raises ConnectError (sent is False)."""
    base_url = f"http://127.0.0.1:{refused_port()}/myanmar"
    async with sdk(base_url, transport, max_retries=0) as client:
        with pytest.raises(ConnectError) as info:
            await client.create_payout(make_payout())
    assert info.value.sent is False


async def test_sdk_read_timeout_on_query(
    gateway: LoopbackGateway, transport: TransportName
) -> None:
    """A balance query that gets no answer raises RequestTimeout."""
    gateway.mode = "hang"
    async with sdk(gateway.base_url, transport, timeout=SHORT, max_retries=0) as client:
        with pytest.raises(RequestTimeout) as info:
            await client.get_balance()
    assert info.value.sent is True


@pytest.mark.parametrize("mode", ["hang", "close_before", "close_mid"])
async def test_sdk_payout_after_sending_is_unknown(
    gateway: LoopbackGateway, transport: TransportName, mode: str
) -> None:
    """A payout lost after sending is an unknown outcome, never "not sent"."""
    gateway.mode = mode  # type: ignore[assignment]  # parametrized literal
    policy = RetryPolicy(max_retries=0, deadline=1.0, reconcile=False)
    async with sdk(gateway.base_url, transport, timeout=SHORT, retry=policy) as client:
        with pytest.raises(PayoutOutcomeUnknown) as info:
            await client.create_payout(make_payout(trade_no="VXLOST01"))
    assert info.value.trade_no == "VXLOST01"
    assert len(gateway.requests) == 1


@pytest.mark.parametrize("mode", ["close_before", "close_mid"])
async def test_sdk_query_on_closed_connection(
    gateway: LoopbackGateway, transport: TransportName, mode: str
) -> None:
    """A query whose connection drops raises a TransportError that was sent."""
    gateway.mode = mode  # type: ignore[assignment]  # parametrized literal
    async with sdk(gateway.base_url, transport, max_retries=0) as client:
        with pytest.raises(TransportError) as info:
            await client.get_payout("VXQUERY1")
    assert not isinstance(info.value, ConnectError)
    assert info.value.sent is True


async def test_cancelled_calls_leak_no_connection(
    gateway: LoopbackGateway, transport: TransportName
) -> None:
    """Cancelling calls in flight frees their connections for the next ones."""
    gateway.mode = "hang"
    async with sdk(gateway.base_url, transport, max_connections=2) as client:
        stuck = [
            asyncio.create_task(client.get_payout(f"VXSTUCK{i}")) for i in range(6)
        ]
        await gateway.until(lambda: len(gateway.requests) >= 2)
        for task in stuck:
            task.cancel()
        await asyncio.gather(*stuck, return_exceptions=True)
        # A cancelled exchange's connection is closed, not kept half-used.
        await asyncio.wait_for(
            gateway.until(lambda: gateway.open_connections == 0), timeout=10
        )
        gateway.mode = "ok"
        gateway.max_open_connections = 0
        # Were a cancelled call's connection or limiter slot leaked, these
        # would wait for the pool and time out.
        results = await asyncio.wait_for(
            asyncio.gather(
                *(client.get_payout(f"VXNEXT{i}", timeout=2.0) for i in range(10))
            ),
            timeout=10,
        )
    assert [r.trade_no for r in results] == [f"VXNEXT{i}" for i in range(10)]
    assert gateway.max_open_connections <= 2


# -- choosing the transport --------------------------------------------------


async def test_aclose_closes_the_aiohttp_session(gateway: LoopbackGateway) -> None:
    """Closing the client closes aiohttp's session and its sockets."""
    client = sdk(gateway.base_url, "aiohttp")
    await client.get_balance()
    sender = client._port
    assert isinstance(sender, AiohttpPort)
    session = sender.session
    assert session is not None
    await client.aclose()
    assert session.closed
    assert sender.is_closed
    with pytest.raises(SendFailed) as info:
        await post(sender, gateway.base_url)
    assert info.value.failure.phase is Phase.NOT_SENT
    await asyncio.wait_for(
        gateway.until(lambda: gateway.open_connections == 0), timeout=10
    )


def test_unknown_transport_is_refused() -> None:
    """A transport name other than httpx or aiohttp is refused by name."""
    with pytest.raises(InvalidRequestError) as info:
        sdk("http://127.0.0.1:9/x", "urllib3")  # type: ignore[arg-type]  # the point
    assert info.value.field == "transport"


async def test_transport_with_injected_client_is_refused() -> None:
    """transport='aiohttp' cannot silently ignore an injected http_client."""
    async with httpx.AsyncClient() as http:
        with pytest.raises(InvalidRequestError) as info:
            sdk("http://127.0.0.1:9/x", "aiohttp", http_client=http)
    assert info.value.field == "transport"


def test_missing_aiohttp_says_which_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without aiohttp installed, the error names the extra to install."""
    monkeypatch.setitem(sys.modules, "aiohttp", None)
    with pytest.raises(InvalidRequestError) as info:
        sdk("http://127.0.0.1:9/x", "aiohttp")
    assert info.value.field == "transport"
    assert "vexora-async[aiohttp]" in str(info.value)


async def test_environment_proxy_is_honoured(
    gateway: LoopbackGateway,
    transport: TransportName,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """HTTP_PROXY from the environment is used, and NO_PROXY bypasses it."""
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{refused_port()}")
    monkeypatch.setenv("NO_PROXY", "")
    monkeypatch.setenv("no_proxy", "")
    # The (refused) proxy is dialled instead of the gateway: not sent.
    failed = await failure(transport, gateway.base_url)
    assert failed.failure.phase is Phase.NOT_SENT
    assert gateway.requests == []
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    sender = port(transport)
    try:
        reply = await post(sender, gateway.base_url)
    finally:
        await sender.aclose()
    assert reply.status == 200
