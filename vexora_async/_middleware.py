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

from ._operations import Operation


if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence


@attrs.frozen
class Call:
    """One logical call on its way to the gateway.

    *params* are the wire fields without ``timestamp`` and ``sign``.
    *timeout* is the per-call httpx timeout override, if any.
    """

    operation: Operation
    params: Mapping[str, str]
    trade_no: str | None = None
    timeout: httpx.Timeout | None = None


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
