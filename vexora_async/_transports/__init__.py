"""How the SDK's bytes reach the gateway: one port, two transports.

:mod:`._port` is the contract (URL, body and timeouts in; status, headers
and a capped body out; failures classified as sent or not). Behind it:

- :mod:`._httpx`: the default, the shared ``httpx.AsyncClient`` (yours when
  you inject one). The one the SDK builds is a stock client made with
  public arguments: httpx's transport, httpcore's pool and network backend;
- :mod:`._aiohttp`: ``transport="aiohttp"``, one ``aiohttp.ClientSession``
  and no httpx objects on the way.

:mod:`._body` reads an answer within the size cap, :mod:`._ssl` holds the
process's TLS context. Only the libraries' public API is used; the SDK's
limiter (in :mod:`vexora_async._exchange`) admits at most
``max_connections`` requests, so neither pool ever queues one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from vexora_async.exceptions import InvalidRequestError

from ._body import ACCEPT_ENCODING, DEFAULT_MAX_ANSWER_BYTES
from ._httpx import (
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_TIMEOUT,
    USER_AGENT,
    HttpxPort,
    default_limits,
    make_http_client,
)
from ._port import Port, Reply, SendFailed


if TYPE_CHECKING:
    from collections.abc import Mapping

    import httpx


__all__ = [
    "ACCEPT_ENCODING",
    "AIOHTTP_MAX_CONNECTIONS",
    "DEFAULT_MAX_ANSWER_BYTES",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_TIMEOUT",
    "USER_AGENT",
    "HttpxPort",
    "Port",
    "Reply",
    "SendFailed",
    "TransportName",
    "check_transport",
    "default_limits",
    "default_max_connections",
    "make_http_client",
    "make_port",
]

TransportName = Literal["httpx", "aiohttp"]

#: ``transport="aiohttp"``'s connections: its pool finds a free one
#: without a walk, so more connections cost nothing per request.
AIOHTTP_MAX_CONNECTIONS = 100


def default_max_connections(transport: TransportName) -> int:
    """Return the connections (and concurrency) a client gets by default."""
    return (
        AIOHTTP_MAX_CONNECTIONS if transport == "aiohttp" else DEFAULT_MAX_CONNECTIONS
    )


def check_transport(transport: object, *, injected: bool) -> TransportName:
    """Refuse an unknown *transport*, or one given with an injected client."""
    if transport not in ("httpx", "aiohttp"):
        raise InvalidRequestError("transport", "must be 'httpx' or 'aiohttp'")
    if injected and transport != "httpx":
        raise InvalidRequestError(
            "transport", "cannot be chosen for an injected http_client (mount it there)"
        )
    return transport


def make_port(
    *,
    transport: TransportName,
    http_client: httpx.AsyncClient | None,
    headers: Mapping[str, str],
    timeout: httpx.Timeout,
    max_connections: int,
    max_answer_bytes: int,
) -> Port:
    """Build the port for *transport*; *headers* go on every request.

    An injected *http_client* is used as it is (its own headers merged
    under ours per request) and never closed by the SDK.
    """
    if http_client is not None:
        return HttpxPort(
            http_client,
            headers=headers,
            max_answer_bytes=max_answer_bytes,
            owned=False,
        )
    if transport == "aiohttp":
        # Imported here: aiohttp is optional and slow to import.
        from ._aiohttp import AiohttpPort

        return AiohttpPort(
            headers=headers,
            max_answer_bytes=max_answer_bytes,
            timeout=timeout,
            max_connections=max_connections,
            keepalive_expiry=default_limits(max_connections).keepalive_expiry or 30.0,
        )
    client = make_http_client(
        timeout=timeout, max_connections=max_connections, headers=headers
    )
    # Set on the client once, not merged per request.
    return HttpxPort(
        client, headers=None, max_answer_bytes=max_answer_bytes, owned=True
    )
