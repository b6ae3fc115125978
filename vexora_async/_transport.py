"""The shared httpx client: defaults, construction and the User-Agent."""

from __future__ import annotations

import platform

import httpx

from ._version import __version__


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


def make_http_client(
    *, timeout: httpx.Timeout, max_connections: int
) -> httpx.AsyncClient:
    """Create the client the SDK owns (and closes)."""
    return httpx.AsyncClient(
        timeout=timeout,
        limits=default_limits(max_connections),
        headers={"User-Agent": USER_AGENT},
        # The gateway never redirects; following one could replay a payout
        # to another host.
        follow_redirects=False,
        # Proxies from the environment stay honoured, as httpx does.
        trust_env=True,
    )
