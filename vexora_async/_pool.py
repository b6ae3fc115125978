"""A connection pool made of small httpx pools, so its cost stays flat.

httpcore's pool does work proportional to its size on *every* request and
every response: it walks all its connections, and asks each idle one
whether its socket became readable (a system call), to find a free one
(encode/httpcore#1035, encode/httpx#3215). With the 100 connections that a
busy payout batch wants, that walk costs more than the rest of the request;
the profile of a 100-concurrent batch spent 63 % of its time there.

:class:`ShardedTransport` splits *max_connections* into shards of at most
:data:`SHARD_SIZE` connections, each its own ``httpx.AsyncHTTPTransport``,
and sends each request to the shard with the most free connections. The
SDK's limiter admits at most *max_connections* requests at once and the
shards add up to that, so the chosen shard always has a free connection:
httpx never queues a request, and each one walks a handful of connections.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx


if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    import httpcore


#: Connections per shard: small enough that httpcore's walk is cheap, large
#: enough that a few shards serve a hundred connections.
SHARD_SIZE = 8


class _Releasing(httpx.AsyncByteStream):
    """A response stream that gives its connection's slot back when closed."""

    __slots__ = ("_release", "_stream")

    def __init__(
        self, stream: httpx.AsyncByteStream, release: Callable[[], None]
    ) -> None:
        self._stream = stream
        self._release: Callable[[], None] | None = release

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        release, self._release = self._release, None
        try:
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
        ssl_context = httpx.create_ssl_context(trust_env=trust_env)
        self._shards = [
            httpx.AsyncHTTPTransport(
                verify=ssl_context,
                trust_env=trust_env,
                limits=httpx.Limits(
                    max_connections=size,
                    max_keepalive_connections=size,
                    keepalive_expiry=keepalive_expiry,
                ),
            )
            for size in sizes
        ]
        #: Free connection slots per shard.
        self._free = sizes
        self._releasers = [self._releaser(i) for i in range(count)]

    def _releaser(self, index: int) -> Callable[[], None]:
        def release() -> None:
            self._free[index] += 1

        return release

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send *request* on the shard with the most free connections."""
        free = self._free
        index = max(range(len(free)), key=free.__getitem__)
        free[index] -= 1
        release = self._releasers[index]
        try:
            response = await self._shards[index].handle_async_request(request)
        except BaseException:
            release()
            raise
        # The connection stays taken until the body is read and closed.
        response.stream = _Releasing(response.stream, release)  # type: ignore[arg-type]  # an async stream
        return response

    @property
    def connections(self) -> list[httpcore.AsyncConnectionInterface]:
        """Every shard's connections (for inspection, as httpcore's pool has)."""
        return [conn for shard in self._shards for conn in shard._pool.connections]  # noqa: SLF001 - httpx exposes no other way

    @property
    def free_connections(self) -> int:
        """Connection slots not taken by a request in flight."""
        return sum(self._free)

    async def aclose(self) -> None:
        """Close every shard's connections."""
        for shard in self._shards:
            await shard.aclose()
