"""Retries with backoff under one deadline, and reconciliation of unknowns.

Two rules keep a payout from being paid twice or lost:

* A create is re-sent blindly only when it provably never reached the
  gateway (:class:`~vexora_async.ConnectError`). Any answer that is not the
  gateway's readable envelope, a 429 or a 503 included (a proxy answers
  them after forwarding too), leaves it unknown. Read-only calls retry on
  any transient failure.
* A create whose outcome is unknown (timeout or connection lost after
  sending, any HTTP status but 200, code ``5000``, an unreadable answer) is
  *reconciled*: the retry layer asks the gateway for the tradeNo's status.
  If the gateway knows it, that is the answer. If it does not (code
  ``8000`` on the query), the same request, with the same tradeNo, is sent
  again: the gateway refuses a duplicate tradeNo, so this cannot pay twice,
  and a duplicate refusal sends us back to the query.

For a gateway that does *not* refuse duplicate tradeNos
(``RetryPolicy(resubmit=False)``) a resend could pay twice, and so could a
first send of a tradeNo that an earlier run sent and whose ledger entry is
gone. In that mode nothing is re-sent after an unknown outcome, and every
create asks the gateway before its first send: it is sent only when the
query says the gateway does not hold the tradeNo.

A transaction found by a query is this create's only when
:func:`~vexora_async._outcomes.adopt_found` says so (same amount); another
one holding the tradeNo is a :class:`~vexora_async.TradeNoCollision`, and
nothing more is sent. Which failures are resent, retried or reconciled is
decided by :mod:`~vexora_async._outcomes`, not here.

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

from . import _validation as v
from ._operations import outcome_unknown
from ._outcomes import (
    CallIdentity,
    Comparison,
    Match,
    adopt_found,
    create_is_resendable,
    describe,
    read_is_retryable,
)
from .events import QueryResult, ReconciliationQuery, Resubmitted, RetryScheduled
from .exceptions import (
    ClientClosedError,
    DecodingError,
    HTTPStatusError,
    OutcomeUnknown,
    RequestRejected,
    TradeNoCollision,
    VexoraError,
)


if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from ._converter import WireCodec
    from ._middleware import Call


logger = logging.getLogger("vexora_async")


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How calls are retried and unknown outcomes reconciled.

    Give one to :class:`~vexora_async.VexoraClient` as ``retry=``. Every
    field is checked when the policy is built: a bad one raises
    :class:`~vexora_async.InvalidRequestError` naming it. Seconds are an
    ``int`` or ``float``, at most 86,400 (one day); NaN, infinities and
    ``bool`` are refused, and a switch must be ``True`` or ``False``,
    nothing merely truthy.

    :meth:`~vexora_async.VexoraClient.resolve_payout` asks the gateway
    first, whatever *reconcile* says (unless its ledger already holds the
    create as accepted); *resubmit* still decides whether it may send the
    request again.

    :param max_retries: Extra attempts after a transient failure, per
        call. Default ``2``. Valid: an ``int`` from 0 to 100. Cost: each is
        one more request and a backoff sleep, within *deadline*.
    :param deadline: Seconds for the whole call: every attempt, backoff
        sleep and reconciliation query included. Default ``60.0``. Valid:
        over 0. Cost: what is still unknown when it passes raises
        :class:`~vexora_async.PayoutOutcomeUnknown`; a longer one keeps a
        caller waiting that much longer on a gateway that does not answer.
    :param backoff_initial: The first backoff's ceiling, in seconds; it
        doubles with each retry up to *backoff_max*, and each sleep is
        jittered between half and the full ceiling. Default ``0.25``.
        Valid: 0 or more (0: no sleep). Cost: added to the call's time,
        within *deadline*.
    :param backoff_max: The largest backoff ceiling, in seconds. Default
        ``8.0``. Valid: 0 or more.
    :param retry_after_max: The longest a ``Retry-After`` (on a 429 or a
        503) may make a call wait, in seconds; a longer one ends the
        retries (for a create: the outcome stays unknown) instead of
        waiting. Default ``30.0``. Valid: 0 or more.
    :param reconcile: Settle a create's unknown outcome by a status query
        under its tradeNo. Default ``True``. Off, an unknown outcome raises
        :class:`~vexora_async.PayoutOutcomeUnknown` at once, and nothing is
        sent again. Cost: one query or more per unknown outcome.
    :param resubmit: The gateway refuses a duplicate tradeNo, so
        reconciliation may send the same tradeNo again when the gateway
        does not know it. Default ``True``. ``False`` is the mode for a
        gateway that does not refuse duplicates: nothing is re-sent after
        an unknown outcome, and every create asks the gateway for its
        tradeNo before its first send, so that a tradeNo sent before (by an
        earlier run, or recorded in a ledger that has since forgotten it)
        is never sent again; see "Gateway assumptions". Cost of ``False``:
        one status query per create, its round trip added to the create's
        latency.
    :param verify_rejections: Make a create refused with code ``8000`` ask
        the gateway whether the tradeNo exists after all (an earlier
        attempt, or a previous run of your process, may have created it).
        Default ``True``. Off, the refusal comes back unconfirmed
        (``RequestRejected.confirmed == False``). Cost: one status query
        per refused create.
    :param max_reconcile_queries: The most status queries of one call.
        Default ``6``. Valid: an ``int`` from 1 to 100. Cost: each query is
        a request; the deadline bounds them too.
    :param adopt_unchecked: Report a payout found by a status query whose
        answer carries no amount as this request's. Default ``False``: it
        stays an unknown outcome, since it cannot be told apart from
        another payout holding the same tradeNo (see :doc:`/retries`).
    """

    # Each check raises InvalidRequestError naming the field (NaN, infinity,
    # a bool or more than a day of seconds included); see _validation.
    max_retries: int = attrs.field(default=2, validator=v.validator(v.check_retries))
    deadline: float = attrs.field(default=60.0, validator=v.validator(v.check_seconds))
    backoff_initial: float = attrs.field(
        default=0.25, validator=v.validator(v.check_delay)
    )
    backoff_max: float = attrs.field(default=8.0, validator=v.validator(v.check_delay))
    retry_after_max: float = attrs.field(
        default=30.0, validator=v.validator(v.check_delay)
    )
    reconcile: bool = attrs.field(default=True, validator=v.validator(v.check_flag))
    resubmit: bool = attrs.field(default=True, validator=v.validator(v.check_flag))
    verify_rejections: bool = attrs.field(
        default=True, validator=v.validator(v.check_flag)
    )
    max_reconcile_queries: int = attrs.field(
        default=6, validator=v.validator(v.check_attempts)
    )
    adopt_unchecked: bool = attrs.field(
        default=False, validator=v.validator(v.check_flag)
    )

    def backoff(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """Return the jittered backoff before retry number *attempt* + 1."""
        ceiling = min(self.backoff_max, self.backoff_initial * 2.0**attempt)
        return ceiling * (0.5 + rand() / 2)


class RetryMiddleware:
    """Retries transient failures and reconciles unknown outcomes.

    The client puts it inside the idempotency layer and outside the signing
    step; see :doc:`/retries`. *codec* builds a create's result from a
    status query's answer. *sleep*, *clock* and *rand* are injectable for
    tests.
    """

    def __init__(
        self,
        policy: RetryPolicy,
        codec: WireCodec,
        *,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        clock: Callable[[], float] | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.policy = policy
        self._codec = codec
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
            return await self._with_retries(call, call_next, read_is_retryable)
        if call.resolve or (call.reconcile_first and self.policy.reconcile):
            return await self._reconcile(call, call_next, "an earlier attempt")
        if call.reconcile_first:
            # Sending again would answer "duplicate" for a paid payout; only
            # a query can tell, and the policy forbids queries here.
            raise self._unknown(
                call,
                "an earlier attempt's outcome is unknown and reconciliation is "
                "off, so nothing was sent",
            )
        if not self.policy.resubmit:
            found = await self._look_before_sending(call, call_next)
            if found is not _ABSENT:
                return found
        try:
            return await self._with_retries(call, call_next, create_is_resendable)
        except OutcomeUnknown as exc:
            if not self.policy.reconcile:
                logger.warning(
                    "outcome unknown op=%s trade_no=%s (reconciliation is off): %s",
                    call.label,
                    call.trade_no,
                    exc.message,
                )
                raise
            return await self._reconcile(call, call_next, exc.message, exc)
        except RequestRejected as exc:
            if not self.policy.verify_rejections:
                exc.message += _UNCONFIRMED
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
                reason = type(exc).__name__
                retry_after = (
                    exc.retry_after if isinstance(exc, HTTPStatusError) else None
                )
            attempt += 1
            logger.info(
                "retry %d of %d op=%s trade_no=%s in %.2fs after %s",
                attempt,
                max_retries,
                call.label,
                call.trade_no,
                delay,
                reason,
                extra={
                    "operation": call.label,
                    "trade_no": call.trade_no,
                    "attempt": attempt + 1,
                    "retry_reason": reason,
                },
            )
            if call.trace is not None:
                call.trace.emit(
                    RetryScheduled(
                        operation=call.trace.operation,
                        trade_no=call.trade_no,
                        attempt=attempt + 1,
                        of=max_retries + 1,
                        delay=delay,
                        reason=reason,
                        retry_after=retry_after,
                    )
                )
            await self._sleep(delay)

    def _delay(
        self, call: Call, attempt: int, exc: BaseException | None
    ) -> float | None:
        """Return the backoff before the next attempt, or None if time is up."""
        retry_after = _retry_after(exc)
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

    async def _look_before_sending(
        self, call: Call, call_next: Callable[[Call], Awaitable[object]]
    ) -> object:
        """Prove the gateway does not hold the tradeNo before a first send.

        Returns :data:`_ABSENT` when the query says so (code ``8000``), the
        create's result when the gateway holds this payout, and raises when
        it holds another one or the query fails.
        """
        query = _query_for(call)
        try:
            status = await self._with_retries(query, call_next, read_is_retryable)
        except RequestRejected:
            _queried(call, 0, QueryResult.NOT_FOUND)
            return _ABSENT
        except ClientClosedError as exc:
            raise ClientClosedError(
                operation=call.label, trade_no=call.trade_no
            ) from exc
        except VexoraError as exc:
            _queried(call, 0, QueryResult.FAILED)
            # Unknown, not "not executed": an earlier run may have sent it.
            raise self._unknown(
                call,
                "nothing was sent by this call, but the status query that must "
                "come before a first send (resubmit=False) failed, so whether the "
                f"gateway already holds this tradeNo is unknown ({exc})",
            ) from exc
        return self._adopt(call, status)

    async def _verify_rejection(
        self,
        call: Call,
        call_next: Callable[[Call], Awaitable[object]],
        rejection: RequestRejected,
    ) -> object:
        """Ask whether a create refused with code 8000 is known to the gateway."""
        query = _query_for(call)
        try:
            status = await self._with_retries(query, call_next, read_is_retryable)
        except RequestRejected:
            _queried(call, 0, QueryResult.NOT_FOUND)
            rejection.confirmed = True
            raise rejection from None
        except VexoraError as exc:
            raise self._unknown(
                call,
                f"the gateway refused it (code {rejection.code}: {rejection.msg}) "
                f"and the status query to confirm failed ({exc})",
            ) from exc
        result = self._adopt(call, status)
        logger.warning(
            "op=%s trade_no=%s was refused with code %s but the gateway knows it",
            call.label,
            call.trade_no,
            rejection.code,
        )
        return result

    async def _reconcile(
        self,
        call: Call,
        call_next: Callable[[Call], Awaitable[object]],
        cause: str,
        after: BaseException | None = None,
    ) -> object:
        """Find out what happened to a create by its tradeNo; see the module doc.

        *after* is the error that made it unknown: a ``Retry-After`` behind
        it (a 429 or a 503) is waited for before the first query.
        """
        query = _query_for(call)
        reason = cause
        last = after
        for round_no in range(self.policy.max_reconcile_queries):
            if not await self._pause(call, round_no, last):
                break
            logger.info(
                "reconciling op=%s trade_no=%s query=%d",
                call.label,
                call.trade_no,
                round_no + 1,
                extra={"operation": call.label, "trade_no": call.trade_no},
            )
            try:
                status = await call_next(query.evolve(max_retries=0))
            except RequestRejected:
                _queried(call, round_no, QueryResult.NOT_FOUND)
                if not self.policy.resubmit:
                    reason = "the gateway does not know it (resubmission is off)"
                    continue
            except VexoraError as exc:
                _queried(call, round_no, QueryResult.FAILED)
                reason = self._why(call, "the status query", exc)
                last = exc
                continue
            else:
                return self._adopt_after_send(call, status, round_no)
            # The gateway does not know the tradeNo: send it again, same
            # tradeNo, fresh timestamp and sign.
            _resubmitted(call)
            try:
                return await call_next(call.evolve(reconcile_first=False))
            except RequestRejected as exc:
                return await self._after_resubmit_refused(call, call_next, exc)
            except VexoraError as exc:
                reason = self._why(call, "the re-submission", exc)
                last = exc
        raise self._unknown(
            call, f"still unknown when time ran out: {reason}"
        ) from last

    async def _pause(
        self, call: Call, round_no: int, last: BaseException | None
    ) -> bool:
        """Wait before reconciliation round *round_no*; False when time is up."""
        if not round_no and _retry_after(last) is None:
            return True  # the first query goes at once
        delay = self._delay(call, max(round_no - 1, 0), last)
        if delay is None:
            return False
        await self._sleep(delay)
        return True

    def _why(self, call: Call, what: str, exc: VexoraError) -> str:
        """Say why a reconciliation round failed; end it if the client closed."""
        if isinstance(exc, ClientClosedError):
            # No later round can do better: end now, not at the deadline.
            raise self._unknown(
                call, "the client was closed before the outcome was found"
            ) from exc
        return f"{what} failed ({exc})"

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
            _queried(call, 0, QueryResult.NOT_FOUND)
            refusal.confirmed = True
            raise refusal from None
        except VexoraError as exc:
            raise self._unknown(
                call, f"a re-submission was refused and the query failed ({exc})"
            ) from exc
        return self._adopt(call, status)

    def _adopt_after_send(self, call: Call, status: object, query: int) -> object:
        """Adopt what a query found for a create that may have been sent."""
        try:
            return self._adopt(call, status, query)
        except TradeNoCollision as exc:
            if self.policy.resubmit:
                # The gateway refuses duplicates: ours was refused.
                raise
            # A gateway that takes duplicates may hold ours as well.
            what = describe(
                Comparison(
                    Match.DIFFERENT, exc.field, exc.requested_amount, exc.found_amount
                )
            )
            raise self._unknown(
                call,
                f"the gateway holds this tradeNo for another transaction ({what}), "
                "and this payout may have been sent to it, a gateway that does not "
                "refuse duplicate tradeNos (resubmit=False)",
            ) from exc

    def _adopt(self, call: Call, status: object, query: int = 0) -> object:
        """Report a transaction found by a query as this create's, if it is."""
        who = CallIdentity(call.operation, call.trade_no, call.label)
        try:
            result = adopt_found(
                who,
                call.params,
                status,
                self._codec,
                adopt_unchecked=self.policy.adopt_unchecked,
            )
        except TradeNoCollision:
            _queried(call, query, QueryResult.COLLISION)
            raise
        except DecodingError as exc:
            _queried(call, query, QueryResult.FAILED)
            raise self._unknown(call, f"the status answer is unusable ({exc})") from exc
        _queried(call, query, QueryResult.FOUND)
        if call.trace is not None:
            call.trace.reconciled = True
        return result

    def _unknown(self, call: Call, reason: str) -> OutcomeUnknown:
        logger.warning(
            "outcome unknown op=%s trade_no=%s: %s",
            call.label,
            call.trade_no,
            reason,
        )
        return outcome_unknown(call.operation, call.trade_no, reason, label=call.label)


def _retry_after(exc: BaseException | None) -> float | None:
    """Return the Retry-After of a 429 or 503, also behind an unknown outcome."""
    for error in (exc, getattr(exc, "__cause__", None)):
        if isinstance(error, HTTPStatusError):
            return error.retry_after
    return None


#: What :meth:`RetryMiddleware._look_before_sending` returns when the gateway
#: does not hold the tradeNo.
_ABSENT = object()


def _resubmitted(call: Call) -> None:
    if call.trace is not None:
        call.trace.emit(Resubmitted(operation=call.label, trade_no=call.trade_no))


def _queried(call: Call, round_no: int, result: QueryResult) -> None:
    if call.trace is not None:
        call.trace.emit(
            ReconciliationQuery(
                operation=call.label,
                trade_no=call.trade_no,
                query=round_no + 1,
                result=result,
            )
        )


_UNCONFIRMED = (
    "; not confirmed by a status query (verify_rejections is off): if this "
    "tradeNo may have been sent before (an earlier run, a ledger entry that was "
    "forgotten), it may have been paid, so query it before you treat it as failed"
)


def _query_for(call: Call) -> Call:
    query = call.operation.status_query
    if query is None:  # pragma: no cover - only creates are reconciled
        msg = f"{call.operation.label} has no status query"
        raise TypeError(msg)
    trade_no = call.trade_no or ""
    return call.evolve(
        operation=query,
        params={"tradeNo": trade_no},
        reconcile_first=False,
        max_retries=None,
    )
