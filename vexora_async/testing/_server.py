"""The sandbox on a real loopback socket, served by uvicorn (the ``sandbox`` extra).

:func:`serve_sandbox` runs it in the current event loop;
:class:`SandboxServer` runs it in a background thread, for synchronous code
and for keeping the gateway off the client's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import threading
from typing import TYPE_CHECKING, Any

from vexora_async.exceptions import InvalidRequestError, VexoraError

from ._app import DROP_EXTENSION, SandboxApp


if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from types import TracebackType

    from ._app import ASGIApp, Receive, Scope, Send
    from ._gateway import FakeGateway


_STARTUP_POLL = 0.005
_STARTUP_TIMEOUT = 10.0
# Longer than any client's keep-alive, so the server never closes an idle
# connection at the moment a client reuses it (a spurious dropped payout).
_KEEP_ALIVE = 120


def _import_uvicorn() -> Any:
    try:
        import uvicorn
    except ImportError as exc:
        msg = (
            "serving the sandbox on a socket needs uvicorn: "
            "pip install 'vexora-async[sandbox]'"
        )
        raise VexoraError(msg) from exc
    return uvicorn


def _loopback_socket(host: str, port: int) -> socket.socket:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise InvalidRequestError("host", "must be a loopback IP address") from None
    if not address.is_loopback:
        raise InvalidRequestError(
            "host", "must be a loopback address (127.0.0.1 or ::1)"
        )
    if not _is_port(port):
        raise InvalidRequestError("port", "must be an int from 0 (any free) to 65535")
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET  # noqa: PLR2004
    # proto=IPPROTO_TCP matters: accepted sockets inherit it, and asyncio
    # only sets TCP_NODELAY on sockets that say they are TCP. Without it,
    # Nagle and delayed ACKs add 40 ms to every answer.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        msg = f"cannot listen on {host}:{port}: {exc}"
        raise VexoraError(msg) from exc
    return sock


def _is_port(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**16


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _with_drop(app: ASGIApp, server: Any) -> ASGIApp:
    """Give the app a way to close the client's socket without an answer."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            client = scope.get("client")

            def drop() -> bool:
                # uvicorn keeps its open connections (protocol objects, each
                # with its peer address and transport) on the server state.
                for connection in list(server.server_state.connections):
                    if getattr(connection, "client", None) == client:
                        connection.transport.abort()
                        return True
                return False

            extensions = dict(scope.get("extensions") or {})
            extensions[DROP_EXTENSION] = drop
            scope = {**scope, "extensions": extensions}
        await app(scope, receive, send)

    return wrapped


@contextlib.asynccontextmanager
async def serve_sandbox(
    gateway: FakeGateway | SandboxApp | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
) -> AsyncIterator[str]:
    """Serve a sandbox on loopback in this event loop; yield its base URL.

    ::

        async with serve_sandbox(gateway) as url:
            async with VexoraClient(merchant_no, secret, url) as client:
                ...

    The app's timers and callbacks run while the server does, and stop
    when the block ends. A dropped-connection fault really closes the
    socket with no response. Needs the ``sandbox`` extra (uvicorn).

    :param gateway: What to serve: a :class:`FakeGateway`, or a
        :class:`SandboxApp` to choose its callback options. Default
        ``None``: a new gateway with the default :class:`SandboxConfig`.
    :param host: The address to listen on. Default ``"127.0.0.1"``.
        Valid: a loopback IP address (``127.0.0.1``, ``::1``), else
        :class:`~vexora_async.InvalidRequestError`.
    :param port: The port to listen on. Default ``0``: any free port (the
        yielded URL says which). Valid: an ``int`` from 0 to 65535; one
        already taken raises :class:`~vexora_async.VexoraError`.
    """
    app = gateway if isinstance(gateway, SandboxApp) else SandboxApp(gateway)
    async with serve_app(app, host=host, port=port) as url:
        yield url


@contextlib.asynccontextmanager
async def serve_app(
    app: ASGIApp, *, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[str]:
    """Serve any ASGI app on loopback with uvicorn, in this event loop.

    Yields the base URL. Handy for a callback receiver next to the
    sandbox. Only loopback addresses are accepted.
    """
    uvicorn = _import_uvicorn()
    sock = _loopback_socket(host, port)
    config = uvicorn.Config(
        app,
        interface="asgi3",
        lifespan="on",
        log_config=None,
        proxy_headers=False,
        access_log=False,
        ws="none",
        timeout_keep_alive=_KEEP_ALIVE,
        timeout_graceful_shutdown=5,
        backlog=4096,
    )
    server = uvicorn.Server(config)
    config.app = _with_drop(app, server)
    task = asyncio.create_task(server.serve(sockets=[sock]), name="vexora-sandbox")
    try:
        await _started(server, task)
        yield _url(sock)
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
        sock.close()


async def _started(server: Any, task: asyncio.Task[None]) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _STARTUP_TIMEOUT
    while not server.started:
        if task.done():
            task.result()  # re-raise what stopped it
            msg = "the sandbox server stopped during startup"
            raise VexoraError(msg)
        if loop.time() > deadline:
            msg = "the sandbox server did not start in time"
            raise VexoraError(msg)
        await asyncio.sleep(_STARTUP_POLL)


class SandboxServer:
    """A sandbox served on loopback from a background thread.

    ::

        with SandboxServer(FakeGateway()) as server:
            run_my_sync_tests(base_url=server.url)

    The gateway (:attr:`gateway`) may be inspected and scripted from any
    thread while the server runs.
    """

    def __init__(
        self,
        gateway: FakeGateway | SandboxApp | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.app = gateway if isinstance(gateway, SandboxApp) else SandboxApp(gateway)
        self._host, self._port = host, port
        self._url: str | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def gateway(self) -> FakeGateway:
        """The gateway being served."""
        return self.app.gateway

    @property
    def url(self) -> str:
        """The base URL, such as ``http://127.0.0.1:54321``."""
        if self._url is None:
            raise InvalidRequestError(None, "the sandbox server is not running")
        return self._url

    def start(self) -> str:
        """Start serving; return the base URL once it accepts connections."""
        if self._thread is not None:
            return self.url
        _import_uvicorn()
        self._ready.clear()
        self._thread = threading.Thread(
            target=asyncio.run,
            args=(self._serve(),),
            name="vexora-sandbox",
            daemon=True,
        )
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self._thread.join()
            self._thread = None
            raise self._error
        return self.url

    def stop(self) -> None:
        """Stop serving and wait for the thread to end. Idempotent."""
        thread, loop, stop = self._thread, self._loop, self._stop
        if thread is None:
            return
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended
                loop.call_soon_threadsafe(stop.set)
        thread.join()
        self._thread = None
        self._url = None

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until no timer is pending and no callback in flight."""
        loop = self._loop
        if loop is None:
            return True
        future = asyncio.run_coroutine_threadsafe(self.app.drain(timeout), loop)
        return future.result()

    def __enter__(self) -> SandboxServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            async with serve_sandbox(self.app, host=self._host, port=self._port) as url:
                self._url = url
                self._ready.set()
                await self._stop.wait()
        # Whatever stopped the start reaches the caller of start().
        except BaseException as exc:
            self._error = exc
            raise
        finally:
            self._ready.set()
            self._loop = None
