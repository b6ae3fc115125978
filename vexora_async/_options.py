"""The client's options, checked before anything is built or sent.

:func:`check_options` runs every check of :class:`~vexora_async.VexoraClient`'s
constructor, in one fixed order, and returns what the checks work out
(:class:`ClientOptions`); the per-call options go through
:func:`call_deadline` and :func:`as_timeout`. A bad option raises
:class:`~vexora_async.InvalidRequestError` naming it, at construction: a
wrong-typed ledger or an unusable ``base_url`` would otherwise surface on
the first payout, some of them as an unknown outcome for a payout that was
never sent.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import attrs
import httpx

from ._operations import Operation
from ._retry import RetryPolicy
from ._transports import (
    DEFAULT_TIMEOUT,
    TransportName,
    check_transport,
    default_max_connections,
)
from ._validation import MAX_CONNECTIONS, check_count, check_retries, check_seconds
from .events import Event, as_hooks
from .exceptions import InvalidRequestError


if TYPE_CHECKING:
    from ._converter import AmountFormat
    from ._middleware import Middleware
    from .ledgers import Ledger


#: ``VexoraClient(timeout=)`` not given: the SDK's own timeout for the
#: client it creates, an injected client's own timeout otherwise.
UNSET: Any = object()

#: How much longer than a call's deadline a claim must last at least: the
#: slack for recording its outcome and a stall of the worker's event loop.
LEASE_MARGIN = 10.0

_MAX_URL = 2048
# Anything httpx would refuse or silently re-encode; whitespace and control
# characters could also split a log line or a header.
_BAD_URL_CHARACTERS = re.compile(
    r"[\x00-\x20\x7f-\xa0\u1680\u2000-\u200f\u2028-\u202f\u205f\u3000\ufeff\ud800-\udfff]"
)
_LEDGER_METHODS = ("claim", "settle", "release", "get")


@attrs.frozen(kw_only=True)
class ClientOptions:
    """What the checks of a client's options work out."""

    #: Without a trailing slash.
    base_url: str
    #: The ``on_event`` hooks, with one OpenTelemetry hook at most.
    hooks: tuple[Callable[[Event], object], ...]
    #: With only the automatic OpenTelemetry hook and no provider given,
    #: each call asks this whether one is configured by now: unconfigured,
    #: a call costs what it costs with no hook at all.
    hooks_wanted: Callable[[], bool] | None
    retry_policy: RetryPolicy
    #: Seconds; see :func:`claim_lease`.
    claim_lease: float
    #: Per attempt; ``None``: an injected client's own timeout.
    timeout: httpx.Timeout | None
    transport: TransportName
    #: The SDK's concurrency and pool size; by default, the transport's.
    max_connections: int


def check_options(
    *,
    base_url: str,
    http_client: httpx.AsyncClient | None,
    timeout: float | httpx.Timeout,
    max_retries: int,
    deadline: float,
    retry: RetryPolicy | None,
    ledger: Ledger | None,
    claim_lease: float | None,
    max_connections: int,
    amount_format: AmountFormat,
    clock: Callable[[], int],
    middleware: Sequence[Middleware],
    transport: TransportName,
    max_answer_bytes: int,
    on_event: Callable[[Event], object] | Sequence[Callable[[Event], object]] | None,
    instrument: bool,
    tracer_provider: object | None,
    meter_provider: object | None,
) -> ClientOptions:
    """Check :class:`~vexora_async.VexoraClient`'s options (not the credentials).

    Raises :class:`~vexora_async.InvalidRequestError` naming the first bad
    option, in the order of the checks below.
    """
    # One OpenTelemetry hook per client: the user's if on_event holds one,
    # else the automatic one.
    hooks, auto = instrumentation(
        instrument, tracer_provider, meter_provider, as_hooks(on_event)
    )
    hooks_wanted: Callable[[], bool] | None = None
    if auto and len(hooks) == 1 and tracer_provider is None is meter_provider:
        from .otel import providers_configured

        hooks_wanted = providers_configured
    checked_url = check_base_url(base_url)
    check_retries("max_retries", max_retries)
    if max_connections is not UNSET:
        check_count("max_connections", max_connections, 1, MAX_CONNECTIONS)
    check_count("max_answer_bytes", max_answer_bytes, 256, 2**30)
    if amount_format not in ("integer", "decimal2"):
        raise InvalidRequestError("amount_format", "must be 'integer' or 'decimal2'")
    seconds = check_deadline(deadline)
    if retry is not None and (max_retries != 2 or seconds != 60.0):  # noqa: PLR2004 - the client's defaults
        # Silently preferring one would run calls for 60 s that the
        # caller meant to end in 5.
        raise InvalidRequestError(
            "retry", "give max_retries and deadline inside the RetryPolicy"
        )
    check_components(http_client, retry, ledger, clock, middleware)
    policy = retry or RetryPolicy(max_retries=max_retries, deadline=seconds)
    lease = check_claim_lease(claim_lease, policy.deadline)
    if timeout is UNSET:
        # An injected client keeps its own timeout unless one is given.
        checked_timeout = DEFAULT_TIMEOUT if http_client is None else None
    else:
        checked_timeout = as_timeout(timeout)
    checked_transport = check_transport(transport, injected=http_client is not None)
    if max_connections is UNSET:
        max_connections = default_max_connections(checked_transport)
    return ClientOptions(
        base_url=checked_url,
        hooks=hooks,
        hooks_wanted=hooks_wanted,
        retry_policy=policy,
        claim_lease=lease,
        timeout=checked_timeout,
        transport=checked_transport,
        max_connections=max_connections,
    )


def instrumentation(
    instrument: object,
    tracer_provider: object,
    meter_provider: object,
    hooks: tuple[Callable[[Event], object], ...],
) -> tuple[tuple[Callable[[Event], object], ...], bool]:
    """Return the client's hooks with one OpenTelemetry hook at most.

    The second value tells whether the first hook is the automatic one,
    added here because *hooks* (the user's) hold none.
    """
    if not isinstance(instrument, bool):
        raise InvalidRequestError("instrument", "must be True or False")
    try:
        from .otel import OpenTelemetryHook, once_each
    except ImportError:
        if instrument and (tracer_provider is not None or meter_provider is not None):
            raise InvalidRequestError(
                "tracer_provider",
                "needs the otel extra: pip install 'vexora-async[otel]'",
            ) from None
        return hooks, False
    if any(isinstance(hook, OpenTelemetryHook) for hook in hooks):
        if instrument:
            refuse_providers(tracer_provider, meter_provider)
        return once_each(hooks), False
    if not instrument:
        return hooks, False
    auto = OpenTelemetryHook(
        tracer_provider=tracer_provider,  # type: ignore[arg-type]
        meter_provider=meter_provider,  # type: ignore[arg-type]
    )
    # First: the user's hooks then run with its span current.
    return (auto, *hooks), True


def refuse_providers(tracer_provider: object, meter_provider: object) -> None:
    """Refuse providers meant for an automatic hook that will not be made."""
    for name, provider in (
        ("tracer_provider", tracer_provider),
        ("meter_provider", meter_provider),
    ):
        if provider is not None:
            raise InvalidRequestError(
                name,
                "is for the automatic hook, and on_event holds an "
                "OpenTelemetryHook: give the provider to that hook",
            )


def check_base_url(base_url: object) -> str:
    """Return *base_url* without a trailing slash, once httpx can POST to it."""
    # No message here repeats the URL: it could hold credentials.
    if not isinstance(base_url, str) or not base_url:
        raise InvalidRequestError(
            "base_url", "is required (there is no public default)"
        )
    if len(base_url) > _MAX_URL:
        raise InvalidRequestError("base_url", f"is longer than {_MAX_URL} characters")
    if _BAD_URL_CHARACTERS.search(base_url):
        raise InvalidRequestError(
            "base_url", "contains whitespace or control characters"
        )
    try:
        parts = urlsplit(base_url)
        host = parts.hostname
        # A bad port would otherwise fail inside the POST and read as an
        # unknown outcome for a payout that was never sent.
        _ = parts.port
    except ValueError:
        raise InvalidRequestError(
            "base_url", "is not a valid URL (its host or port cannot be read)"
        ) from None
    if "@" in parts.netloc:
        raise InvalidRequestError(
            "base_url",
            "must not carry credentials (a name or password before @); the "
            "gateway authenticates by the merchantNo header and the sign",
        )
    if not host or parts.query or parts.fragment or "?" in base_url or "#" in base_url:
        raise InvalidRequestError("base_url", "must be an absolute URL with no query")
    if parts.scheme == "https" or (parts.scheme == "http" and is_loopback(host)):
        url = base_url.rstrip("/")
    else:
        raise InvalidRequestError(
            "base_url", "must be https (plain http only for a loopback address)"
        )
    try:
        # What the POST will use; httpx refuses some hosts urlsplit takes.
        httpx.URL(url + Operation.GET_BALANCE.path)
    except (httpx.InvalidURL, ValueError, UnicodeError):
        raise InvalidRequestError(
            "base_url", "is not a valid URL (httpx refuses it)"
        ) from None
    return url


def is_loopback(host: str) -> bool:
    """Tell whether *host* is ``localhost`` or a loopback address."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def as_timeout(
    value: float | httpx.Timeout | None, field: str = "timeout"
) -> httpx.Timeout | None:
    """Check a ``timeout`` option: seconds or an ``httpx.Timeout``, or ``None``."""
    if value is None:
        return None
    if isinstance(value, httpx.Timeout):
        for limit in ("connect", "read", "write", "pool"):
            seconds = getattr(value, limit)
            if seconds is not None:
                check_seconds(f"{field}.{limit}", seconds)
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidRequestError(
            field, "must be a positive number of seconds or an httpx.Timeout"
        )
    seconds = check_seconds(field, value)
    return httpx.Timeout(
        seconds, connect=min(seconds, DEFAULT_TIMEOUT.connect or seconds)
    )


def check_deadline(value: object) -> float:
    """Check a ``deadline`` option: seconds, over 0, at most a day."""
    return check_seconds("deadline", value)


def call_deadline(
    value: float | None, *, default: float, claim_lease: float, creates: bool
) -> float:
    """Return a call's deadline in seconds: *value*, or the client's *default*.

    A create's deadline must stay :data:`LEASE_MARGIN` under the claim
    lease.
    """
    budget = default if value is None else check_deadline(value)
    if creates and budget > claim_lease - LEASE_MARGIN:
        raise InvalidRequestError(
            "deadline",
            f"must stay {LEASE_MARGIN:g} s under the claim lease "
            f"({claim_lease:g} s), so that no other worker takes "
            "the tradeNo over while this call runs",
        )
    return budget


def check_components(
    http_client: object,
    retry: object,
    ledger: object,
    clock: object,
    middleware: object,
) -> None:
    """Refuse a wrong-typed collaborator now, not on the first payout."""
    if http_client is not None:
        if not isinstance(http_client, httpx.AsyncClient):
            raise InvalidRequestError(
                "http_client",
                f"must be an httpx.AsyncClient, not {type(http_client).__name__}",
            )
        # Its own timeout applies when no timeout= is given.
        as_timeout(http_client.timeout, "http_client.timeout")
    if retry is not None and not isinstance(retry, RetryPolicy):
        raise InvalidRequestError(
            "retry", f"must be a RetryPolicy, not {type(retry).__name__}"
        )
    if ledger is not None and not all(
        callable(getattr(ledger, name, None)) for name in _LEDGER_METHODS
    ):
        raise InvalidRequestError(
            "ledger", "must implement the Ledger protocol (claim, settle, release, get)"
        )
    if not callable(clock):
        raise InvalidRequestError("clock", "must be callable (epoch milliseconds)")
    if isinstance(middleware, (str, bytes)) or not isinstance(middleware, Sequence):
        raise InvalidRequestError("middleware", "must be a sequence of middleware")
    if not all(callable(layer) for layer in middleware):
        raise InvalidRequestError("middleware", "every middleware must be callable")


def check_claim_lease(value: object, deadline: float) -> float:
    """Return the claim lease in seconds: *value*, or one made from *deadline*."""
    floor = deadline + LEASE_MARGIN
    if value is None:
        # A claim outlives any call of ours by a wide margin before
        # another worker may presume its owner dead.
        return 2 * deadline + 60.0
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not floor <= value < float("inf")
    ):
        raise InvalidRequestError(
            "claim_lease",
            f"must be a finite number of seconds >= the deadline + "
            f"{LEASE_MARGIN:g} s ({floor:g} s here)",
        )
    return float(value)
