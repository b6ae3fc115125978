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
from ._operations import outcome_unknown
from ._signer import sign
from .exceptions import (
    ConnectError,
    DecodingError,
    GatewayError,
    HTTPStatusError,
    InvalidRequestError,
    RequestRejected,
    RequestTimeout,
    TransportError,
)


if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from ._converter import WireCodec
    from ._middleware import Call
    from ._models import Envelope
    from ._operations import Operation
    from .exceptions import OutcomeUnknown, VexoraError


logger = logging.getLogger("vexora_async")

CODE_OK = "0000"
CODE_REJECTED = "8000"
_EXCERPT_CHARS = 200
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


class Secret:
    """Holds the app secret so that no repr, log or traceback shows it."""

    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "<secret>"


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

        Stamps a fresh ``timestamp`` and ``sign``, POSTs, and decodes.
        """
        if self.closed or self._http.is_closed:
            raise InvalidRequestError(None, "the client is closed; nothing was sent")
        operation = call.operation
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
                    self._urls[operation],
                    content=body,
                    headers=self._headers,
                    timeout=timeout,
                )
            # The edge of the network: every failure becomes one of ours,
            # classified by whether the gateway may have seen the request.
            except Exception as exc:
                raise self._transport_error(call, exc, started) from exc
        finally:
            self.limiter.release()
        elapsed_ms = (time.perf_counter() - started) * 1000
        return self._interpret(call, response, elapsed_ms)

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
                operation=call.operation.label,
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
                operation=call.operation.label,
                trade_no=call.trade_no,
            )
        return httpx.Timeout(
            connect=_cut(base.connect, remaining),
            read=_cut(base.read, remaining),
            write=_cut(base.write, remaining),
            pool=_cut(base.pool, remaining),
        )

    def _interpret(
        self, call: Call, response: httpx.Response, elapsed_ms: float
    ) -> object:
        operation = call.operation
        status = response.status_code
        if not 200 <= status < 300:  # noqa: PLR2004
            self._log(call, status, None, elapsed_ms)
            raise self._status_error(call, response)
        try:
            envelope = self._codec.decode_envelope(response.content)
            self._log(call, status, envelope.code, elapsed_ms)
            if envelope.code == CODE_OK:
                return self._result(call, envelope)
        except DecodingError as exc:
            self._log(call, status, None, elapsed_ms)
            if operation.creates:
                raise self._unknown(
                    call, f"the answer could not be read: {exc}"
                ) from exc
            raise _with_identity(exc, call) from exc.__cause__
        # The gateway's msg is free text: never let it carry the secret out.
        msg = self._redact(envelope.msg)
        if envelope.code == CODE_REJECTED:
            raise RequestRejected(
                envelope.code,
                msg,
                operation=operation.label,
                trade_no=call.trade_no,
            )
        if operation.creates:
            # 5000 ("do NOT treat as failed") and any code the docs do not
            # define: the transaction may exist.
            raise self._unknown(
                call, f"the gateway answered code {envelope.code}: {msg}"
            )
        raise GatewayError(
            envelope.code,
            msg,
            operation=operation.label,
            trade_no=call.trade_no,
        )

    def _result(self, call: Call, envelope: Envelope) -> object:
        result: object = self._codec.decode_data(envelope, call.operation.result_type)
        echoed = getattr(result, "trade_no", None)
        if call.trade_no is not None and echoed != call.trade_no:
            # An answer about another transaction is not an answer about ours.
            msg = f"the answer is about tradeNo {echoed!r}, not ours"
            raise DecodingError(msg)
        return result

    def _transport_error(
        self, call: Call, exc: Exception, started: float
    ) -> VexoraError:
        elapsed_ms = (time.perf_counter() - started) * 1000
        logger.debug(
            "POST %s op=%s trade_no=%s failed=%s elapsed_ms=%.1f",
            call.operation.path,
            call.operation.label,
            call.trade_no,
            type(exc).__name__,
            elapsed_ms,
        )
        label, trade_no = call.operation.label, call.trade_no
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if isinstance(exc, _NOT_SENT):
            return ConnectError(
                f"could not reach the gateway ({reason}); nothing was sent",
                operation=label,
                trade_no=trade_no,
            )
        if call.operation.creates:
            return self._unknown(call, f"the exchange failed after sending ({reason})")
        if isinstance(exc, httpx.TimeoutException):
            return RequestTimeout(
                f"the gateway did not answer in time ({reason})",
                operation=label,
                trade_no=trade_no,
            )
        return TransportError(
            f"the exchange with the gateway failed ({reason})",
            operation=label,
            trade_no=trade_no,
        )

    def _status_error(self, call: Call, response: httpx.Response) -> VexoraError:
        status = response.status_code
        # 5xx (but 503, "unavailable"), 408 and anything unexpected after a
        # create may mean the gateway executed it.
        maybe_executed = (status >= 500 and status != 503) or status == 408  # noqa: PLR2004
        if call.operation.creates and maybe_executed:
            return self._unknown(call, f"the gateway answered HTTP {status}")
        excerpt = self._excerpt(response.content)
        return HTTPStatusError(
            f"the gateway answered HTTP {status}: {excerpt!r}",
            status_code=status,
            body_excerpt=excerpt,
            retry_after=_retry_after(response),
            operation=call.operation.label,
            trade_no=call.trade_no,
        )

    def _excerpt(self, content: bytes) -> str:
        text = content[: _EXCERPT_CHARS * 4].decode("utf-8", errors="replace")
        return self._redact(text)[:_EXCERPT_CHARS]

    def _redact(self, text: str) -> str:
        """Remove the secret and mask account-like digit runs from gateway text."""
        return mask_digit_runs(text.replace(self._secret.value, "<secret>"))

    def _unknown(self, call: Call, reason: str) -> OutcomeUnknown:
        logger.info(
            "attempt outcome unknown op=%s trade_no=%s: %s",
            call.operation.label,
            call.trade_no,
            reason,
        )
        return outcome_unknown(call.operation, call.trade_no, reason)

    def _log(
        self, call: Call, status: int, code: str | None, elapsed_ms: float
    ) -> None:
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "POST %s op=%s trade_no=%s http=%s code=%s elapsed_ms=%.1f",
                call.operation.path,
                call.operation.label,
                call.trade_no,
                status,
                code,
                elapsed_ms,
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


def _with_identity(exc: VexoraError, call: Call) -> VexoraError:
    exc.operation = call.operation.label
    exc.trade_no = call.trade_no
    return exc
