"""Both transports under what a busy worker meets, on real loopback servers.

Thousands of payouts with a third cancelled at random, a keep-alive
connection the server closed while the event loop was busy, connects to a
name with two addresses cancelled halfway, a gather of 10,000. What each
test asserts is what a user would notice: a call that never ends, a payout
reported unknown that the gateway never saw, sockets left open, a
cancellation that did not cancel.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import random
import socket
import threading
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from vexora_async import (
    PayoutOutcomeUnknown,
    PayoutResult,
    RetryPolicy,
    VexoraClient,
    VexoraError,
)
from vexora_async.testing import (
    SANDBOX_APP_SECRET,
    SANDBOX_MERCHANT_NO,
    FakeGateway,
    Fault,
    SandboxApp,
    SandboxConfig,
    serve_sandbox,
)

from tests.helpers import MERCHANT_NO, SECRET, make_payout
from tests.loopback_gateway import loopback_gateway


if TYPE_CHECKING:
    from collections.abc import Iterator

    from vexora_async._transports import TransportName


TRANSPORTS: list[TransportName] = ["httpx", "aiohttp"]
#: This process's open file descriptors (Linux).
FDS = Path("/proc/self/fd")

# Campaigns too: they judge calls by the clock (hangs, deadlines), so they run
# alone and without coverage's tracer (noxfile.py).
pytestmark = [
    pytest.mark.slow,
    pytest.mark.campaign,
    pytest.mark.parametrize("transport", TRANSPORTS),
]


def sandbox() -> FakeGateway:
    """A sandbox gateway that settles nothing and sends no callbacks."""
    return FakeGateway(SandboxConfig(settle_delay=None, callbacks=False))


def client(url: str, transport: TransportName, **options: Any) -> VexoraClient:
    """A client of the sandbox at *url* on *transport*."""
    return VexoraClient(
        SANDBOX_MERCHANT_NO, SANDBOX_APP_SECRET, url, transport=transport, **options
    )


async def test_cancelling_a_third_of_1500_payouts_hangs_no_other_call(
    transport: TransportName,
) -> None:
    """Every call not cancelled is accepted; none waits out its deadline.

    The cancellations land all through the batch, in every phase of the
    exchange. The old default transport's pool handed a connection httpcore
    still held to the next call, which then waited until its deadline and
    ended unknown: one to five calls per run.
    """
    gateway = sandbox()
    gateway.faults.at_rate(0.3, [Fault.delay(0.002), Fault.delay(0.02)], seed=3)
    policy = RetryPolicy(deadline=30, backoff_initial=0.001, backoff_max=0.01)
    finished: list[object] = []
    async with (
        serve_sandbox(gateway) as url,
        client(url, transport, retry=policy) as sdk,
    ):
        # Two rounds: the old pool's hang showed in four runs of five.
        for round_ in range(2):
            rng = random.Random(round_)
            tasks = [
                asyncio.create_task(
                    sdk.create_payout(make_payout(trade_no=f"HC{round_}X{i:05d}"))
                )
                for i in range(1500)
            ]
            loop = asyncio.get_running_loop()
            for task in rng.sample(tasks, 450):
                loop.call_later(rng.uniform(0, 1.5), task.cancel)
            results = await asyncio.gather(*tasks, return_exceptions=True)
            finished += [
                r for r in results if not isinstance(r, asyncio.CancelledError)
            ]
        # Then a burst of new payouts, as a worker's next jobs.
        later = await asyncio.gather(
            *(
                sdk.create_payout(make_payout(trade_no=f"HL{i:05d}"), deadline=30)
                for i in range(300)
            ),
            return_exceptions=True,
        )
    assert len(finished) >= 2100  # the rest really were cancelled in flight
    for result in [*finished, *later]:
        assert isinstance(result, PayoutResult), result
        assert result.status.is_processing
    assert gateway.stats.double_executions == []


class KeepAliveSandbox:
    """The sandbox under uvicorn in its own thread, closing idle connections.

    *keep_alive* is uvicorn's ``timeout_keep_alive``: it closes a
    connection idle that long. In its own thread, it closes it even while
    the test's event loop is blocked.
    """

    def __init__(self, gateway: FakeGateway, keep_alive: int) -> None:
        import uvicorn

        self.url = ""
        config = uvicorn.Config(
            SandboxApp(gateway),
            log_config=None,
            access_log=False,
            lifespan="on",
            ws="none",
            timeout_keep_alive=keep_alive,
        )
        self._server = uvicorn.Server(config)
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        self._thread = threading.Thread(
            target=asyncio.run,
            args=(self._server.serve(sockets=[self._socket]),),
            daemon=True,
        )

    @contextlib.contextmanager
    def serving(self) -> Iterator[str]:
        """Serve for the block; yield the base URL."""
        self._thread.start()
        started = time.monotonic()
        while not self._server.started:
            assert self._thread.is_alive()
            assert time.monotonic() - started < 30, "uvicorn did not start"
            time.sleep(0.01)
        try:
            yield f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        finally:
            self._server.should_exit = True
            self._thread.join(30)
            self._socket.close()


async def test_payout_after_the_loop_was_busy_past_the_keep_alive_is_accepted(
    transport: TransportName,
) -> None:
    """A payout after the server closed the idle connection is sent on a new one.

    The loop is blocked for 1.5 s while the server's 1 s keep-alive ends,
    so the close waits unread when the next payout starts. Sent on that
    dead connection, it would be lost after sending: an unknown outcome
    (with reconciliation off, as here, the caller sees it) for a payout the
    gateway never saw. The old default transport did that 5 times of 5, as
    does plain aiohttp.
    """
    gateway = sandbox()
    policy = RetryPolicy(max_retries=0, reconcile=False, deadline=10)
    outcomes: list[str] = []
    with KeepAliveSandbox(gateway, keep_alive=1).serving() as url:
        async with client(url, transport, retry=policy) as sdk:
            for i in range(5):
                await sdk.create_payout(make_payout(trade_no=f"KA{i}FIRST"))
                time.sleep(1.5)  # noqa: ASYNC251 - the busy loop is the point
                try:
                    await sdk.create_payout(make_payout(trade_no=f"KA{i}NEXT"))
                except PayoutOutcomeUnknown:
                    outcomes.append("unknown")
                else:
                    outcomes.append("accepted")
    assert outcomes == ["accepted"] * 5
    assert gateway.stats.double_executions == []


@contextlib.contextmanager
def two_addresses(monkeypatch: pytest.MonkeyPatch, port: int) -> Iterator[None]:
    """Make ``localhost`` resolve to ``::1`` then ``127.0.0.1``, port *port*.

    Many systems list both for localhost; this one lists 127.0.0.1 only,
    so the resolver the event loop calls (``socket.getaddrinfo``, whichever
    library asks) answers both for that name. ``[::1]:port`` listens with
    a full backlog: its handshake never completes, so each connect races
    the second address after the happy-eyeballs delay, as a host with a
    broken IPv6 route does.
    """
    blackhole = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    filler = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    try:
        blackhole.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        blackhole.bind(("::1", port))
        blackhole.listen(0)
        # Linux queues one connection for a backlog of 0, then drops SYNs.
        filler.connect(("::1", port))
    except OSError as exc:
        blackhole.close()
        filler.close()
        pytest.skip(f"needs IPv6 on loopback: {exc}")
    real = socket.getaddrinfo

    def resolve(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host in {"localhost", b"localhost"}:
            stream, tcp = socket.SOCK_STREAM, socket.IPPROTO_TCP
            return [
                (socket.AF_INET6, stream, tcp, "", ("::1", port, 0, 0)),
                (socket.AF_INET, stream, tcp, "", ("127.0.0.1", port)),
            ]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    try:
        yield
    finally:
        monkeypatch.setattr(socket, "getaddrinfo", real)
        filler.close()
        blackhole.close()


def cancel(
    task: asyncio.Task[PayoutResult], cancelled: dict[asyncio.Task[PayoutResult], bool]
) -> None:
    """Cancel *task*; note whether it was still running (cancel() said so)."""
    cancelled[task] = task.cancel()


def open_files() -> int:
    """Count this process's open file descriptors."""
    return len(list(FDS.iterdir()))


@pytest.mark.skipif(not FDS.is_dir(), reason="needs /proc")
async def test_2000_cancelled_connects_to_two_addresses_leave_nothing_open(
    transport: TransportName, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cancelled while racing two addresses: no socket left open, no cancel lost.

    Waves of 100 payouts, each cancelled at a random moment in its first
    half second: before the second address is tried, as it connects, or
    after the request left. The gateway closes every connection after its
    answer, so each payout connects anew. The old default transport's own
    network backend left sockets to the garbage collector (ResourceWarning);
    aiohttp's address race can swallow a cancellation, which then ran the
    payout to its end (or to its deadline) instead.
    """
    async with loopback_gateway() as gateway:
        gateway.mode = "once"
        policy = RetryPolicy(max_retries=0, deadline=60)
        rng = random.Random(5)
        lost: list[object] = []
        with (
            two_addresses(monkeypatch, gateway.port),
            warnings.catch_warnings(record=True) as caught,
        ):
            warnings.simplefilter("always", ResourceWarning)
            before = open_files()
            async with VexoraClient(
                MERCHANT_NO,
                SECRET,
                f"http://localhost:{gateway.port}/myanmar",
                transport=transport,
                retry=policy,
                max_connections=100,
            ) as sdk:
                for wave in range(20):
                    tasks = [
                        asyncio.create_task(
                            sdk.create_payout(make_payout(trade_no=f"TW{wave}X{i}"))
                        )
                        for i in range(100)
                    ]
                    cancelled: dict[asyncio.Task[PayoutResult], bool] = {}
                    for task in tasks:
                        asyncio.get_running_loop().call_later(
                            rng.uniform(0, 0.5), cancel, task, cancelled
                        )
                    # A lost cancellation runs on to the deadline (60 s).
                    await asyncio.wait(tasks, timeout=20)
                    for task in tasks:
                        if not task.done():
                            lost.append("still running 20 s after its cancel")
                            task.cancel()
                        elif cancelled.get(task) and not task.cancelled():
                            lost.append(task.exception() or task.result())
                    await asyncio.gather(*tasks, return_exceptions=True)
            # The gateway's ends of the connections are in this process too.
            await asyncio.wait_for(
                gateway.until(lambda: gateway.open_connections == 0), 10
            )
            # Its last close() lands a loop pass (or, on a busy machine, a
            # few) later; a leaked descriptor stays open however long we wait.
            for _ in range(50):
                await asyncio.sleep(0.1)
                gc.collect()
                after = open_files()
                if after <= before:
                    break
    unclosed = [str(w.message) for w in caught if w.category is ResourceWarning]
    assert unclosed == []
    assert after <= before
    assert lost == []
    assert gateway.requests  # some connects won the race and sent


async def test_a_gather_of_10000_payouts_is_all_accepted(
    transport: TransportName,
) -> None:
    """10,000 payouts at once on default settings: every one accepted."""
    gateway = sandbox()
    async with serve_sandbox(gateway) as url, client(url, transport) as sdk:
        results = await asyncio.gather(
            *(
                sdk.create_payout(make_payout(trade_no=f"TK{i:05d}"))
                for i in range(10_000)
            ),
            return_exceptions=True,
        )
    errors = [r for r in results if isinstance(r, (VexoraError, BaseException))]
    assert errors == []
    assert all(isinstance(r, PayoutResult) and r.status.is_processing for r in results)
    assert len(gateway.stats.executions) == 10_000
