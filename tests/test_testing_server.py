"""End-to-end tests over a real loopback socket: the SDK client against the sandbox."""

from __future__ import annotations

import asyncio
import socket
from decimal import Decimal

import httpx
import pytest
from vexora_async import (
    DepositRequest,
    Operation,
    RequestRejected,
    VexoraClient,
    VexoraError,
)
from vexora_async.testing import (
    SANDBOX_APP_SECRET,
    SANDBOX_MERCHANT_NO,
    CallbackRecorder,
    FakeGateway,
    Fault,
    ReceivedCallback,
    SandboxApp,
    SandboxConfig,
    SandboxServer,
    serve_app,
    serve_sandbox,
)
from vexora_async.testing._recorder import ACCEPTED

from tests.helpers import FAST_RETRY, ONE_EXCHANGE, make_payout


async def test_every_call_end_to_end(
    socket_client: VexoraClient, gateway: FakeGateway
) -> None:
    """Payout, its status, the balance, a deposit and its status, over a socket."""
    initial = gateway.config.initial_balance
    accepted = await socket_client.create_payout(
        make_payout(trade_no="E1", amount=2500, remark="salary")
    )
    assert accepted.status.is_processing
    assert accepted.platform_trade_no
    assert accepted.remark == "salary"
    balance = await socket_client.get_balance()
    assert balance.available_amount == initial - 2500
    assert balance.freeze_amount == 2500

    assert (await socket_client.get_payout("E1")).status.is_processing
    gateway.settle("E1")
    status = await socket_client.get_payout("E1")
    assert status.status.is_success
    assert status.order_amount == Decimal(2500)
    assert status.success_time is not None
    assert (await socket_client.get_balance()).freeze_amount == 0

    deposit = await socket_client.create_deposit(
        DepositRequest(
            trade_no="D1",
            amount=5000,
            name="Daw Aye",
            notify_url="http://127.0.0.1:9/notify",
            way_code="KBZPAY",
        )
    )
    assert deposit.raw["payUrl"].startswith("http://127.0.0.1:")
    gateway.settle_deposit("D1")
    assert (await socket_client.get_deposit("D1")).status.is_success
    assert (await socket_client.get_balance()).available_amount == initial - 2500 + 5000
    with pytest.raises(RequestRejected):
        await socket_client.get_payout("NEVER-SENT")


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        ({"app_secret": "a-wrong-secret"}, "sign"),
        ({"merchant_no": "1000000999"}, "merchant"),
        ({"clock": lambda: 1_000_000_000_000}, "timestamp"),
        ({"clock": lambda: 1_719_876_543}, "timestamp"),
    ],
    ids=["secret", "merchant", "stale-clock", "seconds-clock"],
)
async def test_a_broken_client_cannot_pass(
    socket_url: str,
    gateway: FakeGateway,
    options: dict[str, object],
    reason: str,
) -> None:
    """A client with a wrong secret, merchant or clock is refused, nothing paid.

    The refusal is confirmed by a status query (refused for the same reason)
    before it reaches the caller; every request the gateway saw was refused.
    """
    settings: dict[str, object] = {
        "merchant_no": SANDBOX_MERCHANT_NO,
        "app_secret": SANDBOX_APP_SECRET,
        "base_url": socket_url,
        "retry": FAST_RETRY,
    }
    settings.update(options)
    async with VexoraClient(**settings) as client:  # type: ignore[arg-type]  # test kwargs
        with pytest.raises(RequestRejected):
            await client.create_payout(make_payout())
    assert gateway.stats.requests[Operation.CREATE_PAYOUT.path] == 1
    assert gateway.stats.rejections == {reason: gateway.stats.requests.total()}
    assert not gateway.payouts


async def test_a_duplicate_trade_no_is_refused(
    socket_url: str, socket_client: VexoraClient, gateway: FakeGateway
) -> None:
    """The same tradeNo sent again pays once, whoever sends it.

    The same client answers from its ledger without a request. A client
    that does not remember it (another process, a restart) in one exchange
    sees the gateway's duplicate refusal; on the default layers it checks
    the refusal by a status query and gets the existing payout back.
    """
    first = await socket_client.create_payout(make_payout(trade_no="DUP"))
    again = await socket_client.create_payout(make_payout(trade_no="DUP"))
    assert again.platform_trade_no == first.platform_trade_no
    assert gateway.stats.requests[Operation.CREATE_PAYOUT.path] == 1
    async with VexoraClient(
        SANDBOX_MERCHANT_NO, SANDBOX_APP_SECRET, socket_url, retry=ONE_EXCHANGE
    ) as forgetful:
        with pytest.raises(RequestRejected, match="already exists"):
            await forgetful.create_payout(make_payout(trade_no="DUP"))
    async with VexoraClient(
        SANDBOX_MERCHANT_NO, SANDBOX_APP_SECRET, socket_url, retry=FAST_RETRY
    ) as restarted:
        found = await restarted.create_payout(make_payout(trade_no="DUP"))
    assert found.platform_trade_no == first.platform_trade_no
    assert gateway.stats.duplicates["DUP"] == 2
    assert gateway.stats.executions["DUP"] == 1


async def test_callbacks_are_delivered_and_retried_over_sockets() -> None:
    """A receiver on its own socket refuses twice; the gateway retries to OK."""

    def respond(callback: ReceivedCallback) -> tuple[int, bytes]:
        return (503, b"busy") if callback.delivery <= 2 else ACCEPTED

    recorder = CallbackRecorder(respond=respond)
    gateway = FakeGateway(SandboxConfig(settle_delay=0.01, time_scale=0.001))
    app = SandboxApp(gateway)
    async with (
        serve_app(recorder) as receiver_url,
        serve_sandbox(app) as url,
        VexoraClient(SANDBOX_MERCHANT_NO, SANDBOX_APP_SECRET, url) as client,
    ):
        notify = f"{receiver_url}/vexora/notify"
        await client.create_payout(make_payout(trade_no="CB1", notify_url=notify))
        await client.create_payout(
            make_payout(
                trade_no="CB2", bank_number="3560123456780029", notify_url=notify
            )
        )
        assert await app.drain(10)
    assert gateway.stats.callback_attempts == {"CB1": 3, "CB2": 3}
    assert gateway.stats.callbacks_delivered == {"CB1": 1, "CB2": 1}
    assert all(cb.verified for cb in recorder.received)
    finals = {cb.trade_no: cb.status for cb in recorder.received}
    assert finals == {"CB1": "0000", "CB2": "00029"}


def test_sandbox_server_in_a_thread() -> None:
    """A synchronous caller gets a URL, drives a client, settles, and stops."""
    gateway = FakeGateway(SandboxConfig(settle_delay=None, callbacks=False))

    async def use(url: str) -> str:
        async with VexoraClient(SANDBOX_MERCHANT_NO, SANDBOX_APP_SECRET, url) as c:
            await c.create_payout(make_payout(trade_no="TH1"))
            gateway.settle("TH1")  # from this thread, not the server's
            return str((await c.get_payout("TH1")).status)

    never_started = SandboxServer()
    never_started.stop()  # harmless
    with SandboxServer(gateway) as server, SandboxServer() as other:
        assert server.start() == server.url  # idempotent
        assert server.url != other.url
        assert server.gateway is gateway
        assert asyncio.run(use(server.url)) == "0000"
        assert server.drain(5)
    with pytest.raises(ValueError, match="not running"):
        _ = server.url


@pytest.mark.parametrize(
    ("host", "port"),
    [("0.0.0.0", 0), ("localhost", 0), ("192.168.1.1", 0), ("127.0.0.1", -1)],  # noqa: S104 - refused on purpose
)
async def test_serves_only_on_loopback(host: str, port: int) -> None:
    """Non-loopback or named hosts and bad ports are refused before binding."""
    with pytest.raises(ValueError, match=r"host|port"):
        async with serve_sandbox(FakeGateway(), host=host, port=port):
            pass


async def test_a_busy_port_is_reported() -> None:
    """A port already in use gives a clear error, not a hang."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(VexoraError, match="cannot listen"):
            async with serve_sandbox(FakeGateway(), port=port):
                pass


async def test_callers_queue_in_the_sdk_not_in_the_pool() -> None:
    """With a pool timeout far shorter than the queue, the SDK's callers wait.

    The control: plain httpx with the same pool and timeout gets
    PoolTimeout, which proves the load really exceeds the pool.
    """
    gateway = FakeGateway(SandboxConfig(settle_delay=None, callbacks=False))
    gateway.faults.at_rate(1.0, [Fault.delay(0.02)])
    timeout = httpx.Timeout(10.0, pool=0.2)
    async with serve_sandbox(gateway) as url:
        async with httpx.AsyncClient(
            timeout=timeout,
            limits=httpx.Limits(max_connections=10, max_keepalive_connections=10),
        ) as raw:
            control = await asyncio.gather(
                *(raw.post(url + "/v1/vexora/queryBalance") for _ in range(300)),
                return_exceptions=True,
            )
        assert any(isinstance(r, httpx.PoolTimeout) for r in control)
        async with VexoraClient(
            SANDBOX_MERCHANT_NO,
            SANDBOX_APP_SECRET,
            url,
            timeout=timeout,
            max_connections=10,
        ) as client:
            results = await asyncio.gather(
                *(
                    client.create_payout(make_payout(trade_no=f"Q{i}"))
                    for i in range(300)
                ),
                return_exceptions=True,
            )
    assert [r for r in results if isinstance(r, BaseException)] == []
    assert len(gateway.payouts) == 300
