"""A connection pool made of small httpx pools, so its cost stays flat.

httpcore's pool does work proportional to its size on *every* request and
every response: it walks all its connections, and asks each idle one
whether its socket became readable (a system call), to find a free one
(encode/httpcore#1035, encode/httpx#3215). With the 100 connections that a
busy payout batch wants, that walk costs more than the rest of the request;
the profile of a 100-concurrent batch spent 63 % of its time there.

:class:`ShardedTransport` splits *max_connections* into shards of
:data:`SHARD_SIZE` connections, each its own ``httpx.AsyncHTTPTransport``,
and keeps a stack of free connections (by shard): a request takes one and
gives it back when its response is closed. The SDK's limiter admits at
most *max_connections* requests at once and the shards add up to that, so
a free connection is always there: httpx never queues a request, and each
one walks a pool of one connection.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

import httpcore
import httpx

from ._asyncio_net import AsyncioBackend
from ._ssl import shared_ssl_context


if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable


#: Connections per shard. One: httpcore's walk then costs nothing, and the
#: SDK's stack of free connections (below) does the pooling. Measured at
#: 100 and 1,000 concurrent calls: 1 beat 2, 4 and 8 (see the guide).
SHARD_SIZE = 1


def _nothing() -> None:
    pass


class _Releasing(httpx.AsyncByteStream):
    """A response stream that gives its connection's slot back when closed.

    Closed before its body was read to the end (the caller stopped reading,
    failed or was cancelled), its shard is replaced: httpcore can keep such
    a connection marked busy forever, and the stack below would hand that
    slot out first, to wait out every later call's deadline.
    """

    __slots__ = ("_finished", "_release", "_reset", "_stream")

    def __init__(
        self,
        stream: httpx.AsyncByteStream,
        release: Callable[[], None],
        reset: Callable[[], None],
    ) -> None:
        self._stream = stream
        self._release: Callable[[], None] | None = release
        self._reset = reset
        self._finished = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk
        self._finished = True

    async def aclose(self) -> None:
        release, self._release = self._release, None
        try:
            if not self._finished:
                self._reset()
            await self._stream.aclose()
        finally:
            if release is not None:
                release()


class ShardedTransport(httpx.AsyncBaseTransport):
    """httpx's own HTTP/1.1 transport, as shards of at most *shard_size*.

    *max_connections* and *keepalive_expiry* mean what they mean on
    ``httpx.Limits``. TLS uses one context for all shards, made as httpx
    makes it (``trust_env`` honours ``SSL_CERT_FILE``).
    """

    def __init__(
        self,
        *,
        max_connections: int,
        keepalive_expiry: float | None = 30.0,
        shard_size: int = SHARD_SIZE,
        trust_env: bool = True,
    ) -> None:
        count = -(-max_connections // shard_size)
        base, extra = divmod(max_connections, count)
        sizes = [base + (i < extra) for i in range(count)]
        self._keepalive_expiry = keepalive_expiry
        self._ssl_context = shared_ssl_context(trust_env=trust_env)
        self._trust_env = trust_env
        # Stateless: one for every shard, and for the shards that replace them.
        self._network_backend = AsyncioBackend()
        self._shards = [self._new_shard(size) for size in sizes]
        #: One entry per free connection: the index of its shard. Taken and
        #: given back last in, first out, so the busiest connections stay
        #: warm and the others may expire.
        self._slots = [i for i, size in enumerate(sizes) for _ in range(size)]
        self._slots.reverse()
        self._sizes = sizes
        self._overflow = 0
        self._releasers = [self._releaser(i) for i in range(count)]
        self._resetters = [self._resetter(i) for i in range(count)]
        self._closing: set[asyncio.Task[None]] = set()

    def _releaser(self, index: int) -> Callable[[], None]:
        def release() -> None:
            self._slots.append(index)

        return release

    def _resetter(self, index: int) -> Callable[[], None]:
        def reset() -> None:
            self._reset(index)

        return reset

    def _new_shard(self, size: int) -> httpx.AsyncHTTPTransport:
        shard = httpx.AsyncHTTPTransport(
            verify=self._ssl_context,
            trust_env=self._trust_env,
            limits=httpx.Limits(
                max_connections=size,
                max_keepalive_connections=size,
                keepalive_expiry=self._keepalive_expiry,
            ),
        )
        # httpx takes no network backend, and its transport is what maps
        # httpcore's exceptions to httpx's and wraps responses: so it stays,
        # and its pool (``_pool``, which it only builds, sends through and
        # closes) is swapped for the same pool on our asyncio backend (see
        # _asyncio_net). The pool httpx built holds no connection yet.
        # Checked against httpx 0.27.0-0.28.1 (``_pool`` set in
        # AsyncHTTPTransport.__init__, an httpcore.AsyncConnectionPool when
        # there is no proxy) and httpcore 1.0.9. The settings are httpx's
        # for these arguments: the shared TLS context as given (httpx uses
        # a context it is given as it is), HTTP/1.1 only, no retries.
        shard._pool = httpcore.AsyncConnectionPool(  # noqa: SLF001 - see above
            ssl_context=self._ssl_context,
            max_connections=size,
            max_keepalive_connections=size,
            keepalive_expiry=self._keepalive_expiry,
            http1=True,
            http2=False,
            network_backend=self._network_backend,
        )
        return shard

    def _reset(self, index: int) -> None:
        """Replace shard *index* with a fresh one; close the old one aside."""
        old = self._shards[index]
        self._shards[index] = self._new_shard(self._sizes[index])
        task = asyncio.get_running_loop().create_task(_close_quietly(old))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send *request* on a shard with a free connection."""
        if self._slots:
            index = self._slots.pop()
            release = self._releasers[index]
        else:
            # More requests than connections: only when the client is used
            # around the SDK's limiter. httpx queues it in a shard's pool,
            # with its pool timeout, as it would in one big pool.
            self._overflow += 1
            index = self._overflow % len(self._shards)
            release = _nothing
        reset = self._resetters[index] if release is not _nothing else _nothing
        try:
            response = await self._shards[index].handle_async_request(request)
        except BaseException as exc:
            if not isinstance(exc, Exception) or not _clean_failure(exc):
                # Cancelled (or worse) inside httpcore: trust nothing it left.
                reset()
            release()
            raise
        # The connection stays taken until the body is read and closed.
        response.stream = _Releasing(response.stream, release, reset)  # type: ignore[arg-type]  # an async stream
        return response

    @property
    def connections(self) -> list[httpcore.AsyncConnectionInterface]:
        """Every shard's connections (for inspection, as httpcore's pool has)."""
        return [conn for shard in self._shards for conn in shard._pool.connections]  # noqa: SLF001 - httpx exposes no other way

    @property
    def free_connections(self) -> int:
        """Connection slots not taken by a request in flight."""
        return len(self._slots)

    async def aclose(self) -> None:
        """Close every shard's connections."""
        for shard in self._shards:
            await shard.aclose()
        if self._closing:
            await asyncio.gather(*self._closing)


def _clean_failure(exc: Exception) -> bool:
    """Tell whether httpcore failed *exc* in a way that leaves its pool sound."""
    # A refused or timed-out connect never took the connection into use.
    return isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))


async def _close_quietly(shard: httpx.AsyncHTTPTransport) -> None:
    # Best effort: the shard is out of use; a failure to close it changes
    # nothing for any call.
    with contextlib.suppress(Exception):
        await shard.aclose()
