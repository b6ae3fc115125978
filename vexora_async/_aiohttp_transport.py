"""An httpx transport that sends over aiohttp: the optional fast HTTP stack.

``VexoraClient(..., transport="aiohttp")`` puts this transport under the
SDK's ``httpx.AsyncClient``: everything above the wire (the client, its
timeouts, the SDK's limiter, retries and error classification) stays the
same, and one ``aiohttp.ClientSession`` moves the bytes. Needs the
``aiohttp`` extra (``pip install vexora-async[aiohttp]``).

What makes it safe for payouts is the exception mapping: every aiohttp
failure becomes the httpx exception that tells the SDK the same thing about
whether the gateway may have seen the request. Only failures to *connect*
(refused, unreachable, DNS, TLS handshake, connect timeout) say "never
sent"; a lost connection, a read timeout or a broken answer say "may have
been sent", so a payout becomes an unknown outcome and is reconciled, never
blindly re-sent. aiohttp itself re-sends only idempotent methods on a stale
keep-alive connection, never a POST.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

import httpx

from .exceptions import InvalidRequestError


if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    import aiohttp


#: What ``transport=`` accepts on the client.
TRANSPORTS = ("httpx", "aiohttp")


def _import_aiohttp() -> Any:
    try:
        import aiohttp
    except ImportError as exc:
        raise InvalidRequestError(
            "transport",
            "'aiohttp' needs the aiohttp extra: pip install 'vexora-async[aiohttp]'",
        ) from exc
    return aiohttp


def _error_map(
    aiohttp: Any,
) -> tuple[tuple[type[BaseException], type[httpx.TransportError]], ...]:
    """Pair aiohttp's failures with httpx's, first match wins.

    The order matters: aiohttp's timeouts are also connection errors, and
    its connector errors are also ``OSError``.
    """
    pairs: list[tuple[type[BaseException], type[httpx.TransportError]]] = []
    # aiohttp >= 3.10 tells a connect (or pool) timeout from a read one.
    if hasattr(aiohttp, "ConnectionTimeoutError"):
        # Waiting for a pooled connection or connecting: nothing was sent.
        pairs.append((aiohttp.ConnectionTimeoutError, httpx.ConnectTimeout))
    pairs += [
        # A read timeout, or (aiohttp < 3.10) a timeout of unknown phase:
        # the request may have been sent.
        (asyncio.TimeoutError, httpx.ReadTimeout),
        # Refused, unreachable, DNS, proxy, TLS handshake: nothing was sent.
        (aiohttp.ClientConnectorError, httpx.ConnectError),
        (aiohttp.InvalidURL, httpx.UnsupportedProtocol),
        # Closed before or during the answer, or an answer aiohttp could not
        # parse: httpcore says RemoteProtocolError for the same.
        (aiohttp.ServerDisconnectedError, httpx.RemoteProtocolError),
        (aiohttp.ClientPayloadError, httpx.RemoteProtocolError),
        (aiohttp.ClientResponseError, httpx.RemoteProtocolError),
        # Reset or broken after connecting: may have been sent.
        (aiohttp.ClientConnectionError, httpx.ReadError),
        (OSError, httpx.ReadError),
    ]
    return tuple(pairs)


def _seconds(timeouts: dict[str, float | None], key: str) -> float | None:
    value = timeouts.get(key)
    return None if value is None else float(value)


class AiohttpTransport(httpx.AsyncBaseTransport):
    """Send httpx requests through one ``aiohttp.ClientSession``.

    *max_connections* caps the connections (aiohttp's ``limit``); idle ones
    are kept for *keepalive_expiry* seconds. *trust_env* honours the proxy
    settings of the environment (``HTTPS_PROXY``, ``NO_PROXY``...), looked
    up once per origin, as httpx does by default. TLS
    verification uses the same trust store as httpx
    (:func:`httpx.create_ssl_context`). Responses are read in full and
    handed to httpx undecoded, so httpx applies ``Content-Encoding`` exactly
    as it does on its own transport.

    Per request, the httpx timeouts map to aiohttp's: *pool* to
    ``connect`` (aiohttp's bound on waiting for a pooled connection, which
    also covers opening a new one), *connect* to ``sock_connect``, *read*
    to ``sock_read``. So with a *pool* shorter than *connect*, opening a
    connection gets at most *pool* seconds (the SDK's defaults are 30 and
    5). aiohttp has no write timeout; the SDK's bodies are a few hundred
    bytes.

    The session is created on the first request, inside the running event
    loop, and closed by :meth:`aclose`.
    """

    def __init__(
        self,
        *,
        max_connections: int = 100,
        keepalive_expiry: float = 30.0,
        trust_env: bool = True,
    ) -> None:
        self._aiohttp = _import_aiohttp()
        import yarl

        self._yarl = yarl
        self._max_connections = max_connections
        self._keepalive_expiry = keepalive_expiry
        self._trust_env = trust_env
        self._ssl = httpx.create_ssl_context(trust_env=trust_env)
        self._error_map = _error_map(self._aiohttp)
        self._session: aiohttp.ClientSession | None = None
        self._proxies: dict[tuple[str, str, int | None], tuple[Any, Any]] = {}
        self._closed = False

    def _open(self) -> aiohttp.ClientSession:
        if self._closed:
            msg = "the transport is closed"
            raise RuntimeError(msg)
        aiohttp = self._aiohttp
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=self._max_connections,
                limit_per_host=0,
                keepalive_timeout=self._keepalive_expiry,
                ssl=self._ssl,
            ),
            # httpx decodes Content-Encoding itself; decoding twice would fail.
            auto_decompress=False,
            # aiohttp's trust_env re-reads the proxy variables and ~/.netrc
            # (in a thread) on every request; we look proxies up once per
            # origin instead (see _proxy), and httpx applies no netrc either.
            trust_env=False,
            # httpx sends its own User-Agent, Accept and Accept-Encoding.
            skip_auto_headers=("User-Agent",),
            # Cookies are httpx's business (the gateway sets none).
            cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(total=None),
        )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send *request* and return the full response, or raise httpx's error."""
        session = self._session or self._open()
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        timeout = self._aiohttp.ClientTimeout(
            total=None,
            connect=_seconds(timeouts, "pool"),
            sock_connect=_seconds(timeouts, "connect"),
            sock_read=_seconds(timeouts, "read"),
        )
        body = await request.aread()
        proxy, proxy_auth = self._proxy(request.url)
        try:
            response = await session.request(
                request.method,
                # httpx already encoded the URL; yarl must not re-quote it.
                self._yarl.URL(str(request.url), encoded=True),
                headers=request.headers.multi_items(),
                data=body or None,
                allow_redirects=False,
                timeout=timeout,
                proxy=proxy,
                proxy_auth=proxy_auth,
            )
        except asyncio.CancelledError:
            raise
        # The edge of this transport: each failure becomes httpx's own.
        except (self._aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
            raise self._map_error(exc, request) from exc
        version = response.version
        return httpx.Response(
            response.status,
            headers=list(response.raw_headers),
            # Streamed, not read here: the SDK reads at most its cap.
            stream=_AiohttpStream(response, self, request),
            request=request,
            extensions={
                "http_version": (
                    b"HTTP/1.1"
                    if version is None
                    else f"HTTP/{version.major}.{version.minor}".encode()
                ),
                "reason_phrase": (response.reason or "").encode("ascii", "replace"),
            },
        )

    def _proxy(self, url: httpx.URL) -> tuple[Any, Any]:
        """Return the environment's proxy and its auth for *url*'s origin."""
        origin = (url.scheme, url.host, url.port)
        found = self._proxies.get(origin)
        if found is None:
            found = (None, None)
            if self._trust_env:
                target = self._yarl.URL.build(
                    scheme=url.scheme, host=url.host, port=url.port
                )
                with contextlib.suppress(LookupError):
                    found = self._aiohttp.helpers.get_env_proxy_for_url(target)
            self._proxies[origin] = found
        return found

    def _map_error(self, exc: BaseException, request: httpx.Request) -> Exception:
        """Return the httpx exception that classifies *exc* the same way."""
        message = str(exc) or type(exc).__name__
        for aiohttp_type, httpx_type in self._error_map:
            if isinstance(exc, aiohttp_type):
                return httpx_type(message, request=request)
        return httpx.TransportError(message, request=request)

    def map_error(self, exc: BaseException, request: httpx.Request) -> Exception:
        """Return the httpx exception for an aiohttp failure (see _error_map)."""
        return self._map_error(exc, request)

    async def aclose(self) -> None:
        """Close the session and its connections. Idempotent."""
        self._closed = True
        session, self._session = self._session, None
        if session is not None:
            await session.close()


class _AiohttpStream(httpx.AsyncByteStream):
    """An aiohttp answer's body as httpx's stream, its failures as httpx's.

    Closing it before the body was read to the end closes the connection
    (its unread bytes must never meet the next request); read to the end,
    the connection goes back to aiohttp's pool.
    """

    def __init__(
        self,
        response: aiohttp.ClientResponse,
        transport: AiohttpTransport,
        request: httpx.Request,
    ) -> None:
        self._response = response
        self._transport = transport
        self._request = request
        self._finished = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        aiohttp = self._transport._aiohttp  # noqa: SLF001 - our own transport
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except asyncio.CancelledError:
            raise
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
            raise self._transport.map_error(exc, self._request) from exc
        self._finished = True

    async def aclose(self) -> None:
        if self._finished:
            self._response.release()
        else:
            self._response.close()
