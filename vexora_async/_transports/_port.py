"""The port every transport implements: bytes in; status, headers, bytes out.

The exchange layer above it signs and encodes a request, hands the port a
URL, a body and the attempt's timeouts, and gets back a :class:`Reply` or a
:class:`SendFailed` that says, for the money rules, whether the request may
have left (:class:`~vexora_async._outcomes.Phase`). Nothing above the port
knows which HTTP library moved the bytes; nothing below it knows what a
payout is.

Every port reads at most *max_answer_bytes* of an answer, counted after
decompression (:mod:`._body`), never reuses a connection whose answer it
did not read to the end, and ends by the call's deadline: it raises
``TimeoutError`` then, having left nothing behind (no connection taken, no
unread answer). Cancelled, it leaves nothing behind either.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple, Protocol


if TYPE_CHECKING:
    from collections.abc import Mapping

    import httpx

    from vexora_async._outcomes import TransportFailure


class Reply(NamedTuple):
    """An answer as read: its status, its headers and its (capped) body."""

    status: int
    #: Case-insensitive on every port (httpx's and aiohttp's header types).
    headers: Mapping[str, str]
    #: The decoded body; empty when *problem* says why it cannot be used.
    body: bytes
    #: ``None`` when *body* is the whole answer (over the cap, a bad
    #: ``Content-Encoding``, data that does not inflate otherwise).
    problem: str | None = None

    def __repr__(self) -> str:
        # An answer may echo the account and the name.
        return f"Reply(status={self.status}, body=<{len(self.body)} bytes>)"


class SendFailed(Exception):
    """The exchange failed; *failure* says whether the request may have left.

    Raised by a port from the HTTP library's own exception (its
    ``__cause__``), already classified: the money rules read the phase,
    never the library's exception types.
    """

    def __init__(self, failure: TransportFailure) -> None:
        super().__init__(failure.reason)
        self.failure = failure


class Port(Protocol):
    """What the exchange layer needs from a transport."""

    @property
    def is_closed(self) -> bool:
        """True once :meth:`aclose` was called (or the client was closed)."""

    @property
    def default_timeout(self) -> httpx.Timeout:
        """The timeouts of an attempt that sets none (an injected client's own)."""

    async def send(
        self, url: str, body: bytes, timeout: httpx.Timeout, deadline: float | None
    ) -> Reply:
        """POST *body* to *url* and read the answer, or raise :class:`SendFailed`.

        *timeout* bounds the phases (connect, pool wait, write, read: each
        port says how it reads them); *deadline*, in event loop time, bounds
        the whole exchange: past it, ``TimeoutError``.
        """

    async def aclose(self) -> None:
        """Close the connections this port owns. Idempotent."""
