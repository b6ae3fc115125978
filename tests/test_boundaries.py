"""Money at the boundaries (issue 18): a proxy, a forgotten ledger, a closed client.

The sandbox gateway runs on loopback behind a small HTTP proxy that can
answer 503 or 429 *after* it forwarded a request (an upstream reset, an
upstream timeout shorter than the gateway's work), or mix up answers (another
amount, a refusal about another tradeNo). Every test counts the executions
at the gateway: nothing is executed twice, and nothing the gateway executed
is reported as "not executed". Both transports (httpx's and aiohttp's) go
through the same money rules.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import httpx
import pytest
from vexora_async import (
    ClientClosedError,
    MemoryLedger,
    Operation,
    OutcomeKind,
    PayoutOutcomeUnknown,
    RequestRejected,
    RetryPolicy,
    TradeNoCollision,
    VexoraClient,
)
from vexora_async.testing import (
    SANDBOX_APP_SECRET,
    SANDBOX_MERCHANT_NO,
    FakeGateway,
    SandboxConfig,
    serve_sandbox,
)

from tests.helpers import (
    MERCHANT_NO,
    SECRET,
    envelope,
    make_payout,
    mock_client,
    payout_data,
)


if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    import respx
    from vexora_async import Call
    from vexora_async._transports import TransportName


#: What the proxy does with one request.
#: ``pass``: forward it, hand back the answer. ``503-after``/``429-after``:
#: forward it (the gateway executes it), answer 503/429 with Retry-After.
#: ``503-before``: answer 503 without forwarding. ``amount``: forward it,
#: hand back the answer with another ``data.amount``. ``8000-other``: forward
#: it, answer a refusal about another tradeNo.
Mode = Literal["pass", "503-after", "429-after", "503-before", "amount", "8000-other"]

#: Enough 503s (not forwarded) for every status query of a call.
UNAVAILABLE: list[Mode] = ["503-before"] * 50
TRANSPORTS: list[TransportName] = ["httpx", "aiohttp"]
FAST = RetryPolicy(backoff_initial=0.001, backoff_max=0.005, deadline=10)
#: A gateway that does not refuse duplicate tradeNos, and the mode for it.
NO_DUPLICATE_REFUSAL = RetryPolicy(
    backoff_initial=0.001, backoff_max=0.005, deadline=10, resubmit=False
)
#: One exchange, no reconciliation, no confirming query: the raw outcome.
RAW = RetryPolicy(max_retries=0, reconcile=False, verify_rejections=False)
CREATE = Operation.CREATE_PAYOUT.path
QUERY = Operation.GET_PAYOUT.path
_REASONS = {200: "OK", 429: "Too Many Requests", 503: "Service Unavailable"}


class Proxy:
    """An HTTP/1.1 proxy on loopback in front of *upstream*, with a script.

    ``plan[path]`` holds the modes of the next requests to *path* (``pass``
    once it is empty). ``seen`` lists the paths of every request it got.
    """

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self._origin = f"{parts.scheme}://{parts.netloc}"
        self._prefix = parts.path
        self.plan: dict[str, deque[Mode]] = {CREATE: deque(), QUERY: deque()}
        self.seen: list[str] = []
        self._server: asyncio.Server | None = None
        self._http = httpx.AsyncClient()
        self.base_url = ""

    def script(self, path: str, *modes: Mode) -> None:
        """Queue *modes* for the next requests to *path*."""
        self.plan[path].extend(modes)

    async def __aenter__(self) -> Proxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}{self._prefix}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._http.aclose()

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            while await self._one(reader, writer):
                pass
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _one(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        path = head[0].split(" ")[1]
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in head[1:] if line)
        }
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        operation = path.removeprefix(self._prefix)
        self.seen.append(operation)
        queued = self.plan.get(operation)
        mode: Mode = queued.popleft() if queued else "pass"
        status, answer = 503, b"upstream unavailable"
        if mode != "503-before":
            forwarded = {
                k: v
                for k, v in headers.items()
                if k in {"content-type", "merchantno", "user-agent"}
            }
            reply = await self._http.post(
                self._origin + path, content=body, headers=forwarded
            )
            status, answer = reply.status_code, reply.content
            status, answer = _rewrite(mode, status, answer)
        extra = b"Retry-After: 1\r\n" if status in {429, 503} else b""
        writer.write(
            b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
            % (status, _REASONS.get(status, "X").encode())
            + extra
            + b"Content-Length: %d\r\n\r\n" % len(answer)
            + answer
        )
        await writer.drain()
        return True


def _rewrite(mode: Mode, status: int, answer: bytes) -> tuple[int, bytes]:
    """Return what the proxy hands back for the gateway's *answer*."""
    if mode == "503-after":
        return 503, b"upstream reset before headers"
    if mode == "429-after":
        return 429, b"rate limited"
    if mode == "amount":
        fields: dict[str, Any] = json.loads(answer)
        fields["data"]["amount"] = "999999"
        return status, json.dumps(fields).encode()
    if mode == "8000-other":
        other = envelope({"tradeNo": "SOMEONE-ELSE"}, code="8000", msg="refused")
        return 200, json.dumps(other).encode()
    return status, answer


@contextlib.asynccontextmanager
async def behind_proxy(
    *, reject_duplicates: bool = False
) -> AsyncIterator[tuple[FakeGateway, Proxy]]:
    """Serve a sandbox on loopback with a :class:`Proxy` in front of it."""
    gateway = FakeGateway(
        SandboxConfig(
            settle_delay=None, callbacks=False, reject_duplicates=reject_duplicates
        )
    )
    async with serve_sandbox(gateway) as url, Proxy(url) as proxy:
        yield gateway, proxy


def client(
    proxy: Proxy,
    transport: TransportName,
    retry: RetryPolicy,
    **options: Any,
) -> VexoraClient:
    """A client to the sandbox through *proxy*."""
    return VexoraClient(
        SANDBOX_MERCHANT_NO,
        SANDBOX_APP_SECRET,
        proxy.base_url,
        transport=transport,
        retry=retry,
        **options,
    )


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> TransportName:
    """The transport under test: httpx's own, then aiohttp's."""
    name: TransportName = request.param
    return name


# -- item 1: a proxy's 503 or 429 after it forwarded the create ---------------


@pytest.mark.parametrize("mode", ["503-after", "429-after"])
@pytest.mark.parametrize(
    "policy", [FAST, NO_DUPLICATE_REFUSAL], ids=["resubmit", "no-resubmit"]
)
async def test_a_proxy_refusal_after_forwarding_is_found_not_paid_again(
    transport: TransportName, mode: Mode, policy: RetryPolicy
) -> None:
    """A gateway that takes duplicates is paid once, and the payout is accepted.

    The 503 (or 429, with Retry-After) came after the gateway executed the
    payout: the status query finds it, and nothing is sent again, with and
    without ``resubmit``. (It used to be re-sent and paid twice.)
    """
    async with behind_proxy() as (gateway, proxy):
        proxy.script(CREATE, mode)
        async with client(proxy, transport, policy) as vexora:
            result = await vexora.create_payout(make_payout(trade_no="P1"))
    assert result.trade_no == "P1"
    assert gateway.stats.executions == {"P1": 1}
    assert proxy.seen.count(CREATE) == 1


@pytest.mark.parametrize("mode", ["503-after", "429-after"])
async def test_a_proxy_refusal_after_forwarding_is_unknown_not_unexecuted(
    transport: TransportName, mode: Mode
) -> None:
    """One raw exchange: the executed payout is an unknown outcome.

    It used to be an ``HTTPStatusError``, "not executed", for a payout the
    gateway had made.
    """
    async with behind_proxy(reject_duplicates=True) as (gateway, proxy):
        proxy.script(CREATE, mode)
        async with client(proxy, transport, RAW) as vexora:
            with pytest.raises(PayoutOutcomeUnknown) as info:
                await vexora.create_payout(make_payout(trade_no="P2"))
    assert info.value.may_have_executed is True
    assert info.value.trade_no == "P2"
    assert gateway.stats.executions == {"P2": 1}


@pytest.mark.slow
async def test_a_batch_never_calls_a_proxy_s_503_not_executed() -> None:
    """503 after forwarding, then on every query: UNKNOWN in a batch, not ERROR."""
    async with behind_proxy(reject_duplicates=True) as (gateway, proxy):
        proxy.script(CREATE, "503-after")
        proxy.script(QUERY, *UNAVAILABLE)
        async with client(proxy, "httpx", FAST) as vexora:
            (outcome,) = [
                o async for o in vexora.create_payouts([make_payout(trade_no="P3")])
            ]
    assert outcome.kind is OutcomeKind.UNKNOWN
    assert outcome.error is not None
    assert outcome.error.may_have_executed
    assert gateway.stats.executions == {"P3": 1}
    assert proxy.seen.count(CREATE) == 1


async def test_a_503_before_forwarding_is_sent_again_after_the_query() -> None:
    """A 503 that did not reach the gateway: not found, sent again, paid once."""
    async with behind_proxy(reject_duplicates=True) as (gateway, proxy):
        proxy.script(CREATE, "503-before")
        async with client(proxy, "httpx", FAST) as vexora:
            result = await vexora.create_payout(make_payout(trade_no="P4"))
    assert result.trade_no == "P4"
    assert gateway.stats.executions == {"P4": 1}
    assert proxy.seen == [CREATE, QUERY, CREATE]


# -- item 2: a gateway that takes duplicates and a ledger that forgot -----------


async def test_a_forgotten_ledger_never_pays_twice(transport: TransportName) -> None:
    """resubmit=False asks before every first send: a fresh ledger pays nothing.

    A process restarts with a fresh memory ledger (or Redis lost its data)
    and sends a payout an earlier run made: the gateway, which does not
    refuse duplicates, would pay it again. The status query before the
    first send finds it, and that is the answer.
    """
    request = make_payout(trade_no="P5")
    async with behind_proxy() as (gateway, proxy):
        async with client(proxy, transport, NO_DUPLICATE_REFUSAL) as first:
            accepted = await first.create_payout(request)
        async with client(
            proxy, transport, NO_DUPLICATE_REFUSAL, ledger=MemoryLedger()
        ) as restarted:
            again = await restarted.create_payout(request)
    assert (accepted.trade_no, again.trade_no) == ("P5", "P5")
    assert again.platform_trade_no == accepted.platform_trade_no
    assert gateway.stats.executions == {"P5": 1}
    # One query before each first send; one create in all.
    assert proxy.seen == [QUERY, CREATE, QUERY]


async def test_the_query_before_a_first_send_costs_one_query() -> None:
    """A new tradeNo: one status query (not found), then one create.

    The default policy (a gateway that refuses duplicates) sends no query.
    """
    async with behind_proxy() as (gateway, proxy):
        async with client(proxy, "httpx", NO_DUPLICATE_REFUSAL) as vexora:
            await vexora.create_payout(make_payout(trade_no="P6"))
        assert proxy.seen == [QUERY, CREATE]
        proxy.seen.clear()
        async with client(proxy, "httpx", FAST) as vexora:
            await vexora.create_payout(make_payout(trade_no="P7"))
        assert proxy.seen == [CREATE]
    assert gateway.stats.executions == {"P6": 1, "P7": 1}


async def test_a_failed_query_before_a_first_send_sends_nothing() -> None:
    """No proof the gateway lacks the tradeNo, no send: unknown, nothing sent."""
    async with behind_proxy() as (gateway, proxy):
        proxy.script(QUERY, *UNAVAILABLE)
        async with client(proxy, "httpx", NO_DUPLICATE_REFUSAL) as vexora:
            with pytest.raises(PayoutOutcomeUnknown, match="nothing was sent by this"):
                await vexora.create_payout(make_payout(trade_no="P8"))
    assert CREATE not in proxy.seen
    assert gateway.stats.executions == {}


async def test_another_payout_found_before_a_first_send_is_a_collision() -> None:
    """The tradeNo holds another amount: TradeNoCollision, nothing sent."""
    async with behind_proxy() as (gateway, proxy):
        async with client(proxy, "httpx", NO_DUPLICATE_REFUSAL) as vexora:
            await vexora.create_payout(make_payout(trade_no="P9", amount=5000))
        proxy.seen.clear()
        async with client(proxy, "httpx", NO_DUPLICATE_REFUSAL) as vexora:
            with pytest.raises(TradeNoCollision) as info:
                await vexora.create_payout(make_payout(trade_no="P9", amount=100))
    assert info.value.may_have_executed is False
    assert proxy.seen == [QUERY]
    assert gateway.stats.executions == {"P9": 1}


@pytest.mark.parametrize("how", ["create", "resolve"])
async def test_a_collision_after_a_send_to_a_gateway_that_takes_duplicates(
    router: respx.MockRouter, how: str
) -> None:
    """Another amount found after ours may have gone: unknown, not a collision.

    A gateway that does not refuse duplicates may hold ours as well as the
    other one, so "not made under this tradeNo" cannot be said.
    """
    post = router.post(CREATE).mock(side_effect=httpx.ReadTimeout("slow"))
    router.post(QUERY).mock(
        side_effect=[
            httpx.Response(200, json=envelope(None, code="8000")),
            httpx.Response(200, json=envelope(payout_data(amount="25000"))),
        ]
    )
    async with mock_client(router.async_handler, retry=NO_DUPLICATE_REFUSAL) as vexora:
        call = vexora.create_payout if how == "create" else vexora.resolve_payout
        with pytest.raises(PayoutOutcomeUnknown, match="does not refuse dup") as info:
            await call(make_payout())
    assert not isinstance(info.value.__cause__, PayoutOutcomeUnknown)
    assert isinstance(info.value.__cause__, TradeNoCollision)
    assert post.call_count == (1 if how == "create" else 0)


# -- item 12: a create's answer with another amount ---------------------------


async def test_an_answer_with_another_amount_is_not_accepted(
    transport: TransportName,
) -> None:
    """0000 for our tradeNo but 999999 where we asked 100: checked by a query.

    The raw exchange is an unknown outcome; the default layers ask the
    gateway, which holds 100: that is the result. (It used to be accepted,
    carrying 999999.)
    """
    async with behind_proxy(reject_duplicates=True) as (gateway, proxy):
        proxy.script(CREATE, "amount", "amount")
        async with client(proxy, transport, RAW) as raw:
            with pytest.raises(PayoutOutcomeUnknown, match="999999"):
                await raw.create_payout(make_payout(trade_no="P11"))
        async with client(proxy, transport, FAST) as vexora:
            result = await vexora.create_payout(make_payout(trade_no="P12"))
    assert result.amount == Decimal(100)
    assert gateway.stats.executions == {"P11": 1, "P12": 1}


# -- item 13: a refusal about another tradeNo -----------------------------------


@pytest.mark.parametrize(
    "policy",
    [RAW, RetryPolicy(verify_rejections=False, backoff_initial=0.001)],
    ids=["raw", "unverified"],
)
async def test_a_refusal_about_another_trade_no_is_not_ours(
    transport: TransportName, policy: RetryPolicy
) -> None:
    """8000 naming another tradeNo, after ours was executed: never "rejected".

    Raw, it is an unknown outcome; with reconciliation (and rejections not
    verified) the query finds the payout. It used to be a RequestRejected
    for a payout the gateway made.
    """
    async with behind_proxy(reject_duplicates=True) as (gateway, proxy):
        proxy.script(CREATE, "8000-other")
        async with client(proxy, transport, policy) as vexora:
            try:
                result = await vexora.create_payout(make_payout(trade_no="P13"))
            except PayoutOutcomeUnknown as exc:
                assert policy is RAW
                assert "SOMEONE-ELSE" in str(exc)
            else:
                assert policy is not RAW
                assert result.trade_no == "P13"
    assert gateway.stats.executions == {"P13": 1}


async def test_a_refusal_about_another_trade_no_is_never_request_rejected() -> None:
    """Whatever the policy says, RequestRejected is not raised for it."""
    async with behind_proxy(reject_duplicates=True) as (_, proxy):
        proxy.script(CREATE, "8000-other")
        async with client(proxy, "httpx", RAW) as vexora:
            with pytest.raises(Exception) as info:  # noqa: PT011 - checked below
                await vexora.create_payout(make_payout(trade_no="P14"))
    assert not isinstance(info.value, RequestRejected)
    assert isinstance(info.value, PayoutOutcomeUnknown)


# -- item 5: a closed client ---------------------------------------------------


async def test_a_call_queued_when_the_client_closes_sends_nothing() -> None:
    """Waiting for a connection when the client closed: ClientClosedError, unsent.

    It used to go out after the close, on a client its owner had closed.
    """
    release, arrived = asyncio.Event(), asyncio.Event()
    sent: list[str] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.url.path)
        arrived.set()
        await release.wait()
        return httpx.Response(200, json=envelope({"availableAmount": 1}))

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    async with http:
        vexora = VexoraClient(
            MERCHANT_NO,
            SECRET,
            "http://127.0.0.1:8090/myanmar",
            http_client=http,
            max_connections=1,
        )
        first = asyncio.create_task(vexora.get_balance())
        await arrived.wait()
        queued = asyncio.create_task(vexora.create_payout(make_payout()))
        await asyncio.sleep(0.01)
        closing = asyncio.create_task(vexora.aclose())
        await asyncio.sleep(0.01)
        release.set()
        await first
        await closing
        with pytest.raises(ClientClosedError, match="nothing was sent") as info:
            await queued
    assert sent == ["/myanmar" + Operation.GET_BALANCE.path]
    assert info.value.may_have_executed is False
    assert info.value.trade_no == make_payout().trade_no


async def test_a_reconciliation_cut_by_closing_ends_unknown_at_once(
    router: respx.MockRouter,
) -> None:
    """A lost answer, then the client closes: unknown now, not at the deadline.

    It used to go on querying a closed client, a backoff between each.
    """
    router.post(CREATE).mock(side_effect=httpx.ReadTimeout("slow"))
    query = router.post(QUERY).mock(return_value=httpx.Response(200, json=envelope()))
    clients: list[VexoraClient] = []

    async def close_before_the_query(call: Call, call_next: Any) -> object:
        if call.operation is Operation.GET_PAYOUT:
            await clients[0].aclose()
        return await call_next(call)

    policy = RetryPolicy(deadline=30, backoff_initial=5, backoff_max=5)
    async with mock_client(
        router.async_handler, retry=policy, middleware=[close_before_the_query]
    ) as vexora:
        clients.append(vexora)
        started = asyncio.get_running_loop().time()
        with pytest.raises(PayoutOutcomeUnknown, match="client was closed") as info:
            await vexora.create_payout(make_payout())
    assert asyncio.get_running_loop().time() - started < 2
    assert info.value.may_have_executed
    assert query.call_count == 0
