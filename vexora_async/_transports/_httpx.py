"""The default port: the shared ``httpx.AsyncClient`` and how it is built.

Requests go through ``client.send``, so an injected client's event hooks,
auth, mounts and transports (and respx) see every request the SDK sends.
The client the SDK builds for itself is a stock ``httpx.AsyncClient``:
httpx's own transport and httpcore's own pool and network backend, built
with public arguments only. It reads the environment's proxies and trust
store as httpx does (``trust_env``) and never follows a redirect.
"""

from __future__ import annotations

import platform
from typing import TYPE_CHECKING

import httpx

from vexora_async._deadline import run_until
from vexora_async._outcomes import Phase, TransportFailure
from vexora_async._version import __version__

from ._body import capped, read_capped
from ._port import Reply, SendFailed
from ._ssl import shared_ssl_context


if TYPE_CHECKING:
    from collections.abc import Mapping


#: Connect fast (a refused connect is safe to retry); give the gateway time
#: to answer a payout, whose answer we must not lose to an eager timeout.
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=5.0, write=10.0, pool=30.0)
#: The default transport's connections (and the SDK's concurrency on it).
#: httpcore's pool walks its connections, and for each idle one all of
#: them again, on every request and every answer: past a few dozen
#: connections that walk costs more than the request, and once CPU-bound
#: the pool holds more idle connections, so it costs more still. Measured
#: with the sandbox in another process and 50-200 ms answers: 100 moved
#: 43-60 payouts a second, 20 moved 96-339 and 30 moved 140-385 on a quiet
#: machine, but 30 fell behind 20 on a busy one and 50 collapsed at 50-100
#: ms; 20 keeps clear of that cliff.
DEFAULT_MAX_CONNECTIONS = 20
USER_AGENT = (
    f"vexora-async/{__version__} httpx/{httpx.__version__} "
    f"{platform.python_implementation()}/{platform.python_version()}"
)

# A failure to reach the gateway at all: the request provably was not sent.
# Building the request (a bad URL, an unsupported scheme) or reaching a proxy
# fails before anything reaches the gateway too.
_NOT_SENT = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.ProxyError,
    httpx.UnsupportedProtocol,
    httpx.InvalidURL,
)


class HttpxPort:
    """Send through *client* with ``client.send``; read at most *max_answer_bytes*.

    *headers* are added to every request; ``None`` when they are set on
    the client already (the SDK's own client). *owned*: :meth:`aclose`
    closes the client (never an injected one).
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        headers: Mapping[str, str] | None,
        max_answer_bytes: int,
        owned: bool,
    ) -> None:
        self.client = client
        self._headers = headers
        self._cap = max_answer_bytes
        self._owned = owned
        # httpx parses a str URL on every request; ours are a handful.
        self._urls: dict[str, httpx.URL] = {}

    @property
    def is_closed(self) -> bool:
        """True once the client is closed, by us or by its owner."""
        return self.client.is_closed

    @property
    def default_timeout(self) -> httpx.Timeout:
        """The client's own timeouts, read per attempt (its owner may change them)."""
        return self.client.timeout

    async def send(
        self, url: str, body: bytes, timeout: httpx.Timeout, deadline: float | None
    ) -> Reply:
        """POST *body*; return the capped answer or raise :class:`SendFailed`.

        httpx applies each phase's *timeout*; the whole exchange ends by
        *deadline* (``TimeoutError``).
        """
        return await run_until(self._send(url, body, timeout), deadline)

    async def _send(self, url: str, body: bytes, timeout: httpx.Timeout) -> Reply:
        parsed = self._urls.get(url)
        if parsed is None:
            parsed = self._urls[url] = httpx.URL(url)
        try:
            request = self.client.build_request(
                "POST", parsed, content=body, headers=self._headers, timeout=timeout
            )
            response = await self.client.send(request, stream=True)
            try:
                if response.is_stream_consumed:
                    # Read already: a mock transport handed over a whole answer.
                    read = capped(response.content, self._cap)
                else:
                    read = await read_capped(
                        response.aiter_raw(),
                        response.headers.get("Content-Encoding", ""),
                        self._cap,
                    )
            finally:
                # Closing an unfinished answer closes its connection: the
                # pool never reuses a connection with unread bytes on it.
                await response.aclose()
                if self.client.is_closed:
                    await _close_orphan(response)
        # The edge of httpx (and of an injected client's hooks and auth):
        # every failure becomes facts, classified by whether it may have left.
        except Exception as exc:
            raise SendFailed(_failure(exc)) from exc
        return Reply(response.status_code, response.headers, read.content, read.problem)

    async def aclose(self) -> None:
        """Close the client if the SDK made it."""
        if self._owned:
            await self.client.aclose()


async def _close_orphan(response: httpx.Response) -> None:
    """Close the connection of an answer that arrived after the client closed.

    httpcore's pool, closed while one of its connections was still being
    opened, forgets that connection: the request goes on over it, and
    nothing closes it afterwards (a socket left to the garbage collector).
    httpcore hands each answer's connection out as its documented
    ``network_stream`` extension; on a closed client nothing will reuse it.
    """
    stream = response.extensions.get("network_stream")
    if stream is not None:
        await stream.aclose()


def _failure(exc: Exception) -> TransportFailure:
    reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    phase = Phase.NOT_SENT if isinstance(exc, _NOT_SENT) else Phase.MAYBE_SENT
    return TransportFailure(
        phase, timed_out=isinstance(exc, httpx.TimeoutException), reason=reason
    )


def default_limits(max_connections: int = DEFAULT_MAX_CONNECTIONS) -> httpx.Limits:
    """Pool limits sized to the SDK's own concurrency limit."""
    return httpx.Limits(
        max_connections=max_connections,
        max_keepalive_connections=max_connections,
        keepalive_expiry=30.0,
    )


def make_http_client(
    *,
    timeout: httpx.Timeout,
    max_connections: int,
    headers: Mapping[str, str] | None = None,
) -> httpx.AsyncClient:
    """Create the httpx client the SDK owns (and closes)."""
    return httpx.AsyncClient(
        timeout=timeout,
        limits=default_limits(max_connections),
        headers=headers or {"User-Agent": USER_AGENT},
        # One context per process, shared with the proxy mounts httpx makes.
        verify=shared_ssl_context(),
        # The gateway never redirects; following one could replay a payout
        # to another host.
        follow_redirects=False,
        # HTTPS_PROXY, NO_PROXY, SSL_CERT_FILE...: httpx mounts and reads them.
        trust_env=True,
    )
