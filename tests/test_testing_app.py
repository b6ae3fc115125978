"""Tests for the sandbox's ASGI app: its timers, callbacks and retries."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import httpx
import pytest
from vexora_async import Operation, VexoraError, verify
from vexora_async.testing import (
    SANDBOX_APP_SECRET,
    CallbackRecorder,
    FakeGateway,
    Fault,
    ReceivedCallback,
    SandboxApp,
    SandboxConfig,
)
from vexora_async.testing._recorder import ACCEPTED

from tests.helpers import in_process_client, make_payout


if TYPE_CHECKING:
    from vexora_async.testing._app import Receive, Scope, Send


REMOTE_NOTIFY = "http://merchant.invalid/notify"


def quick(**overrides: object) -> FakeGateway:
    """Return a gateway whose timers run a thousand times faster."""
    fields: dict[str, object] = {"settle_delay": 0.01, "time_scale": 0.001}
    fields.update(overrides)
    return FakeGateway(SandboxConfig(**fields))  # type: ignore[arg-type]  # test kwargs


async def test_settles_after_the_delay_and_delivers_a_signed_callback() -> None:
    """A payout settles by itself; its callback arrives signed, once."""
    recorder = CallbackRecorder()
    app = SandboxApp(quick(), callback_app=recorder)
    async with app, in_process_client(app) as client:
        await client.create_payout(make_payout(trade_no="C1"))
        assert await app.drain(5)
        status = await client.get_payout("C1")
    assert status.status == "0000"
    (callback,) = recorder.received
    assert callback.verified
    assert callback.trade_no == "C1"
    assert callback.status == "0000"
    assert callback.fields is not None
    assert verify(callback.fields, SANDBOX_APP_SECRET, callback.fields["sign"])
    assert app.gateway.stats.callbacks_delivered["C1"] == 1


@pytest.mark.parametrize(
    "refusals",
    [
        [(500, b"")],
        [(200, b"ok"), (200, b"OK ")],
        [(200, b'{"code":"0000"}'), (404, b"OK"), (503, b"OK")],
    ],
    ids=["500", "almost-ok", "json-and-errors"],
)
async def test_callback_is_retried_until_the_answer_is_exactly_ok(
    refusals: list[tuple[int, bytes]],
) -> None:
    """Anything but HTTP 200 with the body ``OK`` means "send it again"."""
    answers = iter(refusals)

    def respond(_: ReceivedCallback) -> tuple[int, bytes]:
        return next(answers, ACCEPTED)

    recorder = CallbackRecorder(respond=respond)
    app = SandboxApp(quick(), callback_app=recorder)
    async with app, in_process_client(app) as client:
        await client.create_payout(make_payout(trade_no="R1"))
        assert await app.drain(10)
    stats = app.gateway.stats
    assert stats.callback_attempts["R1"] == len(refusals) + 1
    assert stats.callbacks_delivered["R1"] == 1
    assert [cb.delivery for cb in recorder.received] == list(
        range(1, len(refusals) + 2)
    )
    assert all(cb.verified for cb in recorder.received)


async def test_gives_up_after_the_last_retry() -> None:
    """A receiver that never says OK gets 1 + 8 deliveries, then silence."""
    recorder = CallbackRecorder(respond=lambda _: (500, b"no"))
    gateway = quick(callback_schedule=(0.001,) * 8, time_scale=1.0)
    app = SandboxApp(gateway, callback_app=recorder)
    async with app, in_process_client(app) as client:
        await client.create_payout(make_payout(trade_no="X1"))
        assert await app.drain(10)
    assert len(recorder.received) == 9
    assert gateway.stats.callbacks_exhausted["X1"] == 1
    assert gateway.stats.callbacks_delivered["X1"] == 0


async def test_settle_on_demand_wakes_the_timer_loop() -> None:
    """With no delay, nothing settles until settle() is called; then at once."""
    recorder = CallbackRecorder()
    gateway = quick(settle_delay=None)
    app = SandboxApp(gateway, callback_app=recorder)
    async with app, in_process_client(app) as client:
        await client.create_payout(make_payout(trade_no="S1"))
        await asyncio.sleep(0.05)
        assert recorder.received == []
        gateway.settle("S1", "00029")
        assert await app.drain(5)
    assert [cb.status for cb in recorder.received] == ["00029"]


async def test_callbacks_to_remote_hosts_are_not_sent(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Only loopback receives callbacks unless allowed; attempts still count."""
    gateway = quick(callback_schedule=(0.001,))
    app = SandboxApp(gateway)
    with caplog.at_level(logging.WARNING, logger="vexora_async.testing"):
        async with app, in_process_client(app) as client:
            request = make_payout(trade_no="N1", notify_url=REMOTE_NOTIFY)
            await client.create_payout(request)
            assert await app.drain(5)
    assert gateway.stats.callback_attempts["N1"] == 2
    assert gateway.stats.callbacks_delivered["N1"] == 0
    assert "non-loopback" in caplog.text


async def test_starts_on_first_request_without_lifespan() -> None:
    """In process there is no lifespan: the first request starts the timers."""
    recorder = CallbackRecorder()
    app = SandboxApp(quick(), callback_app=recorder)
    seen = [app.running]
    try:
        async with in_process_client(app) as client:
            await client.create_payout(make_payout(trade_no="L1"))
            seen.append(app.running)
            assert await app.drain(5)
    finally:
        await app.aclose()
    seen.append(app.running)
    assert seen == [False, True, False]
    assert recorder.verified_trade_nos == {"L1"}


async def test_lifespan_starts_and_stops_the_timers() -> None:
    """ASGI lifespan startup starts the loop; shutdown stops it."""
    app = SandboxApp(quick())
    inbox: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    outbox: list[str] = []
    for message in ("lifespan.startup", "lifespan.shutdown"):
        inbox.put_nowait({"type": message})

    async def send(message: dict[str, str]) -> None:
        outbox.append(message["type"])
        if message["type"] == "lifespan.startup.complete":
            assert app.running

    await app({"type": "lifespan"}, inbox.get, send)  # type: ignore[arg-type]  # plain dicts
    assert outbox == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert not app.running


async def test_drain_reports_a_timeout() -> None:
    """drain() returns False while a retry is still far away."""
    recorder = CallbackRecorder(respond=lambda _: (500, b""))
    gateway = quick(time_scale=1.0)
    app = SandboxApp(gateway, callback_app=recorder)
    async with app, in_process_client(app) as client:
        await client.create_payout(make_payout(trade_no="W1"))
        assert not await app.drain(0.3)
        assert gateway.pending_timers == 1


async def test_drop_in_process_is_a_transport_error() -> None:
    """In process, a drop reaches httpx as RemoteProtocolError."""
    app = SandboxApp(quick())
    app.gateway.faults.queue(Fault.drop())
    async with (
        app,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as http,
    ):
        with pytest.raises(httpx.RemoteProtocolError):
            await http.post("http://127.0.0.1" + Operation.GET_BALANCE.path)


# -- the callback app's lifespan ---------------------------------------------


class LifespanApp:
    """A callback receiver with startup code, as a FastAPI app would have."""

    def __init__(self, *, fail_startup: bool = False) -> None:
        self.events: list[str] = []
        self.fail_startup = fail_startup
        self.recorder = CallbackRecorder()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer lifespan messages; hand callbacks to the recorder."""
        if scope["type"] != "lifespan":
            assert "started" in self.events, "a callback before startup"
            self.events.append(f"callback with {scope['state']}")
            await self.recorder(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if self.fail_startup:
                    await send({"type": "lifespan.startup.failed", "message": "no db"})
                    return
                self.events.append("started")
                scope["state"]["pool"] = "db-pool"
                await send({"type": "lifespan.startup.complete"})
            else:
                self.events.append("stopped")
                await send({"type": "lifespan.shutdown.complete"})
                return


async def test_callback_app_lifespan_runs_around_the_sandbox() -> None:
    """The app's startup runs before any callback, its shutdown at the end.

    Each callback request carries the state the startup set up, as under a
    server. The notify URL's host is ignored: the app gets the callback in
    process.
    """
    receiver = LifespanApp()
    app = SandboxApp(quick(), callback_app=receiver)
    async with app, in_process_client(app) as client:
        assert receiver.events == ["started"]
        await client.create_payout(make_payout(trade_no="L1", notify_url=REMOTE_NOTIFY))
        assert await app.drain(5)
    assert receiver.events == [
        "started",
        "callback with {'pool': 'db-pool'}",
        "stopped",
    ]
    assert receiver.recorder.verified_trade_nos == {"L1"}


async def test_callback_app_failing_its_startup_fails_the_start() -> None:
    """A receiver whose startup failed is reported, not served half-started."""
    app = SandboxApp(quick(), callback_app=LifespanApp(fail_startup=True))
    with pytest.raises(VexoraError, match="startup failed: no db"):
        await app.start()
    assert not app.running
    await app.aclose()


async def test_callback_app_without_lifespan_is_served() -> None:
    """An app that refuses the lifespan scope still receives callbacks."""
    recorder = CallbackRecorder()

    async def no_lifespan(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            raise RuntimeError("lifespan not supported")
        await recorder(scope, receive, send)

    app = SandboxApp(quick(), callback_app=no_lifespan)
    async with app, in_process_client(app) as client:
        await client.create_payout(make_payout(trade_no="L2"))
        assert await app.drain(5)
    assert recorder.verified_trade_nos == {"L2"}


async def test_callback_lifespan_can_be_left_to_the_test() -> None:
    """callback_lifespan=False never sends the app a lifespan message."""
    receiver = LifespanApp()
    receiver.events.append("started")  # as if the test had run it itself
    app = SandboxApp(quick(), callback_app=receiver, callback_lifespan=False)
    async with app:
        pass
    assert receiver.events == ["started"]


async def test_callback_app_shutdown_failure_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A failed shutdown is a warning: the sandbox still stops."""

    async def app_failing_shutdown(scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "lifespan"
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.failed", "message": "stuck"})

    app = SandboxApp(quick(), callback_app=app_failing_shutdown)
    with caplog.at_level(logging.WARNING, logger="vexora_async.testing"):
        async with app:
            pass
    assert "shutdown failed: stuck" in caplog.text
