"""The middleware onion around the sign-and-send step.

A middleware is an async callable ``(call, call_next) -> result``. It sees
every call before it is signed and may look at it, time it, retry it or
answer it without sending; it passes the call inward with ``await
call_next(call)``. The innermost step stamps a fresh ``timestamp`` and
``sign`` on every attempt, so a middleware that retries never resends a
stale signature, and never changes the ``tradeNo``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

import attrs
import httpx

from ._masking import mask_params
from ._operations import Operation
from .events import Trace


if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence


@attrs.frozen
class Call:
    """One logical call on its way to the gateway.

    *params* are the wire fields without ``timestamp`` and ``sign``.
    *timeout* is the per-attempt httpx timeout override, if any.
    *deadline* is the event loop time by which the whole call (every
    attempt, every backoff, every reconciliation query) must be over.
    *max_retries* overrides the client's for this call. *reconcile_first*
    tells the retry layer that an earlier attempt's outcome is unknown, so
    it must ask the gateway (status query) before it sends anything.
    *resolve* marks :meth:`~vexora_async.VexoraClient.resolve_payout`: it
    always asks first, whatever the retry policy.

    Its ``repr`` (what logs, debuggers and error reporters show) masks the
    account number (``bankNumber``) and the beneficiary's ``name`` in
    *params*, as the SDK's logs do, and never shows a ``sign``.
    """

    operation: Operation
    params: Mapping[str, str] = attrs.field(repr=mask_params)
    trade_no: str | None = None
    timeout: httpx.Timeout | None = None
    deadline: float | None = None
    max_retries: int | None = None
    reconcile_first: bool = False
    resolve: bool = False
    #: The call's tally for ``on_event`` hooks; ``None`` without hooks.
    trace: Trace | None = attrs.field(default=None, eq=False, repr=False)

    @property
    def label(self) -> str:
        """The name of the call the user made, as errors report it."""
        return "resolve_payout" if self.resolve else self.operation.label

    def evolve(self, **changes: object) -> Call:
        """Return a copy with *changes*, as :func:`attrs.evolve` does."""
        return attrs.evolve(self, **changes)  # type: ignore[arg-type]  # kwargs pass through

    def remaining(self, now: float) -> float | None:
        """Seconds left before the deadline, or None when there is none."""
        return None if self.deadline is None else self.deadline - now


class Middleware(Protocol):
    """What a middleware must be: an async callable taking the next step."""

    async def __call__(
        self, call: Call, call_next: Callable[[Call], Awaitable[object]]
    ) -> object:
        """Handle *call*, usually by awaiting ``call_next(call)``."""


def build_chain(
    middleware: Sequence[Middleware],
    innermost: Callable[[Call], Awaitable[object]],
) -> Callable[[Call], Awaitable[object]]:
    """Wrap *innermost* in *middleware*, the first one outermost."""
    handler = innermost
    for layer in reversed(middleware):
        handler = _bind(layer, handler)
    return handler


def _bind(
    layer: Middleware, call_next: Callable[[Call], Awaitable[object]]
) -> Callable[[Call], Awaitable[object]]:
    async def handler(call: Call) -> object:
        return await layer(call, call_next)

    return handler
