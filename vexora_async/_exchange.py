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
import functools
import logging
import time
from typing import TYPE_CHECKING

import attrs
import httpx

from . import _json
from ._deadline import run_until
from ._masking import Params, Payload, mask_digit_runs, mask_name
from ._outcomes import (
    ANSWER_STATUS,
    CallIdentity,
    Executed,
    HTTPAnswer,
    Outcome,
    Phase,
    TransportFailure,
    interpret,
)
from ._signer import sign_checked
from ._transports import SendFailed
from .events import AttemptFinished, LimiterWait
from .exceptions import ClientClosedError, ConnectError


if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from ._converter import WireCodec
    from ._middleware import Call
    from ._operations import Operation
    from ._secret import Secret
    from ._transports import Port, Reply
    from .events import Trace


logger = logging.getLogger("vexora_async")


class Exchange:
    """Sends one attempt of a call; the innermost handler of the onion.

    Holds what every attempt needs: the *port* the bytes go through, the
    *secret*, the *clock* for ``timestamp``, the *codec*, the *urls* per
    operation, the default *timeout* (``None``: the port's), and a limiter
    of *max_connections* slots in front of the pool.
    """

    def __init__(
        self,
        *,
        port: Port,
        secret: Secret,
        clock: Callable[[], int],
        codec: WireCodec,
        urls: Mapping[Operation, str],
        timeout: httpx.Timeout | None,
        max_connections: int,
    ) -> None:
        self._port = port
        self._secret = secret
        self._clock = clock
        self._codec = codec
        self._urls = urls
        self._timeout = timeout
        #: The last base timeout seen and its longest phase.
        self._longest_of: tuple[httpx.Timeout | None, float] = (None, 0.0)
        self.limiter = asyncio.Semaphore(max_connections)
        self.closed = False

    def is_closed(self) -> bool:
        """Tell whether the client closed (or the HTTP client under it did)."""
        return self.closed or self._port.is_closed

    async def __call__(self, call: Call) -> object:
        """Send one attempt of *call*; return its result record or raise.

        Stamps a fresh ``timestamp`` and ``sign``, POSTs, reads a bounded
        answer, all by the call's deadline, and lets
        :mod:`~vexora_async._outcomes` decide what the answer means.
        """
        if self.is_closed():
            raise ClientClosedError(operation=call.label, trade_no=call.trade_no)
        # Params: its repr masks the account and name in recorded locals.
        fields: dict[str, str] = Params(call.params)
        fields["timestamp"] = str(self._clock())
        fields["sign"] = sign_checked(fields, self._secret)
        started = time.perf_counter()
        await self._acquire(call)
        try:
            if self.is_closed():
                # Closed while this call queued for a connection.
                raise ClientClosedError(operation=call.label, trade_no=call.trade_no)
            facts, cause = await self._exchange(
                self._urls[call.operation],
                Payload(_json.dumps(fields)),
                self._attempt_timeout(call),
                call.deadline,
            )
        finally:
            self.limiter.release()
        redact = functools.partial(_redact, self._secret, call.params, fields)
        outcome = interpret(facts, _identity(call), self._codec, redact)
        if (
            isinstance(facts, TransportFailure)
            and outcome.executed is Executed.NO
            and self.is_closed()
        ):
            # Cut by the client's closing; a create that may have left stays
            # an unknown outcome (executed MAYBE), never this.
            sent = "nothing was sent; " if facts.phase is Phase.NOT_SENT else ""
            error = ClientClosedError(
                f"the client was closed during this call; {sent}retry on a live client",
                operation=call.label,
                trade_no=call.trade_no,
            )
            outcome = attrs.evolve(outcome, error=error)
        self._log(call, facts, outcome, started)
        if call.trace is not None:
            _trace_attempt(call, call.trace, facts, outcome, started)
        if outcome.error is not None:
            raise outcome.error from (cause or outcome.error.__cause__)
        return outcome.result

    async def _exchange(
        self, url: str, body: bytes, timeout: httpx.Timeout, deadline: float | None
    ) -> tuple[TransportFailure | HTTPAnswer, BaseException | None]:
        """POST and read the answer, all by *deadline*; return its facts."""
        try:
            reply = await self._port.send(url, body, timeout, deadline)
        except TimeoutError as exc:
            # Cut off mid-exchange: the request may have left.
            reason = "the call's deadline passed during the exchange"
            failure = TransportFailure(Phase.MAYBE_SENT, timed_out=True, reason=reason)
            return failure, exc
        except SendFailed as exc:
            return exc.failure, exc.__cause__
        # A port's own bug must not pass for "nothing sent": it may have left.
        except Exception as exc:  # noqa: BLE001 - classified, then raised as ours
            reason = f"{type(exc).__name__}: {exc}"
            return TransportFailure(Phase.MAYBE_SENT, False, reason), exc
        return _answer(reply), None

    async def _acquire(self, call: Call) -> None:
        """Wait for a free connection slot, but not past the call's deadline."""
        if call.deadline is None or not self.limiter.locked():
            await self.limiter.acquire()  # free slot: no wait, no timer
            return
        queued = time.perf_counter()
        try:
            await run_until(
                self.limiter.acquire(),
                call.deadline,
                # Granted as the caller was cancelled: give the permit back.
                undo=lambda _: self.limiter.release(),
            )
        except TimeoutError:
            raise ConnectError(
                "the call's deadline passed while it waited for a free connection; "
                "nothing was sent",
                operation=call.label,
                trade_no=call.trade_no,
            ) from None
        finally:
            if call.trace is not None:
                waited = time.perf_counter() - queued
                call.trace.emit(
                    LimiterWait(
                        operation=call.trace.operation,
                        trade_no=call.trade_no,
                        waited=waited,
                    )
                )

    def _attempt_timeout(self, call: Call) -> httpx.Timeout:
        """Return this attempt's timeouts, cut to what is left of the deadline."""
        base = call.timeout or self._timeout or self._port.default_timeout
        if base is not self._longest_of[0]:
            self._longest_of = (base, _longest(base))
        remaining = call.remaining(asyncio.get_running_loop().time())
        if remaining is None or remaining >= self._longest_of[1]:
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


def _redact(
    secret: Secret, params: Mapping[str, str], sent: Mapping[str, str], text: str
) -> str:
    """Clean text a gateway or a proxy sent back before it goes into an error.

    It may echo our request: the secret, the sign, the beneficiary's name
    and account must not reach the caller's logs through an error message.
    """
    text = text.replace(secret.value, "<secret>")
    signed = sent.get("sign")
    if signed:
        text = text.replace(signed, "<sign>")
    name = params.get("name")
    if name:
        text = text.replace(name, mask_name(name))
    return mask_digit_runs(text)


def _trace_attempt(
    call: Call,
    trace: Trace,
    facts: TransportFailure | HTTPAnswer,
    outcome: Outcome,
    started: float,
) -> None:
    trace.attempts += 1
    if outcome.code is not None:
        trace.gateway_code = outcome.code
    trace.emit(
        AttemptFinished(
            operation=trace.operation,
            attempt_operation=call.operation.label,
            trade_no=call.trade_no,
            attempt=trace.attempts,
            http_status=facts.status if isinstance(facts, HTTPAnswer) else None,
            gateway_code=outcome.code,
            elapsed=time.perf_counter() - started,
            may_have_executed=(
                outcome.executed.value if call.operation.creates else None
            ),
            error_type=None if outcome.error is None else type(outcome.error).__name__,
        )
    )


def _identity(call: Call) -> CallIdentity:
    params = call.params if call.operation.creates else None
    return CallIdentity(call.operation, call.trade_no, call.label, params)


def _answer(reply: Reply) -> HTTPAnswer:
    # Retry-After matters only to a refusal (429, 503) that may be retried.
    retry_after = None if reply.status == ANSWER_STATUS else _retry_after(reply.headers)
    return HTTPAnswer(reply.status, reply.body, retry_after, problem=reply.problem)


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("Retry-After")
    if value is None:
        return None
    # delay-seconds is digits only; float() would also take "inf" and "nan".
    seconds = value.strip()
    if seconds.isascii() and seconds.isdigit():
        return float(seconds)
    from email.utils import parsedate_to_datetime

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
