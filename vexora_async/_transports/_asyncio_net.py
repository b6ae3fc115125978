"""httpcore's network layer on plain asyncio: a protocol and a bytes buffer.

httpcore's own asyncio backend goes through anyio: every read and write
opens a cancel scope with a deadline (``fail_after``), and every check of
an idle connection (``is_readable``) builds anyio's attribute mapping and
polls the socket. In the profile of the SDK's default transport that was
a large share of each request's CPU. Here a read that finds data returns
it at once; one that waits parks on a future with a loop timer; whether
an idle connection is still good is read off the protocol's state.

What a failure means does not change (the SDK tells "never sent" from
"may have been sent" by the exception's type), so every method maps its
failures as ``httpcore._backends.anyio`` does (checked against httpcore
1.0.9 and anyio 4.16): until the connection exists, ``ConnectError`` or
``ConnectTimeout``; after, ``ReadError``, ``WriteError``, ``ReadTimeout``
or ``WriteTimeout``. No ``OSError`` or asyncio exception gets out.
"""

from __future__ import annotations

import asyncio
import socket
from typing import TYPE_CHECKING, Any, TypeVar, cast

import httpcore

from vexora_async._deadline import run_until


if TYPE_CHECKING:
    import ssl
    from collections.abc import Callable, Coroutine, Iterable


T = TypeVar("T")


__all__ = ["AsyncioBackend", "AsyncioStream"]

#: Past this many unread bytes the socket is no longer read (the peer then
#: waits on TCP's window): a reader that stopped reading holds no more.
READ_HIGH_WATER = 256 * 1024
#: Reading resumes once the reader has taken the buffer down to this.
READ_LOW_WATER = 64 * 1024

#: anyio's default: the next address of a name is tried after this long.
HAPPY_EYEBALLS_DELAY = 0.25

#: asyncio bounds a TLS handshake by itself (60 s unless told) and reports
#: it as a ConnectionAbortedError: our own deadline must be the one that
#: fires, to report ConnectTimeout, and none means none (as with anyio).
_HANDSHAKE_BACKSTOP = 24 * 3600.0


#: (host, port, flowinfo, scope_id): what an IPv6 socket reports.
_IPV6_SOCKADDR_LEN = 4


def _expire(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(False)


def _wake(waiter: asyncio.Future[bool] | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(True)


def _address(address: Any) -> Any:
    """Shape a socket address as anyio reports it (``convert_ipv6_sockaddr``)."""
    if isinstance(address, tuple) and len(address) == _IPV6_SOCKADDR_LEN:
        host, port, _flowinfo, scope_id = address
        if scope_id:
            return f"{host.split('%')[0]}%{scope_id}", port
        return host, port
    return address


class _Protocol(asyncio.Protocol):
    """What the event loop tells one connection; read by :class:`AsyncioStream`."""

    __slots__ = (
        "buffer",
        "closed",
        "drain_waiter",
        "eof",
        "error",
        "loop",
        "lost",
        "read_paused",
        "read_waiter",
        "tls",
        "transport",
        "write_paused",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop, *, tls: bool) -> None:
        self.loop = loop
        self.tls = tls
        self.transport: asyncio.Transport | None = None
        # The first chunk is kept as the loop gave it (no copy); a second
        # one turns the buffer into a bytearray.
        self.buffer: bytes | bytearray = b""
        self.eof = False
        self.lost = False
        self.closed = False
        self.error: BaseException | None = None
        self.read_paused = False
        self.write_paused = False
        self.read_waiter: asyncio.Future[bool] | None = None
        self.drain_waiter: asyncio.Future[bool] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.attach(transport)  # type: ignore[arg-type]  # a stream transport

    def attach(self, transport: asyncio.Transport) -> None:
        """Take *transport* (after a TLS handshake asyncio does not tell us)."""
        self.transport = transport
        # anyio sets the write buffer's limit to 0: a write returns once
        # its bytes are in the kernel, so that a peer that stops reading
        # shows as WriteTimeout, bounded by the write timeout. Over TLS
        # the raw transport keeps the 0 set before the handshake; the TLS
        # layer pauses us when it has to hold bytes back (high=0 would
        # make Python 3.11's TLS layer pause us with nothing held).
        if self.tls:
            transport.set_write_buffer_limits(high=1, low=0)
        else:
            transport.set_write_buffer_limits(high=0)

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        if not buffer:
            # The proactor loop hands over bytearrays it reuses.
            self.buffer = buffer = data if type(data) is bytes else bytes(data)
        else:
            if type(buffer) is bytes:
                self.buffer = buffer = bytearray(buffer)
            buffer += data
        if len(buffer) > READ_HIGH_WATER and not self.read_paused:
            transport = self.transport
            if transport is not None:
                self.read_paused = True
                transport.pause_reading()
        waiter, self.read_waiter = self.read_waiter, None
        _wake(waiter)

    def eof_received(self) -> bool:
        self.eof = True
        waiter, self.read_waiter = self.read_waiter, None
        _wake(waiter)
        # A plain socket stays open to write, as anyio keeps it; asyncio's
        # TLS layer closes anyway and logs a warning if asked to keep it.
        return not self.tls

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.error = exc
        waiter, self.read_waiter = self.read_waiter, None
        _wake(waiter)
        drain, self.drain_waiter = self.drain_waiter, None
        _wake(drain)

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        drain, self.drain_waiter = self.drain_waiter, None
        _wake(drain)


class AsyncioStream(httpcore.AsyncNetworkStream):
    """One connection (TCP, Unix or TLS over either) as httpcore reads it."""

    __slots__ = ("_protocol", "_transport")

    def __init__(self, protocol: _Protocol, transport: asyncio.Transport) -> None:
        self._protocol = protocol
        self._transport = transport

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        """Return up to *max_bytes*; ``b""`` at the end of the stream."""
        protocol = self._protocol
        if not protocol.buffer:
            await self._wait_readable(timeout)
            if not protocol.buffer:
                if protocol.closed:
                    raise httpcore.ReadError("the connection was closed")
                if protocol.error is not None:
                    raise httpcore.ReadError(protocol.error) from protocol.error
                return b""
        buffer = protocol.buffer
        if len(buffer) <= max_bytes:
            protocol.buffer = b""
            data = buffer if type(buffer) is bytes else bytes(buffer)
        elif isinstance(buffer, bytes):
            data, protocol.buffer = buffer[:max_bytes], buffer[max_bytes:]
        else:
            data = bytes(buffer[:max_bytes])
            del buffer[:max_bytes]
        if protocol.read_paused and len(protocol.buffer) <= READ_LOW_WATER:
            protocol.read_paused = False
            self._transport.resume_reading()
        return data

    async def _wait_readable(self, timeout: float | None) -> None:
        """Wait for data, the end of the stream, or the connection's loss."""
        protocol = self._protocol
        if protocol.eof or protocol.lost or protocol.closed:
            return
        waiter: asyncio.Future[bool] = protocol.loop.create_future()
        protocol.read_waiter = waiter
        if timeout is None:
            try:
                await waiter
            finally:
                protocol.read_waiter = None
            return
        timer = protocol.loop.call_later(timeout, _expire, waiter)
        try:
            woken = await waiter
        finally:
            # Cancelled or not: no timer or waiter stays behind.
            timer.cancel()
            protocol.read_waiter = None
        if not woken:
            raise httpcore.ReadTimeout("timed out waiting for the server")

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        """Send *buffer*; return once it is in the kernel's hands."""
        if not buffer:
            return
        protocol = self._protocol
        transport = self._transport
        # asyncio drops a write to a closing transport without a word (its
        # TLS layer does so from the peer's EOF on): that must not pass
        # for sent.
        if (
            protocol.lost
            or protocol.closed
            or (protocol.tls and protocol.eof)
            or transport.is_closing()
        ):
            if protocol.error is not None:
                raise httpcore.WriteError(protocol.error) from protocol.error
            raise httpcore.WriteError("the connection is closed")
        try:
            transport.write(buffer)
        except (RuntimeError, OSError) as exc:  # after write_eof; defensive
            raise httpcore.WriteError(exc) from exc
        if protocol.write_paused:
            await self._drain(timeout)

    async def _drain(self, timeout: float | None) -> None:
        protocol = self._protocol
        loop = protocol.loop
        deadline = None if timeout is None else loop.time() + timeout
        while protocol.write_paused and not protocol.lost:
            waiter: asyncio.Future[bool] = loop.create_future()
            protocol.drain_waiter = waiter
            timer = (
                None if deadline is None else loop.call_at(deadline, _expire, waiter)
            )
            try:
                woken = await waiter
            finally:
                if timer is not None:
                    timer.cancel()
                protocol.drain_waiter = None
            if not woken:
                raise httpcore.WriteTimeout("timed out sending to the server")
        if protocol.closed:
            raise httpcore.WriteError("the connection was closed")
        if protocol.error is not None:
            raise httpcore.WriteError(protocol.error) from protocol.error

    async def aclose(self) -> None:
        """Drop the connection at once (anyio aborts too: no TLS goodbye)."""
        protocol = self._protocol
        if not protocol.closed:
            protocol.closed = True
            self._transport.abort()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Do the TLS handshake; return the stream over it."""
        protocol = self._protocol
        loop = protocol.loop
        if protocol.buffer or protocol.eof or protocol.lost or protocol.closed:
            # Bytes before our hello would have failed anyio's handshake;
            # asyncio would skip them unseen.
            await self.aclose()
            raise httpcore.ConnectError("the connection ended or spoke before TLS")
        tls = _Protocol(loop, tls=True)
        handshake = loop.start_tls(
            self._transport,
            tls,
            ssl_context,
            server_side=False,
            server_hostname=server_hostname,
            ssl_handshake_timeout=_HANDSHAKE_BACKSTOP,
        )
        try:
            transport = await _bounded(handshake, timeout, _abort)
        except BaseException:
            await self.aclose()
            raise
        if transport is None:  # pragma: no cover - asyncio's loops return one
            await self.aclose()
            raise httpcore.ConnectError("the event loop gave no TLS transport")
        tls.attach(transport)
        return AsyncioStream(tls, transport)

    def get_extra_info(self, info: str) -> Any:
        """Answer httpcore's questions as its anyio backend answers them."""
        if info == "is_readable":
            # Only asked of an idle connection: anything it received (data,
            # the end, a reset) means it cannot take a request. What the
            # loop has not yet read is not seen (anyio polls the socket).
            protocol = self._protocol
            return bool(
                protocol.buffer or protocol.eof or protocol.lost or protocol.closed
            )
        transport = self._transport
        if info == "ssl_object":
            return transport.get_extra_info("ssl_object")
        if info == "client_addr":
            return _address(transport.get_extra_info("sockname"))
        if info == "server_addr":
            return _address(transport.get_extra_info("peername"))
        if info == "socket":
            return transport.get_extra_info("socket")
        return None


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    """Connects with the running loop's own transports; holds no state."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Open a TCP connection (TCP_NODELAY: asyncio sets it, as for anyio)."""
        loop = asyncio.get_running_loop()
        connecting = _open_tcp(
            loop,
            host,
            port,
            None if local_address is None else (local_address, 0),
        )
        transport, protocol = await _bounded(connecting, timeout, _abort_pair)
        return _with_options(protocol, transport, socket_options)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Open a connection to the Unix socket at *path*."""
        loop = asyncio.get_running_loop()
        connecting = loop.create_unix_connection(
            lambda: _Protocol(loop, tls=False), path
        )
        transport, protocol = await _bounded(connecting, timeout, _abort_pair)
        return _with_options(protocol, transport, socket_options)

    async def sleep(self, seconds: float) -> None:
        """Sleep (httpcore's pause between connect retries)."""
        await asyncio.sleep(seconds)


async def _open_tcp(
    loop: asyncio.AbstractEventLoop,
    host: str,
    port: int,
    local_addr: tuple[str, int] | None,
) -> tuple[asyncio.Transport, _Protocol]:
    """Connect to *host*; happy eyeballs only when it has several addresses.

    asyncio's happy eyeballs (``staggered_race``, CPython 3.10-3.13.0 at
    least) drops a socket that connected just as the caller was cancelled:
    left for the garbage collector, open (seen under the SDK's
    cancellation campaign). Its plain path closes the socket when
    cancelled. A gateway name with one address, or an IP, takes that path,
    connecting to the address already resolved; uvloop has no happy
    eyeballs and refuses the argument.
    """

    def protocol() -> _Protocol:
        return _Protocol(loop, tls=False)

    if not isinstance(loop, asyncio.BaseEventLoop):
        return await loop.create_connection(protocol, host, port, local_addr=local_addr)
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = {info[4] for info in infos}
    if len(addresses) == 1:
        family, address = infos[0][0], tuple(infos[0][4])
        # A link-local IPv6 address needs its scope: then resolve again.
        scoped = len(address) == _IPV6_SOCKADDR_LEN and address[3]
        return await loop.create_connection(
            protocol,
            host if scoped else str(address[0]),
            port,
            family=family,
            local_addr=local_addr,
        )
    return await loop.create_connection(
        protocol,
        host,
        port,
        local_addr=local_addr,
        happy_eyeballs_delay=HAPPY_EYEBALLS_DELAY,
    )


def _with_options(
    protocol: _Protocol,
    transport: asyncio.Transport,
    socket_options: Iterable[httpcore.SOCKET_OPTION] | None,
) -> AsyncioStream:
    if socket_options:
        # After connecting, as anyio does (httpcore's options are for the
        # connected socket: keep-alive probes and the like).
        sock = transport.get_extra_info("socket")
        try:
            for option in socket_options:
                sock.setsockopt(*option)
        except OSError as exc:
            protocol.closed = True
            transport.abort()
            raise httpcore.ConnectError(exc) from exc
    return AsyncioStream(protocol, transport)


def _abort(transport: asyncio.BaseTransport | None) -> None:
    # Not isinstance: uvloop's transports are not asyncio.Transport's.
    if transport is not None:
        cast("asyncio.Transport", transport).abort()


def _abort_pair(pair: tuple[asyncio.Transport, _Protocol]) -> None:
    pair[0].abort()


async def _bounded(
    coro: Coroutine[Any, Any, T],
    timeout: float | None,
    undo: Callable[[T], object],
) -> T:
    """Await a connect or a handshake within *timeout*, as anyio maps it.

    ``OSError`` (``ssl.SSLError`` and asyncio's handshake failures are
    ones) is ``ConnectError``, and a timeout ``ConnectTimeout``. So is a
    host name the IDNA codec refuses: asyncio raises UnicodeError where
    anyio's resolver raises an OSError. Anything else is a bug, and is
    left to show as one (the SDK counts it as maybe sent).
    """
    try:
        if timeout is None:
            return await coro
        # run_until converts only its own cancellation, on 3.10 as well;
        # *undo* closes a connection that arrives for a cancelled caller.
        when = asyncio.get_running_loop().time() + timeout
        return await run_until(coro, when, undo=undo)
    except (TimeoutError, asyncio.TimeoutError) as exc:
        # ETIMEDOUT from the kernel is a TimeoutError too: anyio maps it so.
        raise httpcore.ConnectTimeout(exc) from exc
    except (OSError, UnicodeError) as exc:
        raise httpcore.ConnectError(exc) from exc
