"""Retries with backoff under one deadline, and reconciliation of unknowns.

Two rules keep a payout from being paid twice or lost:

* A create is re-sent blindly only when it provably never reached the
  gateway (:class:`~vexora_async.ConnectError`) or the gateway said it did
  not take it (HTTP 429 or 503). Read-only calls retry on any transient
  failure.
* A create whose outcome is unknown (timeout or connection lost after
  sending, HTTP 5xx, code ``5000``, an unreadable answer) is *reconciled*:
  the retry layer asks the gateway for the tradeNo's status. If the gateway
  knows it, that is the answer. If it does not (code ``8000`` on the query),
  the same request, with the same tradeNo, is sent again: the gateway refuses
  a duplicate tradeNo, so this cannot pay twice, and a duplicate refusal
  sends us back to the query.

Everything, attempts, backoff sleeps and reconciliation queries, fits in
one deadline per call; what is still unknown then raises
:class:`~vexora_async.PayoutOutcomeUnknown`.

Why not stamina: its ``timeout`` stops *new* attempts but neither shortens
the attempt in flight nor caps the backoff sleep to the time left, so
``timeout=30`` could still run well past 30 s; and its process-wide
``set_active``/``set_testing`` switches would let a user's own test setup
silently turn off the retries that protect their payouts. The loop below is
small enough to read in one sitting.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import TYPE_CHECKING

import attrs

from ._models import DepositResult, DepositStatus, PayoutResult, PayoutStatus
from ._operations import Operation, outcome_unknown
from .exceptions import (
    ConnectError,
    DecodingError,
    GatewayError,
    HTTPStatusError,
    OutcomeUnknown,
    RequestRejected,
    TransportError,
    VexoraError,
)


if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from ._middleware import Call


logger = logging.getLogger("vexora_async")

#: Statuses after which a read-only call is worth another try.
_TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
#: Statuses that say the gateway did not take the request at all.
_NOT_TAKEN_STATUS = frozenset({429, 503})
_SYSTEM_EXCEPTION = "5000"


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How calls are retried and unknown outcomes reconciled.

    *max_retries*: extra attempts after a transient failure (per call).
    *deadline*: seconds for the whole call, every attempt, backoff and
    reconciliation query included. *backoff_initial* and *backoff_max*
    bound the exponential backoff (with jitter between half and the full
    value). *retry_after_max* caps how long a ``Retry-After`` may make us
    wait; a longer one ends the retries instead. *reconcile* turns the
    status-query reconciliation of unknown outcomes on; *resubmit* lets it
    re-send the same tradeNo when the gateway does not know it (this relies
    on the gateway refusing duplicate tradeNos; see "Gateway assumptions").
    *verify_rejections* makes a create refused with code ``8000`` ask the
    gateway whether the tradeNo exists after all (an earlier attempt, or a
    previous run of your process, may have created it).
    *max_reconcile_queries* bounds the status queries of one call.
    """

    max_retries: int = attrs.field(default=2, validator=attrs.validators.ge(0))
    deadline: float = attrs.field(default=60.0, validator=attrs.validators.gt(0))
    backoff_initial: float = attrs.field(default=0.25, validator=attrs.validators.ge(0))
    backoff_max: float = attrs.field(default=8.0, validator=attrs.validators.ge(0))
    retry_after_max: float = attrs.field(default=30.0, validator=attrs.validators.ge(0))
    reconcile: bool = True
    resubmit: bool = True
    verify_rejections: bool = True
    max_reconcile_queries: int = attrs.field(
        default=6, validator=attrs.validators.ge(1)
    )

    def backoff(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """Return the jittered backoff before retry number *attempt* + 1."""
        ceiling = min(self.backoff_max, self.backoff_initial * 2.0**attempt)
        return ceiling * (0.5 + rand() / 2)


def is_transient(exc: VexoraError) -> bool:
    """Tell whether a read-only call failing with *exc* is worth retrying."""
    if isinstance(exc, HTTPStatusError):
        return exc.status_code in _TRANSIENT_STATUS
    if isinstance(exc, RequestRejected):
        return False
    if isinstance(exc, GatewayError):
        return exc.code == _SYSTEM_EXCEPTION
    return isinstance(exc, (TransportError, DecodingError))


def was_not_taken(exc: VexoraError) -> bool:
    """Tell whether a create failing with *exc* provably did nothing."""
    if isinstance(exc, HTTPStatusError):
        return exc.status_code in _NOT_TAKEN_STATUS
    return isinstance(exc, ConnectError)


def as_create_result(status: object) -> PayoutResult | DepositResult:
    """Turn a status query's answer into the create call's result type."""
    if isinstance(status, (PayoutStatus, DepositStatus)):
        kind = PayoutResult if isinstance(status, PayoutStatus) else DepositResult
        return kind(
            trade_no=status.trade_no,
            status=status.status,
            platform_trade_no=status.platform_trade_no,
            message=status.message,
            remark=status.remark,
            amount=status.amount,
            raw=status.raw,
        )
    msg = f"a status query answered {type(status).__name__}"
    raise DecodingError(msg)


class RetryMiddleware:
    """Retries transient failures and reconciles unknown outcomes.

    The client puts it inside the idempotency layer and outside the signing
    step; see :doc:`/retries`. *sleep*, *clock* and *rand* are injectable
    for tests.
    """

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        clock: Callable[[], float] | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.policy = policy
        self._sleep = sleep
        self._clock = clock
        self._rand = rand

    def _now(self) -> float:
        return self._clock() if self._clock else asyncio.get_running_loop().time()

    async def __call__(
        self, call: Call, call_next: Callable[[Call], Awaitable[object]]
    ) -> object:
        """Run *call* with retries, reconciling a create's unknown outcome."""
        if not call.operation.creates:
            return await self._with_retries(call, call_next, is_transient)
        if call.reconcile_first and self.policy.reconcile:
            return await self._reconcile(call, call_next, "an earlier attempt")
        try:
            return await self._with_retries(call, call_next, was_not_taken)
        except OutcomeUnknown as exc:
            if not self.policy.reconcile:
                logger.warning(
                    "outcome unknown op=%s trade_no=%s (reconciliation is off): %s",
                    call.operation.label,
                    call.trade_no,
                    exc.message,
                )
                raise
            return await self._reconcile(call, call_next, exc.message)
        except RequestRejected as exc:
            if not self.policy.verify_rejections:
                raise
            return await self._verify_rejection(call, call_next, exc)

    async def _with_retries(
        self,
        call: Call,
        call_next: Callable[[Call], Awaitable[object]],
        retryable: Callable[[VexoraError], bool],
    ) -> object:
        max_retries = (
            self.policy.max_retries if call.max_retries is None else call.max_retries
        )
        attempt = 0
        while True:
            try:
                return await call_next(call)
            except VexoraError as exc:
                if attempt >= max_retries or not retryable(exc):
                    raise
                delay = self._delay(call, attempt, exc)
                if delay is None:
                    raise
            attempt += 1
            logger.info(
                "retrying op=%s trade_no=%s attempt=%d in %.2fs",
                call.operation.label,
                call.trade_no,
                attempt + 1,
                delay,
            )
            await self._sleep(delay)

    def _delay(self, call: Call, attempt: int, exc: VexoraError | None) -> float | None:
        """Return the backoff before the next attempt, or None if time is up."""
        retry_after = exc.retry_after if isinstance(exc, HTTPStatusError) else None
        if retry_after is not None:
            if retry_after > self.policy.retry_after_max:
                return None
            delay = retry_after
        else:
            delay = self.policy.backoff(attempt, self._rand)
        remaining = call.remaining(self._now())
        if remaining is not None and delay >= remaining:
            return None
        return delay

    async def _verify_rejection(
        self,
        call: Call,
        call_next: Callable[[Call], Awaitable[object]],
        rejection: RequestRejected,
    ) -> object:
        """Ask whether a create refused with code 8000 is known to the gateway."""
        query = _query_for(call)
        try:
            status = await self._with_retries(query, call_next, is_transient)
        except RequestRejected:
            raise rejection from None
        except VexoraError as exc:
            raise self._unknown(
                call,
                f"the gateway refused it (code {rejection.code}: {rejection.msg}) "
                f"and the status query to confirm failed ({exc})",
            ) from exc
        logger.warning(
            "op=%s trade_no=%s was refused with code %s but the gateway knows it",
            call.operation.label,
            call.trade_no,
            rejection.code,
        )
        return as_create_result(status)

    async def _reconcile(
        self,
        call: Call,
        call_next: Callable[[Call], Awaitable[object]],
        cause: str,
    ) -> object:
        """Find out what happened to a create by its tradeNo; see the module doc."""
        query = _query_for(call)
        reason = cause
        for round_no in range(self.policy.max_reconcile_queries):
            if round_no:
                delay = self._delay(call, round_no - 1, None)
                if delay is None:
                    break
                await self._sleep(delay)
            logger.info(
                "reconciling op=%s trade_no=%s query=%d",
                call.operation.label,
                call.trade_no,
                round_no + 1,
            )
            try:
                status = await call_next(query.evolve(max_retries=0))
            except RequestRejected:
                if not self.policy.resubmit:
                    reason = "the gateway does not know it (resubmission is off)"
                    continue
            except VexoraError as exc:
                reason = f"the status query failed ({exc})"
                continue
            else:
                return as_create_result(status)
            # The gateway does not know the tradeNo: send it again, same
            # tradeNo, fresh timestamp and sign.
            try:
                return await call_next(call.evolve(reconcile_first=False))
            except RequestRejected as exc:
                return await self._after_resubmit_refused(call, call_next, exc)
            except VexoraError as exc:
                reason = f"the re-submission failed ({exc})"
        raise self._unknown(call, f"still unknown when time ran out: {reason}")

    async def _after_resubmit_refused(
        self,
        call: Call,
        call_next: Callable[[Call], Awaitable[object]],
        refusal: RequestRejected,
    ) -> object:
        """Tell a duplicate refusal (the query finds it) from a real one."""
        try:
            status = await call_next(_query_for(call))
        except RequestRejected:
            # Not found and not accepted: the gateway refused this payout.
            raise refusal from None
        except VexoraError as exc:
            raise self._unknown(
                call, f"a re-submission was refused and the query failed ({exc})"
            ) from exc
        return as_create_result(status)

    def _unknown(self, call: Call, reason: str) -> OutcomeUnknown:
        logger.warning(
            "outcome unknown op=%s trade_no=%s: %s",
            call.operation.label,
            call.trade_no,
            reason,
        )
        return outcome_unknown(call.operation, call.trade_no, reason)


def _query_for(call: Call) -> Call:
    query = (
        Operation.GET_PAYOUT
        if call.operation is Operation.CREATE_PAYOUT
        else Operation.GET_DEPOSIT
    )
    trade_no = call.trade_no or ""
    return call.evolve(
        operation=query,
        params={"tradeNo": trade_no},
        reconcile_first=False,
        max_retries=None,
    )
