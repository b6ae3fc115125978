"""The aiohttp port: ``transport="aiohttp"`` sends through one ``ClientSession``.

No httpx objects on the way: the exchange hands over a URL, the signed
body and the attempt's timeouts; the port POSTs them with aiohttp and
returns the status, the headers and at most the cap of the answer. Needs
the ``aiohttp`` extra (``pip install vexora-async[aiohttp]``).

What makes it safe for payouts is the classification of aiohttp's
failures: only failures to *connect* (refused, unreachable, DNS, proxy,
TLS handshake, a connect or pool-wait timeout) say "never sent"; a lost
connection, a read timeout or a broken answer say "may have been sent", so
a payout becomes an unknown outcome and is reconciled, never blindly
re-sent. aiohttp itself re-sends only idempotent methods on a stale
keep-alive connection, never a POST.

Everything here is aiohttp's public API. Two things the port does that
plain aiohttp does not: before each request it lets the event loop run
once (:func:`_io_turn`), so a keep-alive connection the server closed
while the loop was busy is seen closed and not picked for the request;
and a cancellation aiohttp swallowed while racing a name's addresses is
raised again once the request returns (see :meth:`AiohttpPort._exchange`).
"""

from __future__ import annotations

import asyncio
import urllib.request
from typing import TYPE_CHECKING, Any

from vexora_async._deadline import run_until
from vexora_async._outcomes import Phase, TransportFailure
from vexora_async.exceptions import InvalidRequestError

from ._body import Body, inflate_capped, over_cap, read_capped
from ._port import Reply, SendFailed
from ._ssl import shared_ssl_context


if TYPE_CHECKING:
    from collections.abc import Mapping

    import aiohttp
    import httpx


def import_aiohttp() -> Any:
    """Import aiohttp, or say which extra brings it."""
    try:
        import aiohttp
    except ImportError as exc:
        raise InvalidRequestError(
            "transport",
            "'aiohttp' needs the aiohttp extra: pip install 'vexora-async[aiohttp]'",
        ) from exc
    return aiohttp


def _classes(aiohttp: Any) -> tuple[tuple[type[BaseException], Phase, bool], ...]:
    """Aiohttp's failures as (type, phase, timed out); the first match wins.

    The order matters: aiohttp's timeouts are also connection errors, and
    its connector errors are also ``OSError``.
    """
    pairs: list[tuple[type[BaseException], Phase, bool]] = []
    # aiohttp >= 3.10 tells a connect (or pool) timeout from a read one.
    if hasattr(aiohttp, "ConnectionTimeoutError"):
        pairs.append((aiohttp.ConnectionTimeoutError, Phase.NOT_SENT, True))
    pairs += [
        # A read timeout, or (aiohttp < 3.10) a timeout of unknown phase.
        (asyncio.TimeoutError, Phase.MAYBE_SENT, True),
        # Refused, unreachable, DNS, proxy, TLS handshake.
        (aiohttp.ClientConnectorError, Phase.NOT_SENT, False),
        (aiohttp.InvalidURL, Phase.NOT_SENT, False),
        # Closed before or during the answer, an answer aiohttp could not
        # parse, a reset after connecting.
        (aiohttp.ClientError, Phase.MAYBE_SENT, False),
        (OSError, Phase.MAYBE_SENT, False),
    ]
    return tuple(pairs)


class AiohttpPort:
    """POST through one ``aiohttp.ClientSession``, made on the first request.

    *headers* go on every request; *timeout* is used by a request that
    gives none. *max_connections* caps the connections (aiohttp's
    ``limit``); idle ones are kept *keepalive_expiry* seconds.
    *trust_env* honours the environment's proxies (``HTTP_PROXY``,
    ``NO_PROXY``...), looked up once per URL, and ``SSL_CERT_FILE``;
    TLS verifies against the trust store httpx uses, one context per
    process.

    The attempt's httpx timeouts, read the cheap way: *connect* bounds
    dialling a new connection (aiohttp's ``sock_connect``: a failure then
    was never sent); *connect* plus *read* bound the whole exchange, one
    timer with the call's deadline. *pool* and *write* are not used: the
    SDK's limiter is the pool (a wait there is bounded by the deadline and
    sends nothing), and the SDK's bodies are a few hundred bytes.
    """

    def __init__(
        self,
        *,
        headers: Mapping[str, str],
        max_answer_bytes: int,
        timeout: httpx.Timeout,
        max_connections: int = 100,
        keepalive_expiry: float = 30.0,
        trust_env: bool = True,
    ) -> None:
        self._aiohttp = import_aiohttp()
        import yarl

        self._yarl = yarl
        self._headers = dict(headers)
        self._cap = max_answer_bytes
        self._default_timeout = timeout
        self._max_connections = max_connections
        self._keepalive_expiry = keepalive_expiry
        self._trust_env = trust_env
        self._ssl = shared_ssl_context(trust_env=trust_env)
        self._classes = _classes(self._aiohttp)
        self._session: aiohttp.ClientSession | None = None
        self._urls: dict[str, tuple[Any, str | None]] = {}
        self._timeouts: dict[float | None, Any] = {}
        self._closed = False

    @property
    def is_closed(self) -> bool:
        """True once :meth:`aclose` was called."""
        return self._closed

    @property
    def default_timeout(self) -> httpx.Timeout:
        """The timeouts the port was made with (the client passes its own)."""
        return self._default_timeout

    @property
    def session(self) -> aiohttp.ClientSession | None:
        """The session, once the first request made it."""
        return self._session

    def _open(self) -> aiohttp.ClientSession:
        aiohttp = self._aiohttp
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=self._max_connections,
                limit_per_host=0,
                keepalive_timeout=self._keepalive_expiry,
                ssl=self._ssl,
            ),
            headers=self._headers,
            # We inflate with a bound ourselves (see _body).
            auto_decompress=False,
            # aiohttp's trust_env re-reads the proxy variables and ~/.netrc
            # (in a thread) on every request; we look proxies up once per
            # URL instead (see _target).
            trust_env=False,
            # The gateway sets no cookies; none are sent back.
            cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(total=None),
        )
        return self._session

    async def send(
        self, url: str, body: bytes, timeout: httpx.Timeout, deadline: float | None
    ) -> Reply:
        """POST *body*; return the capped answer or raise :class:`SendFailed`.

        One timer bounds the exchange: the *deadline*, or sooner *connect*
        plus *read* seconds from now (``SendFailed``, may have been sent).
        """
        if self._closed:
            reason = "the transport is closed"
            raise SendFailed(TransportFailure(Phase.NOT_SENT, False, reason))
        until = deadline
        budget = _budget(timeout)
        if budget is not None:
            limit = asyncio.get_running_loop().time() + budget
            if until is None or limit < until:
                until = limit
            else:
                budget = None  # the deadline comes first
        try:
            return await run_until(self._exchange(url, body, timeout), until)
        except TimeoutError:
            if budget is None:
                raise
            reason = f"no whole answer within {budget:g} s (connect + read timeouts)"
            raise SendFailed(TransportFailure(Phase.MAYBE_SENT, True, reason)) from None

    async def _exchange(self, url: str, body: bytes, timeout: httpx.Timeout) -> Reply:
        session = self._session or self._open()
        target, proxy = self._urls.get(url) or self._target(url)
        asked = _cancel_requests()
        await _io_turn()
        try:
            response = await session.post(
                target,
                data=body,
                allow_redirects=False,
                timeout=self._timeout(timeout.connect),
                proxy=proxy,
            )
        # The edge of aiohttp: each failure becomes facts, classified.
        except (self._aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
            raise SendFailed(self._failure(exc)) from exc
        if _cancel_requests() > asked:
            # A cancellation (the caller's, or the deadline's) that arrived
            # while aiohttp raced a name's addresses can be swallowed there
            # (aiohappyeyeballs awaits the losing attempts under a
            # suppress(CancelledError)); the request then went on. Honour it
            # now: without this, a deadline lost that way would never end
            # the call.
            response.close()
            raise asyncio.CancelledError
        read: Body | None = None
        try:
            read = await self._read(response)
        except (self._aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
            raise SendFailed(self._failure(exc)) from exc
        finally:
            if read is not None and read.problem is None:
                response.release()
            else:
                # Unread bytes must never meet the next request.
                response.close()
        return Reply(response.status, response.headers, read.content, read.problem)

    async def _read(self, response: aiohttp.ClientResponse) -> Body:
        encoding = response.headers.get("Content-Encoding", "")
        length = response.content_length
        if length is not None:
            if length > self._cap:
                return over_cap(self._cap)
            # The usual answer: a few hundred bytes, in one read.
            return inflate_capped(await response.read(), encoding, self._cap)
        # Chunked or until close: never more than the cap.
        return await read_capped(response.content.iter_any(), encoding, self._cap)

    def _target(self, url: str) -> tuple[Any, Any]:
        """Parse *url* and look up its proxy, once per URL."""
        # Our URLs are made of a base URL and a path; yarl quotes as httpx does.
        target = self._yarl.URL(url)
        proxy: str | None = None
        if self._trust_env:
            proxy = _environment_proxy(target.scheme, target.host or "")
        found = self._urls[url] = (target, proxy)
        return found

    def _timeout(self, connect: float | None) -> Any:
        """Return aiohttp's timeouts: only dialling a new connection, *connect*.

        The rest is one timer in :meth:`send`: aiohttp's own read timeout
        re-arms a timer on every chunk, and its pool-wait timeout arms one
        per request, while the SDK's limiter never lets a request wait for
        the pool (it admits at most *max_connections*).
        """
        mapped = self._timeouts.get(connect)
        if mapped is None:
            mapped = self._aiohttp.ClientTimeout(
                total=None, connect=None, sock_connect=connect, sock_read=None
            )
            # Cut timeouts (an attempt near its deadline) are one-offs.
            if len(self._timeouts) < 16:  # noqa: PLR2004
                self._timeouts[connect] = mapped
        return mapped

    def _failure(self, exc: BaseException) -> TransportFailure:
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        for kind, phase, timed_out in self._classes:
            if isinstance(exc, kind):
                return TransportFailure(phase, timed_out, reason)
        return TransportFailure(Phase.MAYBE_SENT, False, reason)  # pragma: no cover

    async def aclose(self) -> None:
        """Close the session and its connections. Idempotent."""
        self._closed = True
        session, self._session = self._session, None
        if session is not None:
            await session.close()


def _budget(timeout: httpx.Timeout) -> float | None:
    """Return connect + read seconds, or None when either is unbounded."""
    if timeout.read is None or timeout.connect is None:
        return None
    return timeout.connect + timeout.read


def _environment_proxy(scheme: str, host: str) -> str | None:
    """Return the proxy the environment names for *scheme* and *host*, if any.

    The variables aiohttp's own ``trust_env`` reads, through the same
    standard-library functions: ``HTTP_PROXY``/``HTTPS_PROXY`` (lower case
    too) and ``NO_PROXY``. Credentials stay in the proxy's URL, where
    aiohttp takes them from; like aiohttp, an ``https://`` proxy is not
    used (it would need TLS inside TLS).
    """
    if host and urllib.request.proxy_bypass(host):
        return None
    proxy = urllib.request.getproxies().get(scheme)
    if proxy is None or not proxy.lower().startswith("http://"):
        return None
    return proxy


def _cancel_requests() -> int:
    """Return how many cancellations of the current task are pending (3.11+)."""
    task = asyncio.current_task()
    cancelling = getattr(task, "cancelling", None)  # Task.cancelling: 3.11+
    return cancelling() if cancelling is not None else 0


async def _io_turn() -> None:
    """Return once the event loop has polled its sockets and run their callbacks.

    A server may close an idle keep-alive connection while the loop is busy
    (a blocking call, a long computation). Until the loop reads that close,
    aiohttp sees the connection open and would send a payout into it: an
    answer lost after sending, so an unknown outcome for a payout the
    gateway never saw. ``asyncio.sleep(0)`` is not enough: the task would
    resume in the next pass ahead of that pass's I/O callbacks. A future
    set from a callback queued now is set in the next pass, and the task it
    wakes runs in the pass after, once the I/O callbacks have run.
    """
    loop = asyncio.get_running_loop()
    turned = loop.create_future()
    loop.call_soon(_wake, turned)
    await turned


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():  # not cancelled meanwhile
        future.set_result(None)
