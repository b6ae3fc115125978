"""The asyncio network backend, on real loopback sockets.

Where a test takes *backend* it runs on ours and on httpcore's anyio
backend, and asserts the same thing of both: what a failure means (which
httpcore exception) must not depend on the backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import ssl
import struct
import subprocess
from typing import TYPE_CHECKING, Any

import httpcore
import httpx
import pytest
from vexora_async._transports import _asyncio_net, _pool
from vexora_async._transports._asyncio_net import (
    READ_HIGH_WATER,
    AsyncioBackend,
    AsyncioStream,
)
from vexora_async._transports._pool import ShardedTransport

from tests.loopback_gateway import refused_port


if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from pathlib import Path


BACKENDS = ["asyncio", "anyio"]
SHORT = 0.3


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> httpcore.AsyncNetworkBackend:
    """Ours, then httpcore's anyio backend (the behaviour to match)."""
    if request.param == "asyncio":
        return AsyncioBackend()
    return httpcore.AnyIOBackend()


def protocol_of(stream: httpcore.AsyncNetworkStream) -> _asyncio_net._Protocol:
    """Our stream's protocol (its state is what some tests check)."""
    assert isinstance(stream, AsyncioStream)
    return stream._protocol


def waiting(protocol: _asyncio_net._Protocol) -> bool:
    """Whether a read waits on *protocol* (a call: mypy keeps no narrowing)."""
    return protocol.read_waiter is not None


class Listener:
    """A loopback server whose accepted connections the test drives itself."""

    def __init__(self) -> None:
        self.server: asyncio.Server | None = None
        self.port = 0
        self._accepted: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]]
        self._accepted = asyncio.Queue()
        self.writers: list[asyncio.StreamWriter] = []

    async def _on_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.writers.append(writer)
        await self._accepted.put((reader, writer))

    async def accept(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """The next connection, from the server's side."""
        return await asyncio.wait_for(self._accepted.get(), timeout=10)


@contextlib.asynccontextmanager
async def listening(
    tls: ssl.SSLContext | None = None,
) -> AsyncIterator[Listener]:
    """Run a :class:`Listener` on 127.0.0.1 for the block."""
    listener = Listener()
    listener.server = await asyncio.start_server(
        listener._on_client, "127.0.0.1", 0, ssl=tls
    )
    listener.port = listener.server.sockets[0].getsockname()[1]
    try:
        yield listener
    finally:
        listener.server.close()
        for writer in listener.writers:
            writer.transport.abort()
        await listener.server.wait_closed()


async def read_all(stream: httpcore.AsyncNetworkStream) -> bytes:
    """Everything up to the end of the stream."""
    chunks = []
    while chunk := await stream.read(65536, timeout=5):
        chunks.append(chunk)
    return b"".join(chunks)


def reset(writer: asyncio.StreamWriter) -> None:
    """Close the server's side with a TCP reset (SO_LINGER 0)."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def eventually(predicate: Callable[[], bool]) -> None:
    """Wait (up to 5 s) for *predicate* to hold."""
    for _ in range(500):
        if predicate():
            return
        await asyncio.sleep(0.01)
    pytest.fail("never happened")


# -- connecting ---------------------------------------------------------------


async def test_refused_is_connect_error(backend: httpcore.AsyncNetworkBackend) -> None:
    """Nothing listens: ConnectError (never sent)."""
    with pytest.raises(httpcore.ConnectError):
        await backend.connect_tcp("127.0.0.1", refused_port(), timeout=5)


async def test_one_address_connects_without_a_staggered_race(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An address (or a name with one) skips asyncio's happy eyeballs.

    Its staggered race drops a socket that connected as the caller was
    cancelled, open; the cancellation campaign saw it as a ResourceWarning.
    """
    import asyncio.staggered

    def refuse(*args: object, **kwargs: object) -> object:
        raise AssertionError("staggered_race used for a single address")

    # base_events calls it as staggered.staggered_race: patch the module.
    monkeypatch.setattr(asyncio.staggered, "staggered_race", refuse)
    async with listening() as listener:
        stream = await AsyncioBackend().connect_tcp("127.0.0.1", listener.port, 5)
        await stream.aclose()


async def test_connects_cancelled_at_random_leave_no_socket_open() -> None:
    """Cancelled anywhere in connecting: every socket is closed, none left to GC."""
    import gc
    import warnings

    async with listening() as listener:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResourceWarning)
            for i in range(200):
                task = asyncio.ensure_future(
                    AsyncioBackend().connect_tcp("127.0.0.1", listener.port, 5)
                )
                for _ in range(i % 4):
                    await asyncio.sleep(0)
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    stream = await task
                    await stream.aclose()
            await asyncio.sleep(0.05)
            gc.collect()
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []


async def test_full_backlog_is_connect_timeout(
    backend: httpcore.AsyncNetworkBackend,
) -> None:
    """A listener whose accept queue is full never answers: ConnectTimeout."""
    with socket.socket() as server, socket.socket() as filler:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        # Linux queues one connection for a backlog of 0, then drops SYNs.
        filler.connect(server.getsockname())
        try:
            host, port = server.getsockname()
            stream = await backend.connect_tcp(host, port, timeout=SHORT)
        except httpcore.ConnectTimeout:
            return
        await stream.aclose()
        pytest.skip("this system accepted past a full backlog")


async def test_connect_timeout_mapping(monkeypatch: pytest.MonkeyPatch) -> None:
    """A connect that does not finish in time is ConnectTimeout, and undone."""
    loop = asyncio.get_running_loop()
    cancelled = asyncio.Event()

    async def never(*args: Any, **kwargs: Any) -> Any:
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    monkeypatch.setattr(loop, "create_connection", never)
    with pytest.raises(httpcore.ConnectTimeout):
        await AsyncioBackend().connect_tcp("127.0.0.1", 9, timeout=0.05)
    assert cancelled.is_set()


@pytest.mark.parametrize(
    "error",
    [
        PermissionError(13, "denied"),
        TimeoutError(110, "timed out"),
        ssl.SSLError("x"),
        UnicodeError("label empty or too long"),
    ],
)
async def test_connect_failures_never_escape_raw(
    monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    """Whatever connecting raises is ConnectError, or ConnectTimeout (ETIMEDOUT)."""
    loop = asyncio.get_running_loop()

    async def fail(*args: Any, **kwargs: Any) -> Any:
        raise error

    monkeypatch.setattr(loop, "create_connection", fail)
    expected = (
        httpcore.ConnectTimeout
        if isinstance(error, TimeoutError)
        else httpcore.ConnectError
    )
    with pytest.raises(expected) as info:
        await AsyncioBackend().connect_tcp("127.0.0.1", 9, timeout=5)
    assert type(info.value) is expected
    assert info.value.__cause__ is error


async def test_a_bug_is_not_disguised(monkeypatch: pytest.MonkeyPatch) -> None:
    """A TypeError (a bug, ours or the loop's) is not passed off as ConnectError."""
    loop = asyncio.get_running_loop()

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise TypeError("unexpected keyword argument")

    monkeypatch.setattr(loop, "create_connection", broken)
    with pytest.raises(TypeError):
        await AsyncioBackend().connect_tcp("127.0.0.1", 9, timeout=5)


async def test_bad_host_name_is_connect_error() -> None:
    """A name the IDNA codec refuses (a UnicodeError) is ConnectError too."""
    with pytest.raises(httpcore.ConnectError):
        await AsyncioBackend().connect_tcp("a..b", 80, timeout=5)


async def test_cancelled_connect_stays_cancelled() -> None:
    """Cancelling a connect that waits on its timeout is a cancellation."""
    with socket.socket() as server, socket.socket() as filler:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        filler.connect(server.getsockname())
        host, port = server.getsockname()
        connecting = asyncio.create_task(
            AsyncioBackend().connect_tcp(host, port, timeout=10)
        )
        await asyncio.sleep(0.05)
        connecting.cancel()
        # Not turned into ConnectTimeout (a "never sent" that would be retried).
        with pytest.raises(asyncio.CancelledError):
            await connecting


async def test_socket_options_and_nodelay(
    backend: httpcore.AsyncNetworkBackend,
) -> None:
    """The socket options httpcore passes are set; TCP_NODELAY is on (as anyio)."""
    async with listening() as listener:
        stream = await backend.connect_tcp(
            "127.0.0.1",
            listener.port,
            timeout=5,
            socket_options=[(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)],
        )
        try:
            sock = stream.get_extra_info("socket")
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        finally:
            await stream.aclose()


async def test_bad_socket_option_is_connect_error() -> None:
    """A socket option the kernel refuses: ConnectError, and the socket closed."""
    async with listening() as listener:
        with pytest.raises(httpcore.ConnectError):
            await AsyncioBackend().connect_tcp(
                "127.0.0.1",
                listener.port,
                timeout=5,
                socket_options=[(socket.SOL_SOCKET, 0x7FFF, 1)],
            )
        reader, _ = await listener.accept()
        # The client's socket was closed: the server reads the end.
        assert await asyncio.wait_for(reader.read(), timeout=5) == b""


async def test_extra_info_matches_anyio() -> None:
    """Addresses, socket and TLS object are answered as anyio answers them."""
    async with listening() as listener:
        ours = await AsyncioBackend().connect_tcp("127.0.0.1", listener.port)
        theirs = await httpcore.AnyIOBackend().connect_tcp("127.0.0.1", listener.port)
        try:
            for stream in (ours, theirs):
                sock = stream.get_extra_info("socket")
                assert stream.get_extra_info("client_addr") == sock.getsockname()
                assert stream.get_extra_info("server_addr") == (
                    "127.0.0.1",
                    listener.port,
                )
                assert stream.get_extra_info("ssl_object") is None
                assert stream.get_extra_info("is_readable") is False
                assert stream.get_extra_info("no such thing") is None
            assert type(ours.get_extra_info("socket")) is type(
                theirs.get_extra_info("socket")
            )
        finally:
            await ours.aclose()
            await theirs.aclose()


async def test_unix_socket_round_trip(
    backend: httpcore.AsyncNetworkBackend, tmp_path: Path
) -> None:
    """A Unix socket connects, writes and reads like TCP."""
    path = str(tmp_path / "s")

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.readexactly(4))
        writer.close()

    server = await asyncio.start_unix_server(echo, path)
    try:
        stream = await backend.connect_unix_socket(path, timeout=5)
        try:
            await stream.write(b"ping", timeout=5)
            assert await read_all(stream) == b"ping"
        finally:
            await stream.aclose()
        with pytest.raises(httpcore.ConnectError):
            await backend.connect_unix_socket(str(tmp_path / "none"), timeout=5)
    finally:
        server.close()
        await server.wait_closed()


# -- reading ------------------------------------------------------------------


async def test_read_returns_data_then_eof(
    backend: httpcore.AsyncNetworkBackend,
) -> None:
    """Data comes in max_bytes pieces; the end of the stream reads as b""."""
    async with listening() as listener:
        stream = await backend.connect_tcp("127.0.0.1", listener.port, timeout=5)
        try:
            _, writer = await listener.accept()
            writer.write(b"0123456789")
            await writer.drain()
            first = await stream.read(4, timeout=5)
            assert first == b"0123"
            writer.close()
            assert await read_all(stream) == b"456789"
            assert await stream.read(4, timeout=5) == b""
            assert stream.get_extra_info("is_readable") is True
        finally:
            await stream.aclose()


async def test_read_timeout(backend: httpcore.AsyncNetworkBackend) -> None:
    """Silence past the read timeout: ReadTimeout."""
    async with listening() as listener:
        stream = await backend.connect_tcp("127.0.0.1", listener.port, timeout=5)
        try:
            started = asyncio.get_running_loop().time()
            with pytest.raises(httpcore.ReadTimeout):
                await stream.read(1024, timeout=SHORT)
            assert asyncio.get_running_loop().time() - started >= SHORT * 0.9
        finally:
            await stream.aclose()


async def test_reset_is_read_error(backend: httpcore.AsyncNetworkBackend) -> None:
    """A connection reset by the server: ReadError (may have been sent)."""
    async with listening() as listener:
        stream = await backend.connect_tcp("127.0.0.1", listener.port, timeout=5)
        try:
            _, writer = await listener.accept()
            reader = asyncio.create_task(stream.read(1024, timeout=5))
            await asyncio.sleep(0.05)
            reset(writer)
            with pytest.raises(httpcore.ReadError):
                await reader
            assert stream.get_extra_info("is_readable") is True
        finally:
            await stream.aclose()


async def test_read_and_write_after_close(
    backend: httpcore.AsyncNetworkBackend,
) -> None:
    """A stream we closed: ReadError and WriteError; closing again is a no-op."""
    async with listening() as listener:
        stream = await backend.connect_tcp("127.0.0.1", listener.port, timeout=5)
        await stream.aclose()
        await stream.aclose()
        with pytest.raises(httpcore.ReadError):
            await stream.read(10, timeout=5)
        with pytest.raises(httpcore.WriteError):
            await stream.write(b"x", timeout=5)


@pytest.mark.parametrize("how", ["close", "reset", "data"])
async def test_idle_connection_reads_as_readable(
    backend: httpcore.AsyncNetworkBackend, how: str
) -> None:
    """is_readable: false while idle, true once the server closes or speaks."""
    async with listening() as listener:
        stream = await backend.connect_tcp("127.0.0.1", listener.port, timeout=5)
        try:
            _, writer = await listener.accept()
            await asyncio.sleep(0.05)
            assert stream.get_extra_info("is_readable") is False
            if how == "close":
                writer.close()
            elif how == "reset":
                reset(writer)
            else:
                writer.write(b"HTTP/1.1 408 Request Timeout\r\n\r\n")
            await eventually(lambda: stream.get_extra_info("is_readable") is True)
        finally:
            await stream.aclose()


async def test_cancelled_read_leaves_nothing_behind(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A read cancelled while it waits keeps no timer and no waiter."""
    loop = asyncio.get_running_loop()
    timers: list[asyncio.TimerHandle] = []
    call_later = loop.call_later

    def spy(delay: float, callback: Callable[..., object], *args: Any) -> Any:
        handle = call_later(delay, callback, *args)
        if callback is _asyncio_net._expire:  # not asyncio.sleep's
            timers.append(handle)
        return handle

    async with listening() as listener:
        stream = await AsyncioBackend().connect_tcp("127.0.0.1", listener.port)
        try:
            _, writer = await listener.accept()
            monkeypatch.setattr(loop, "call_later", spy)
            reader = asyncio.create_task(stream.read(1024, timeout=30))
            await asyncio.sleep(0.05)
            protocol = protocol_of(stream)
            assert waiting(protocol)
            assert len(timers) == 1
            assert not timers[0].cancelled()
            reader.cancel()
            with pytest.raises(asyncio.CancelledError):
                await reader
            assert not waiting(protocol)
            assert timers[0].cancelled()
            # Nothing stale consumes what comes next.
            writer.write(b"late")
            assert await stream.read(1024, timeout=5) == b"late"
        finally:
            await stream.aclose()


async def test_buffered_data_needs_no_timer(monkeypatch: pytest.MonkeyPatch) -> None:
    """A read that finds data returns it without arming a timer."""
    loop = asyncio.get_running_loop()
    async with listening() as listener:
        stream = await AsyncioBackend().connect_tcp("127.0.0.1", listener.port)
        try:
            _, writer = await listener.accept()
            writer.write(b"ready")
            await eventually(lambda: bool(protocol_of(stream).buffer))

            armed: list[object] = []

            def no_timer(*args: Any) -> Any:
                armed.append(args)
                pytest.fail("a timer was armed")

            # Only around the read: closing the stream and the server may
            # arm timers of asyncio's own (Python 3.13 does).
            with monkeypatch.context() as patched:
                patched.setattr(loop, "call_later", no_timer)
                patched.setattr(loop, "call_at", no_timer)
                data = await stream.read(1024, timeout=5)
            assert data == b"ready"
            assert armed == []
        finally:
            await stream.aclose()


async def test_unread_data_pauses_the_socket() -> None:
    """Past the high-water mark the socket is not read; reading resumes it."""
    total = 4 * READ_HIGH_WATER
    async with listening() as listener:
        stream = await AsyncioBackend().connect_tcp("127.0.0.1", listener.port)
        try:
            _, writer = await listener.accept()
            writer.write(b"x" * total)
            protocol = protocol_of(stream)
            await eventually(lambda: protocol.read_paused)
            # One more chunk (the loop reads 256 KiB at most) may land.
            assert len(protocol.buffer) <= READ_HIGH_WATER + 256 * 1024
            received = 0
            while received < total:
                received += len(await stream.read(65536, timeout=5))
            assert received == total
            assert not protocol.read_paused
        finally:
            await stream.aclose()


# -- writing ------------------------------------------------------------------

#: More than loopback's socket buffers hold for a peer that does not read.
BIG = 64 * 1024 * 1024
SMALL_BUFFER = [(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)]


async def test_write_timeout(backend: httpcore.AsyncNetworkBackend) -> None:
    """A peer that stops reading: WriteTimeout once the write timeout passes."""
    async with listening() as listener:
        stream = await backend.connect_tcp(
            "127.0.0.1", listener.port, timeout=5, socket_options=SMALL_BUFFER
        )
        try:
            with pytest.raises(httpcore.WriteTimeout):
                await stream.write(b"x" * BIG, timeout=SHORT)
        finally:
            await stream.aclose()


async def test_reset_while_writing_is_write_error(
    backend: httpcore.AsyncNetworkBackend,
) -> None:
    """The connection reset while a write waits to drain: WriteError."""
    async with listening() as listener:
        stream = await backend.connect_tcp(
            "127.0.0.1", listener.port, timeout=5, socket_options=SMALL_BUFFER
        )
        try:
            _, writer = await listener.accept()
            writing = asyncio.create_task(stream.write(b"x" * BIG, timeout=10))
            await asyncio.sleep(0.1)
            assert not writing.done()
            reset(writer)
            with pytest.raises(httpcore.WriteError):
                await writing
        finally:
            await stream.aclose()


async def test_write_after_reset_is_not_silently_dropped() -> None:
    """A write to a lost connection (asyncio drops it unsaid) is WriteError."""
    async with listening() as listener:
        stream = await AsyncioBackend().connect_tcp("127.0.0.1", listener.port)
        try:
            _, writer = await listener.accept()
            reset(writer)
            await eventually(lambda: protocol_of(stream).lost)
            with pytest.raises(httpcore.WriteError) as info:
                await stream.write(b"GET / HTTP/1.1\r\n\r\n", timeout=5)
            assert isinstance(info.value.__cause__, ConnectionResetError)
        finally:
            await stream.aclose()


async def test_cancelled_write_leaves_nothing_behind() -> None:
    """A write cancelled while it waits to drain keeps no waiter."""
    async with listening() as listener:
        stream = await AsyncioBackend().connect_tcp(
            "127.0.0.1", listener.port, socket_options=SMALL_BUFFER
        )
        try:
            writing = asyncio.create_task(stream.write(b"x" * BIG, timeout=30))
            protocol = protocol_of(stream)
            await eventually(lambda: protocol.drain_waiter is not None)
            writing.cancel()
            with pytest.raises(asyncio.CancelledError):
                await writing
            assert protocol.drain_waiter is None
        finally:
            await stream.aclose()


async def test_empty_write_is_a_no_op(backend: httpcore.AsyncNetworkBackend) -> None:
    """Writing nothing does nothing, even on a closed stream (as anyio)."""
    async with listening() as listener:
        stream = await backend.connect_tcp("127.0.0.1", listener.port, timeout=5)
        await stream.aclose()
        await stream.write(b"", timeout=5)


async def test_sleep() -> None:
    """sleep() sleeps (httpcore's pause between connect retries)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    await AsyncioBackend().sleep(0.05)
    assert loop.time() - started >= 0.04


# -- TLS ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1, and its key."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    openssl = shutil.which("openssl")
    if openssl is not None:
        subprocess.run(  # noqa: S603 - a fixed command line
            [
                openssl,
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=localhost",
                "-addext",
                "subjectAltName=DNS:localhost,IP:127.0.0.1",
                "-keyout",
                str(key),
                "-out",
                str(cert),
            ],
            check=True,
            capture_output=True,
        )
        return cert, key
    try:
        cryptography_certificate(cert, key)
    except ImportError:
        pytest.skip("needs the openssl command or the cryptography package")
    return cert, key


def cryptography_certificate(cert: Path, key: Path) -> None:
    """Write a self-signed certificate with the cryptography package."""
    import datetime as dt
    import ipaddress

    from cryptography import x509  # type: ignore[import-not-found, unused-ignore]
    from cryptography.hazmat.primitives import (  # type: ignore[import-not-found, unused-ignore]
        hashes,
        serialization,
    )
    from cryptography.hazmat.primitives.asymmetric import (  # type: ignore[import-not-found, unused-ignore]
        ec,
    )
    from cryptography.x509.oid import (  # type: ignore[import-not-found, unused-ignore]
        NameOID,
    )

    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.timezone.utc)
    built = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .sign(private, hashes.SHA256())
    )
    cert.write_bytes(built.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


@pytest.fixture
def server_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    """The loopback server's TLS context."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return context


@pytest.fixture
def client_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    """A client context that trusts the test certificate only."""
    return ssl.create_default_context(cafile=str(certificate[0]))


async def test_tls_round_trip(
    backend: httpcore.AsyncNetworkBackend,
    server_tls: ssl.SSLContext,
    client_tls: ssl.SSLContext,
) -> None:
    """A handshake, a write, a read and the server's close, over TLS."""
    async with listening(server_tls) as listener:
        raw = await backend.connect_tcp("127.0.0.1", listener.port, timeout=5)
        stream = await raw.start_tls(client_tls, "localhost", timeout=5)
        try:
            reader, writer = await listener.accept()
            ssl_object = stream.get_extra_info("ssl_object")
            assert isinstance(ssl_object, ssl.SSLObject)
            assert ssl_object.version() is not None
            assert stream.get_extra_info("server_addr") == ("127.0.0.1", listener.port)
            assert stream.get_extra_info("socket") is not None
            await stream.write(b"ping", timeout=5)
            assert await reader.readexactly(4) == b"ping"
            writer.write(b"pong")
            assert await stream.read(1024, timeout=5) == b"pong"
            await asyncio.sleep(0.05)
            assert stream.get_extra_info("is_readable") is False
            # Idle, as httpcore asks: the server's goodbye shows unread.
            writer.close()
            await eventually(lambda: stream.get_extra_info("is_readable") is True)
            assert await read_all(stream) == b""
        finally:
            await stream.aclose()


async def test_untrusted_certificate_is_connect_error(
    backend: httpcore.AsyncNetworkBackend, server_tls: ssl.SSLContext
) -> None:
    """A certificate the client does not trust: ConnectError (never sent)."""
    async with listening(server_tls) as listener:
        raw = await backend.connect_tcp("127.0.0.1", listener.port, timeout=5)
        try:
            with pytest.raises(httpcore.ConnectError) as info:
                await raw.start_tls(
                    ssl.create_default_context(), "localhost", timeout=5
                )
            assert isinstance(info.value.__cause__, ssl.SSLError)
        finally:
            await raw.aclose()
        if isinstance(raw, AsyncioStream):
            assert protocol_of(raw).closed


async def test_wrong_host_name_is_connect_error(
    backend: httpcore.AsyncNetworkBackend,
    server_tls: ssl.SSLContext,
    client_tls: ssl.SSLContext,
) -> None:
    """A certificate for another name: ConnectError."""
    async with listening(server_tls) as listener:
        raw = await backend.connect_tcp("127.0.0.1", listener.port, timeout=5)
        try:
            with pytest.raises(httpcore.ConnectError):
                await raw.start_tls(client_tls, "example.com", timeout=5)
        finally:
            await raw.aclose()


async def test_silent_handshake_is_connect_timeout(
    backend: httpcore.AsyncNetworkBackend, client_tls: ssl.SSLContext
) -> None:
    """A server that never answers the hello: ConnectTimeout."""
    async with listening() as listener:
        raw = await backend.connect_tcp("127.0.0.1", listener.port, timeout=5)
        try:
            with pytest.raises(httpcore.ConnectTimeout):
                await raw.start_tls(client_tls, "localhost", timeout=SHORT)
        finally:
            await raw.aclose()


async def test_closed_during_handshake_is_connect_error(
    backend: httpcore.AsyncNetworkBackend, client_tls: ssl.SSLContext
) -> None:
    """A server that hangs up on the hello: ConnectError."""
    async with listening() as listener:
        raw = await backend.connect_tcp("127.0.0.1", listener.port, timeout=5)
        try:
            _, writer = await listener.accept()
            writer.close()
            with pytest.raises(httpcore.ConnectError):
                await raw.start_tls(client_tls, "localhost", timeout=5)
        finally:
            await raw.aclose()


# -- end to end: httpx over ShardedTransport ---------------------------------


class HttpServer:
    """A loopback HTTP/1.1 server that counts connections and requests.

    *idle_close*: close each connection this long after its answer.
    *answer_only*: per connection, answer that many requests, then read
    the next one and hang up without a word (a server that closed an idle
    connection just as the request left).
    """

    def __init__(
        self, *, idle_close: float | None = None, answer_only: int | None = None
    ) -> None:
        self.idle_close = idle_close
        self.answer_only = answer_only
        self.connections = 0
        self.requests: list[tuple[str, bytes]] = []
        self.port = 0
        self._writers: list[asyncio.StreamWriter] = []

    @property
    def url(self) -> str:
        """This server's URL (the scheme is the test's)."""
        return f"127.0.0.1:{self.port}/pay"

    async def serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Answer requests on one connection."""
        self.connections += 1
        self._writers.append(writer)
        answered = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                length = 0
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                body = await reader.readexactly(length)
                self.requests.append((lines[0].split(" ")[0], body))
                if self.answer_only is not None and answered >= self.answer_only:
                    break
                answer = body or b"ok"
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(answer)
                    + answer
                )
                await writer.drain()
                answered += 1
                if self.idle_close is not None:
                    await asyncio.sleep(self.idle_close)
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def http_server(
    tls: ssl.SSLContext | None = None, **options: Any
) -> AsyncIterator[HttpServer]:
    """Run an :class:`HttpServer` for the block."""
    server = HttpServer(**options)
    listener = await asyncio.start_server(server.serve, "127.0.0.1", 0, ssl=tls)
    server.port = listener.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        listener.close()
        for writer in server._writers:
            writer.transport.abort()
        await listener.wait_closed()


@pytest.fixture
def sharded(
    backend: httpcore.AsyncNetworkBackend, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., ShardedTransport]:
    """Make ShardedTransports whose shards use *backend*."""
    if isinstance(backend, httpcore.AnyIOBackend):
        monkeypatch.setattr(_pool, "AsyncioBackend", httpcore.AnyIOBackend)
    return ShardedTransport


def test_shards_use_the_asyncio_backend_with_httpx_settings() -> None:
    """Each shard's pool is httpx's own pool, but on the asyncio backend."""
    transport = ShardedTransport(max_connections=3, keepalive_expiry=12.0)
    ssl_context = transport._ssl_context
    assert transport._shards
    for shard in transport._shards:
        ours = shard._pool
        theirs = httpx.AsyncHTTPTransport(
            verify=ssl_context,
            limits=httpx.Limits(
                max_connections=1, max_keepalive_connections=1, keepalive_expiry=12.0
            ),
        )._pool
        assert isinstance(ours._network_backend, AsyncioBackend)
        assert type(ours) is type(theirs) is httpcore.AsyncConnectionPool
        for name in (
            "_ssl_context",
            "_proxy",
            "_max_connections",
            "_max_keepalive_connections",
            "_keepalive_expiry",
            "_http1",
            "_http2",
            "_retries",
            "_local_address",
            "_uds",
            "_socket_options",
        ):
            assert getattr(ours, name, None) == getattr(theirs, name, None), name


async def test_get_post_and_keep_alive(
    sharded: Callable[..., ShardedTransport],
) -> None:
    """GET and POST go out and come back; one connection carries them all."""
    async with http_server() as server:
        transport = sharded(max_connections=4)
        async with httpx.AsyncClient(transport=transport) as http:
            url = f"http://{server.url}"
            for _ in range(3):
                assert (await http.get(url)).content == b"ok"
                assert (await http.post(url, content=b"payout")).content == b"payout"
        assert server.connections == 1
        assert [method for method, _ in server.requests] == ["GET", "POST"] * 3


async def test_concurrent_requests_stay_within_the_limit(
    sharded: Callable[..., ShardedTransport],
) -> None:
    """50 concurrent POSTs over 4 connections at most."""
    async with http_server() as server:
        async with httpx.AsyncClient(transport=sharded(max_connections=4)) as http:
            url = f"http://{server.url}"
            responses = await asyncio.gather(
                *(http.post(url, content=b"%d" % i) for i in range(50))
            )
        assert [r.content for r in responses] == [b"%d" % i for i in range(50)]
        assert server.connections <= 4


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_idle_connection_closed_by_the_server(
    sharded: Callable[..., ShardedTransport], method: str
) -> None:
    """The server closed the idle connection: the next request opens another."""
    async with http_server(idle_close=0.05) as server:
        async with httpx.AsyncClient(transport=sharded(max_connections=4)) as http:
            url = f"http://{server.url}"
            assert (await http.request(method, url, content=b"1")).status_code == 200
            await asyncio.sleep(0.3)
            assert (await http.request(method, url, content=b"2")).status_code == 200
        assert server.connections == 2
        assert len(server.requests) == 2


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_connection_dropped_as_the_request_left(
    sharded: Callable[..., ShardedTransport], method: str
) -> None:
    """A keep-alive connection the server drops on the next request.

    httpcore retries no request on a new connection, idempotent or not:
    the request reached the server, so it fails as may-have-been-sent
    (RemoteProtocolError), with either backend. The next one works.
    """
    async with http_server(answer_only=1) as server:
        async with httpx.AsyncClient(transport=sharded(max_connections=1)) as http:
            url = f"http://{server.url}"
            assert (await http.request(method, url, content=b"1")).status_code == 200
            with pytest.raises(httpx.RemoteProtocolError):
                await http.request(method, url, content=b"2")
            assert len(server.requests) == 2
            assert (await http.request(method, url, content=b"3")).status_code == 200
        assert server.connections == 2


async def test_https_through_the_sharded_transport(
    sharded: Callable[..., ShardedTransport],
    server_tls: ssl.SSLContext,
    certificate: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """HTTPS with the shared context (trusting SSL_CERT_FILE), kept alive."""
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    async with http_server(server_tls) as server:
        async with httpx.AsyncClient(transport=sharded(max_connections=2)) as http:
            url = f"https://{server.url}"
            for i in range(3):
                response = await http.post(url, content=b"%d" % i)
                assert response.content == b"%d" % i
        assert server.connections == 1


async def test_refused_and_read_timeout_through_httpx(
    sharded: Callable[..., ShardedTransport],
) -> None:
    """Through httpx the failures are as ever: ConnectError, ReadTimeout."""
    async with httpx.AsyncClient(transport=sharded(max_connections=2)) as http:
        with pytest.raises(httpx.ConnectError):
            await http.post(f"http://127.0.0.1:{refused_port()}/", content=b"{}")
        async with listening() as listener:
            with pytest.raises(httpx.ReadTimeout):
                await http.post(
                    f"http://127.0.0.1:{listener.port}/",
                    content=b"{}",
                    timeout=httpx.Timeout(SHORT),
                )
