"""The shared httpx client: defaults, construction and the User-Agent."""

from __future__ import annotations

import platform
from typing import Literal

import httpx
from httpx._utils import get_environment_proxies  # no public equivalent

from ._pool import ShardedTransport
from ._version import __version__
from .exceptions import InvalidRequestError


#: Connect fast (a refused connect is safe to retry); give the gateway time
#: to answer a payout, whose answer we must not lose to an eager timeout.
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=5.0, write=10.0, pool=30.0)
#: The SDK never hands httpx more requests than connections; see the
#: performance guide.
DEFAULT_MAX_CONNECTIONS = 100
USER_AGENT = (
    f"vexora-async/{__version__} httpx/{httpx.__version__} "
    f"{platform.python_implementation()}/{platform.python_version()}"
)


def default_limits(max_connections: int = DEFAULT_MAX_CONNECTIONS) -> httpx.Limits:
    """Pool limits sized to the SDK's own concurrency limit."""
    return httpx.Limits(
        max_connections=max_connections,
        max_keepalive_connections=max_connections,
        keepalive_expiry=30.0,
    )


TransportName = Literal["httpx", "aiohttp"]


def check_transport(transport: object, *, injected: bool) -> TransportName:
    """Refuse an unknown *transport*, or one given with an injected client."""
    if transport not in ("httpx", "aiohttp"):
        raise InvalidRequestError("transport", "must be 'httpx' or 'aiohttp'")
    if injected and transport != "httpx":
        raise InvalidRequestError(
            "transport", "cannot be chosen for an injected http_client (mount it there)"
        )
    return transport


def make_http_client(
    *,
    timeout: httpx.Timeout,
    max_connections: int,
    transport: TransportName = "httpx",
) -> httpx.AsyncClient:
    """Create the client the SDK owns (and closes).

    *transport* ``"aiohttp"`` sends through
    :class:`~vexora_async._aiohttp_transport.AiohttpTransport` (the aiohttp
    extra); the client is an ``httpx.AsyncClient`` either way.
    """
    limits = default_limits(max_connections)
    mounted: httpx.AsyncBaseTransport
    if transport == "aiohttp":
        # Imported here: aiohttp is optional and slow to import.
        from ._aiohttp_transport import AiohttpTransport

        mounted = AiohttpTransport(
            max_connections=max_connections,
            keepalive_expiry=limits.keepalive_expiry or 30.0,
            trust_env=True,
        )
    else:
        # httpx's own transport, split into small pools: see _pool.
        mounted = ShardedTransport(
            max_connections=max_connections,
            keepalive_expiry=limits.keepalive_expiry,
        )
    client = httpx.AsyncClient(
        timeout=timeout,
        limits=limits,
        headers={"User-Agent": USER_AGENT},
        transport=mounted,
        mounts=_environment_proxies(limits) if transport == "httpx" else None,
        # The gateway never redirects; following one could replay a payout
        # to another host.
        follow_redirects=False,
        # SSL_CERT_FILE and the like, as httpx does; proxies: see above.
        trust_env=True,
    )
    # httpx offers no hook for this; the attribute is what its `cookies`
    # property reads and its response path writes to.
    client._cookies = _LazyCookies()  # noqa: SLF001
    return client


class _LazyCookies(httpx.Cookies):
    """httpx's cookie store, minus the work when an answer sets no cookie.

    httpx wraps every response in urllib request/response objects for
    ``http.cookiejar``, cookies or not: a tenth of a request's CPU in our
    profile. The gateway sets no cookies; if it ever does, they are stored
    exactly as before.
    """

    def extract_cookies(self, response: httpx.Response) -> None:
        """Store the cookies *response* sets, if it sets any."""
        if "set-cookie" in response.headers:
            super().extract_cookies(response)


def _environment_proxies(
    limits: httpx.Limits,
) -> dict[str, httpx.AsyncBaseTransport | None]:
    """Mount the environment's proxies (HTTPS_PROXY, NO_PROXY...) as httpx does.

    httpx reads them only when it makes its own transport, not when given
    one (ours): so the SDK mounts them itself, with httpx's own reading of
    the variables. A ``None`` mount sends those URLs through ours.
    """
    return {
        pattern: None
        if url is None
        else httpx.AsyncHTTPTransport(proxy=url, limits=limits, trust_env=True)
        for pattern, url in get_environment_proxies().items()
    }
