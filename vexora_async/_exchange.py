"""One HTTP attempt: stamp, sign, POST, and say what the answer means.

The innermost step of every call, under the middleware onion. It signs a
fresh ``timestamp`` on every attempt, waits for a free connection (never
past the call's deadline), POSTs, and turns whatever happened into a
result record or one of our exceptions, classified by the question that
matters for money: may the gateway have executed it? For a create, every
"maybe" becomes an unknown outcome for the retry layer to reconcile.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from typing import TYPE_CHECKING

import httpx

from . import _json
from ._masking import mask_digit_runs
from ._outcomes import (
    CallIdentity,
    Executed,
    HTTPAnswer,
    Outcome,
    Phase,
    TransportFailure,
    interpret,
)
from ._secret import Secret as Secret  # noqa: PLC0414, TC001 - re-exported from here
from ._signer import sign
from .exceptions import ConnectError, InvalidRequestError


if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from ._converter import WireCodec
    from ._middleware import Call
    from ._operations import Operation


logger = logging.getLogger("vexora_async")

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


class Exchange:
    """Sends one attempt of a call; the innermost handler of the onion.

    Holds what every attempt needs: the shared *http* client, the *secret*,
    the *clock* for ``timestamp``, the *codec*, the *urls* per operation,
    the per-request *headers* (``None`` when they are already set on the
    client), the default *timeout* and a limiter of *max_connections* slots
    in front of the pool.
    """

    def __init__(
        self,
        *,
        http: httpx.AsyncClient,
        secret: Secret,
        clock: Callable[[], int],
        codec: WireCodec,
        urls: Mapping[Operation, httpx.URL],
        headers: dict[str, str] | None,
        timeout: httpx.Timeout | None,
        max_connections: int,
    ) -> None:
        self._http = http
        self._secret = secret
        self._clock = clock
        self._codec = codec
        self._urls = urls
        self._headers = headers
        self._timeout = timeout
        self.limiter = asyncio.Semaphore(max_connections)
        self.closed = False

    async def __call__(self, call: Call) -> object:
        """Send one attempt of *call*; return its result record or raise.

        Stamps a fresh ``timestamp`` and ``sign``, POSTs, and lets
        :mod:`~vexora_async._outcomes` decide what the answer means.
        """
        if self.closed or self._http.is_closed:
            raise InvalidRequestError(None, "the client is closed; nothing was sent")
        fields: dict[str, str] = dict(call.params)
        fields["timestamp"] = str(self._clock())
        fields["sign"] = sign(fields, self._secret.value)
        body = _json.dumps(fields)
        started = time.perf_counter()
        await self._acquire(call)
        try:
            timeout = self._attempt_timeout(call)
            try:
                response = await self._http.post(
                    self._urls[call.operation],
                    content=body,
                    headers=self._headers,
                    timeout=timeout,
                )
            # The edge of the network: every failure becomes facts for the
            # money rules, classified by whether the request may have left.
            except Exception as exc:  # noqa: BLE001 - classified, then raised as ours
                facts: TransportFailure | HTTPAnswer = _failure(exc)
                cause: BaseException | None = exc
            else:
                facts = HTTPAnswer(
                    response.status_code,
                    response.content,
                    _retry_after(response),
                )
                cause = None
        finally:
            self.limiter.release()
        outcome = interpret(facts, _identity(call), self._codec, self._redact)
        self._log(call, facts, outcome, started)
        if outcome.error is not None:
            raise outcome.error from (cause or outcome.error.__cause__)
        return outcome.result

    async def _acquire(self, call: Call) -> None:
        """Wait for a free connection slot, but not past the call's deadline."""
        remaining = call.remaining(asyncio.get_running_loop().time())
        if remaining is None or not self.limiter.locked():
            await self.limiter.acquire()  # free slot: no wait, no timer
            return
        try:
            if sys.version_info >= (3, 11):
                async with asyncio.timeout(max(remaining, 0.0)):
                    await self.limiter.acquire()
            else:  # pragma: no cover - exercised on Python 3.10 only
                await asyncio.wait_for(self.limiter.acquire(), max(remaining, 0.0))
        except (TimeoutError, asyncio.TimeoutError):
            raise ConnectError(
                "the call's deadline passed while it waited for a free connection; "
                "nothing was sent",
                operation=call.label,
                trade_no=call.trade_no,
            ) from None

    def _attempt_timeout(self, call: Call) -> httpx.Timeout:
        """Return this attempt's timeouts, cut to what is left of the deadline."""
        base = call.timeout or self._timeout or self._http.timeout
        remaining = call.remaining(asyncio.get_running_loop().time())
        if remaining is None or remaining >= _longest(base):
            # Nothing to cut (the usual case): no new Timeout per attempt.
            return base
        if remaining <= 0:
            # Checked after queueing for a connection, before any byte is sent.
            raise ConnectError(
                "the call's deadline passed before this attempt; nothing was sent",
                operation=call.label,
                trade_no=call.trade_no,
            )
        return httpx.Timeout(
            connect=_cut(base.connect, remaining),
            read=_cut(base.read, remaining),
            write=_cut(base.write, remaining),
            pool=_cut(base.pool, remaining),
        )

    def _redact(self, text: str) -> str:
        """Remove the secret and mask account-like digit runs from gateway text."""
        return mask_digit_runs(text.replace(self._secret.value, "<secret>"))

    def _log(
        self,
        call: Call,
        facts: TransportFailure | HTTPAnswer,
        outcome: Outcome,
        started: float,
    ) -> None:
        if outcome.executed is Executed.MAYBE:
            logger.info(
                "attempt outcome unknown op=%s trade_no=%s: %s",
                call.label,
                call.trade_no,
                outcome.error,
            )
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "POST %s op=%s trade_no=%s http=%s code=%s error=%s elapsed_ms=%.1f",
                call.operation.path,
                call.label,
                call.trade_no,
                facts.status if isinstance(facts, HTTPAnswer) else facts.reason,
                outcome.code,
                type(outcome.error).__name__ if outcome.error else None,
                (time.perf_counter() - started) * 1000,
            )


def _identity(call: Call) -> CallIdentity:
    return CallIdentity(call.operation, call.trade_no, call.label)


def _failure(exc: Exception) -> TransportFailure:
    reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    phase = Phase.NOT_SENT if isinstance(exc, _NOT_SENT) else Phase.MAYBE_SENT
    return TransportFailure(
        phase, timed_out=isinstance(exc, httpx.TimeoutException), reason=reason
    )


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    # delay-seconds is digits only; float() would also take "inf" and "nan".
    seconds = value.strip()
    if seconds.isascii() and seconds.isdigit():
        return float(seconds)
    from email.utils import parsedate_to_datetime  # noqa: PLC0415 - rare path

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _longest(timeout: httpx.Timeout) -> float:
    longest = 0.0
    for limit in (timeout.connect, timeout.read, timeout.write, timeout.pool):
        if limit is None:
            return float("inf")
        longest = max(longest, limit)
    return longest


def _cut(limit: float | None, remaining: float) -> float:
    return remaining if limit is None else min(limit, remaining)
