"""The ASGI adapter: serves a FakeGateway and runs its timers and callbacks.

Plain ASGI 3, no web framework: it works in process through
``httpx.ASGITransport`` and on a socket under uvicorn (see
:func:`~vexora_async.testing.serve_sandbox`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any, TypeAlias
from urllib.parse import urlsplit

import httpx

from vexora_async._deadline import run_until
from vexora_async._options import is_loopback
from vexora_async.exceptions import VexoraError

from ._control import control_path, handle_control
from ._gateway import FakeGateway


if TYPE_CHECKING:
    from types import TracebackType

    from ._gateway import CallbackDelivery, Reply


logger = logging.getLogger("vexora_async.testing")

Scope: TypeAlias = MutableMapping[str, Any]
Message: TypeAlias = MutableMapping[str, Any]
Receive: TypeAlias = Callable[[], Awaitable[Message]]
Send: TypeAlias = Callable[[Message], Awaitable[None]]
ASGIApp: TypeAlias = Callable[[Scope, Receive, Send], Awaitable[None]]

#: The scope extension through which a server lets the app close the
#: client's socket without a response. :func:`serve_sandbox` provides it.
DROP_EXTENSION = "vexora.sandbox.drop"
_DROP_MESSAGE = "Server disconnected without sending a response."
_DRAIN_POLL = 0.005
HTTP_OK = 200


def _is_loopback(url: str) -> bool:
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return False
    return is_loopback(host)


class SandboxApp:
    """The ASGI app of a sandbox gateway.

    In process::

        gateway = FakeGateway()
        async with SandboxApp(gateway) as app:
            http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app))
            client = VexoraClient(..., base_url="http://127.0.0.1/sandbox",
                                  http_client=http)

    While started (``async with``, :meth:`start`, or ASGI lifespan under a
    server) it settles transactions when their delay is over and POSTs
    callbacks, retrying them on the gateway's schedule until one is
    answered HTTP 200 with the body ``OK``.

    *callback_app* sends callbacks to that ASGI app in process instead of
    over the network, whatever the host of the ``notifyUrl`` (its path and
    query are kept). The sandbox runs the app's lifespan as a server would:
    startup when the sandbox starts (an app that fails its startup fails
    :meth:`start`), shutdown when it stops; an app without lifespan support
    is served all the same. *callback_lifespan* ``False`` leaves the
    lifespan to you. *callback_concurrency* bounds the deliveries in flight.

    Paths under ``/_sandbox/`` are the control and stats endpoints (see
    "Testing your integration").
    """

    def __init__(
        self,
        gateway: FakeGateway | None = None,
        *,
        callback_app: ASGIApp | None = None,
        callback_lifespan: bool = True,
        callback_concurrency: int = 32,
    ) -> None:
        self.gateway = gateway or FakeGateway()
        self._callback_app = callback_app
        self._callback_lifespan: _Lifespan | None = (
            _Lifespan(callback_app)
            if callback_app is not None and callback_lifespan
            else None
        )
        self._concurrency = callback_concurrency
        self._runner: asyncio.Task[None] | None = None
        self._deliveries: set[asyncio.Task[None]] = set()
        self._http: httpx.AsyncClient | None = None
        self._wake: asyncio.Event | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._warned_remote = False

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"SandboxApp({self.gateway!r}, {state})"

    @property
    def running(self) -> bool:
        """Whether the timer loop runs (settling and callbacks)."""
        return self._runner is not None and not self._runner.done()

    @property
    def deliveries_in_flight(self) -> int:
        """Callback POSTs currently waiting for the merchant's answer."""
        return len(self._deliveries)

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        """Start settling and sending callbacks in this event loop. Idempotent."""
        if self.running:
            return
        if self._callback_lifespan is not None:
            await self._callback_lifespan.startup()
        loop = asyncio.get_running_loop()
        wake = asyncio.Event()
        self._wake = wake
        transport = (
            httpx.ASGITransport(app=self._with_lifespan_state(self._callback_app))
            if self._callback_app is not None
            else None
        )
        self._http = httpx.AsyncClient(
            transport=transport,
            timeout=self.gateway.config.callback_timeout,
            limits=httpx.Limits(
                max_connections=self._concurrency,
                max_keepalive_connections=self._concurrency,
            ),
            follow_redirects=False,
            trust_env=False,
        )
        # The gateway may add timers from another thread (a test calling
        # settle() while a server thread serves).
        self._unsubscribe = self.gateway.subscribe(
            lambda: loop.call_soon_threadsafe(wake.set)
        )
        self._runner = asyncio.create_task(self._run(), name="vexora-sandbox-timers")

    def _with_lifespan_state(self, app: ASGIApp) -> ASGIApp:
        """Give each callback request a copy of the state the lifespan set up.

        As a server does: Starlette and FastAPI read ``request.state`` from it.
        """
        lifespan = self._callback_lifespan
        if lifespan is None:
            return app

        async def with_state(scope: Scope, receive: Receive, send: Send) -> None:
            await app({**scope, "state": dict(lifespan.state)}, receive, send)

        return with_state

    async def aclose(self) -> None:
        """Stop the timer loop and cancel deliveries in flight. Idempotent."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        tasks = [t for t in (self._runner, *self._deliveries) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._runner = None
        self._deliveries.clear()
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        if self._callback_lifespan is not None:
            await self._callback_lifespan.shutdown()

    # Self needs Python 3.11 or typing_extensions; one class is enough.
    async def __aenter__(self) -> SandboxApp:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def drain(self, timeout: float = 10.0) -> bool:
        """Wait until no timer is pending and no callback is in flight.

        Returns ``False`` if that did not happen within *timeout* seconds
        (for example a callback still being retried on a long schedule).
        """
        deadline = time.monotonic() + timeout
        while self.gateway.pending_timers or self._deliveries:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(_DRAIN_POLL)
        return True

    # -- the timer loop -----------------------------------------------------------

    async def _run(self) -> None:
        gateway, wake = self.gateway, self._wake
        assert wake is not None  # noqa: S101 - set by start() before this runs
        limit = asyncio.Semaphore(self._concurrency)
        while True:
            # Clear before looking, so a timer added meanwhile wakes us.
            wake.clear()
            for delivery in gateway.advance():
                task = asyncio.create_task(self._deliver(delivery, limit))
                self._deliveries.add(task)
                task.add_done_callback(self._deliveries.discard)
            due = gateway.next_due()
            loop = asyncio.get_running_loop()
            when = None if due is None else loop.time() + (due - time.monotonic())
            # Not asyncio.wait_for: before 3.12 it can return the wake-up
            # and swallow the cancellation of aclose(), which then hangs.
            with contextlib.suppress(TimeoutError):
                await run_until(wake.wait(), when)

    async def _deliver(
        self, delivery: CallbackDelivery, limit: asyncio.Semaphore
    ) -> None:
        http = self._http
        assert http is not None  # noqa: S101 - deliveries only run while started
        delivered = False
        if (
            self._callback_app is None
            and not self.gateway.config.allow_remote_callbacks
            and not _is_loopback(delivery.url)
        ):
            if not self._warned_remote:
                self._warned_remote = True
                logger.warning(
                    "sandbox: not POSTing callbacks to non-loopback hosts "
                    "(SandboxConfig.allow_remote_callbacks=False)"
                )
        else:
            async with limit:
                try:
                    response = await http.post(
                        delivery.url,
                        content=delivery.body,
                        headers={"content-type": "application/json"},
                    )
                    delivered = response.status_code == HTTP_OK
                    delivered = delivered and response.content == b"OK"
                # The merchant's endpoint may fail in any way; that is only
                # a failed delivery, retried on the schedule.
                except Exception as exc:  # noqa: BLE001
                    logger.debug(
                        "sandbox: callback to %s failed: %s",
                        delivery.url,
                        type(exc).__name__,
                    )
        self.gateway.record_delivery(delivery, delivered=delivered)

    # -- ASGI -------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection (``http`` or ``lifespan``)."""
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        if not self.running:
            # In process there is no lifespan: start on first use.
            await self.start()
        body = await _read_body(receive)
        control = control_path(scope["path"])
        if control is not None:
            await _respond(
                handle_control(self.gateway, scope["method"], control, body), send
            )
            return
        headers = {
            name.decode("latin-1").lower(): value.decode("latin-1")
            for name, value in scope.get("headers", ())
        }
        reply = self.gateway.handle(
            scope["method"],
            scope["path"],
            headers,
            body,
            host=headers.get("host"),
        )
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.drop:
            await _drop(scope, receive, send)
            return
        await _respond(reply, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return


class _Lifespan:
    """Runs an ASGI app's lifespan protocol, as a server would."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app
        self._to_app: asyncio.Queue[Message] = asyncio.Queue()
        self._from_app: asyncio.Queue[Message] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        #: What the app's startup put in its lifespan scope's ``state``.
        self.state: dict[str, Any] = {}

    async def startup(self) -> None:
        """Run the app's startup; raise if it reports a failure."""
        self._to_app, self._from_app = asyncio.Queue(), asyncio.Queue()
        self.state = {}
        scope = {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.0"},
            "state": self.state,
        }
        task = asyncio.create_task(self._run(scope), name="vexora-lifespan")
        await self._to_app.put({"type": "lifespan.startup"})
        message = await self._from_app.get()
        if message["type"] == "lifespan.startup.complete":
            self._task = task
            return
        await _cancel(task)
        if message["type"] == "lifespan.startup.failed":
            msg = f"the callback app's startup failed: {message.get('message', '')}"
            raise VexoraError(msg)
        # Otherwise the app does not speak lifespan (it raised or returned):
        # a server carries on without it, and so do we.

    async def shutdown(self) -> None:
        """Run the app's shutdown, if its startup ran."""
        task, self._task = self._task, None
        if task is None:
            return
        await self._to_app.put({"type": "lifespan.shutdown"})
        message = await self._from_app.get()
        if message["type"] == "lifespan.shutdown.failed":
            logger.warning(
                "sandbox: the callback app's shutdown failed: %s",
                message.get("message", ""),
            )
        await _cancel(task)

    async def _run(self, scope: Scope) -> None:
        try:
            await self._app(scope, self._to_app.get, self._from_app.put)
        # An app that does not support lifespan may raise anything here.
        except Exception as exc:  # noqa: BLE001
            logger.debug("sandbox: the callback app's lifespan: %r", exc)
        finally:
            await self._from_app.put({"type": "lifespan.ended"})


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _respond(reply: Reply, send: Send) -> None:
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers]
    headers.append((b"content-length", str(len(reply.body)).encode()))
    await send(
        {"type": "http.response.start", "status": reply.status, "headers": headers}
    )
    await send({"type": "http.response.body", "body": reply.body})


async def _drop(scope: Scope, receive: Receive, send: Send) -> None:
    """Close the connection without a response."""
    drop = (scope.get("extensions") or {}).get(DROP_EXTENSION)
    if drop is not None and drop():
        # Wait for the server to notice, so that it does not answer a 500.

        async def noticed() -> Message:
            return await receive()

        with contextlib.suppress(TimeoutError):
            await run_until(noticed(), asyncio.get_running_loop().time() + 1.0)
        return
    # In process (httpx.ASGITransport) there is no socket: raising what
    # httpx raises for a dropped connection reaches the client unchanged.
    # Under another server, the status line may go out before the close;
    # the client still sees a broken exchange, not an answer.
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", b"1024")],
        }
    )
    raise httpx.RemoteProtocolError(_DROP_MESSAGE)
