"""Idempotency on tradeNo: one logical create is one execution.

The outermost layer of the onion, for creates only. Concurrent calls with
the same tradeNo and payload share one execution; the same tradeNo with a
different payload is refused before anything is sent; a tradeNo the
ledger already settled is answered from the ledger, without a request; one
whose outcome is unknown is reconciled (status query first), never blindly
re-sent.

The ledger's work keeps to the call's deadline: a claim not answered by
then is a :class:`~vexora_async.LedgerError` (nothing was sent), and the
caller waits for the outcome's record at most :data:`LEDGER_MARGIN`
seconds past it; a write still running then finishes in the background
(:meth:`IdempotencyMiddleware.drain`). A claim whose answer never came is
given back with the fencing token chosen before it was sent.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import sys
import time
from typing import TYPE_CHECKING, TypeVar

from . import _json
from ._codes import ResponseCode
from ._operations import outcome_unknown
from ._outcomes import Executed, result_from_data, verdict
from .events import LedgerAction, LedgerEvent
from .exceptions import (
    ConflictingRequestError,
    LedgerError,
    RequestRejected,
    TradeNoCollision,
    VexoraError,
)
from .ledgers._protocol import Claim, EntryState, Ledger, LedgerEntry, new_token


if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine, Mapping

    from ._converter import WireCodec
    from ._middleware import Call
    from .events import Trace
    from .exceptions import OutcomeUnknown


logger = logging.getLogger("vexora_async")

T = TypeVar("T")

#: How many seconds past its deadline a create may still wait for the ledger
#: to record its outcome (a healthy store takes milliseconds). A record
#: still running then goes on in the background, and the caller has its
#: answer: the money's outcome never waits on the ledger.
LEDGER_MARGIN = 0.5

#: Backoff between tries to give back a claim whose answer was lost, while
#: the store keeps failing (doubling from the first, up to the second).
_GIVE_BACK_DELAYS = (0.1, 2.0)

#: Fields that do not change what money moves; a retry may differ in them.
_NOT_FINGERPRINTED = frozenset({"notifyUrl", "returnUrl", "remark"})


def fingerprint(params: Mapping[str, str]) -> str:
    """Identify a create's payload (amount, account, name, bank, ...)."""
    payload = {k: v for k, v in params.items() if k not in _NOT_FINGERPRINTED}
    return hashlib.sha256(_json.dumps_sorted(payload)).hexdigest()


class _LeaderCancelled(Exception):
    """The task executing a shared call was cancelled; a follower takes over."""


class _Shared:
    """A create in flight in this process; followers wait on its future."""

    __slots__ = ("fingerprint", "future")

    def __init__(self, fingerprint: str) -> None:
        self.fingerprint = fingerprint
        #: Made by the first follower: most calls never have one.
        self.future: asyncio.Future[object] | None = None


def _settle_followers(
    shared: _Shared, *, result: object = None, exception: BaseException | None = None
) -> None:
    """Hand the leader's outcome to the followers waiting, if any."""
    future = shared.future
    if future is None:
        return
    if exception is None:
        future.set_result(result)
    else:
        future.set_exception(exception)
        # Marked retrieved: the followers may all have been cancelled.
        future.exception()


class IdempotencyMiddleware:
    """Claims a tradeNo in the *ledger* before sending, settles it after.

    *namespace* (the merchant number) keeps tradeNos of different merchants
    apart in a shared ledger. *lease* is how long an ``IN_FLIGHT`` claim of
    another worker is respected before it is presumed dead.
    """

    def __init__(
        self,
        ledger: Ledger,
        codec: WireCodec,
        *,
        namespace: str,
        lease: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ledger = ledger
        self._codec = codec
        self._namespace = namespace
        self._lease = lease
        self._clock = clock
        self._inflight: dict[str, _Shared] = {}
        #: Ledger writes that outlive their caller (cancelled, or past its
        #: deadline); see drain().
        self._writes: set[asyncio.Task[None]] = set()
        #: Set by drain(): stop retrying to give claims back; the lease will.
        self._closing = False
        self._closed: asyncio.Future[None] | None = None

    def key(self, call: Call) -> str:
        """Return the ledger key of a create: merchant, operation and tradeNo."""
        return f"{self._namespace}:{call.operation.label}:{call.trade_no}"

    async def __call__(
        self, call: Call, call_next: Callable[[Call], Awaitable[object]]
    ) -> object:
        """Run *call* at most once per tradeNo; see the module docstring."""
        if not call.operation.creates or call.trade_no is None:
            return await call_next(call)
        key = self.key(call)
        print_ = fingerprint(call.params)
        while (shared := self._inflight.get(key)) is not None:
            if shared.fingerprint != print_:
                raise _conflict(call)
            if shared.future is None:
                shared.future = asyncio.get_running_loop().create_future()
            try:
                # shield: a cancelled follower must not cancel the leader.
                return await asyncio.shield(shared.future)
            except _LeaderCancelled:
                continue  # the leader was cancelled; take over
        shared = self._inflight[key] = _Shared(print_)
        try:
            result = await self._execute(key, print_, call, call_next)
        except asyncio.CancelledError:
            _settle_followers(shared, exception=_LeaderCancelled())
            raise
        except BaseException as exc:
            _settle_followers(shared, exception=exc)
            raise
        else:
            _settle_followers(shared, result=result)
            return result
        finally:
            del self._inflight[key]

    async def _execute(
        self,
        key: str,
        print_: str,
        call: Call,
        call_next: Callable[[Call], Awaitable[object]],
    ) -> object:
        claim = await self._claim(key, print_, call)
        if not claim.granted:
            return self._answer_from_ledger(call, claim)
        _ledger_event(call, _claim_action(claim))
        token = claim.token or ""
        if claim.prior is not None:
            call = call.evolve(reconcile_first=True)
        try:
            result = await call_next(call)
        except VexoraError as exc:
            await self._finish(
                self._settle_failure(key, token, print_, claim, exc, trace=call.trace),
                call,
            )
            raise
        except BaseException:
            # Unknown outcomes, cancellation, anything unexpected: never
            # leave the entry in flight, so the next call reconciles.
            await self._finish(
                self._settle(key, token, print_, EntryState.UNKNOWN, trace=call.trace),
                call,
            )
            raise
        raw = getattr(result, "raw", None)
        # In a task too: the answer is in, and a cancellation now must not
        # leave the entry in flight (a store may drop a write not yet begun).
        await self._finish(
            self._settle(
                key, token, print_, EntryState.ACCEPTED, data=raw, trace=call.trace
            ),
            call,
        )
        return result

    async def _claim(self, key: str, print_: str, call: Call) -> Claim:
        """Claim *key* by the call's deadline, or raise LedgerError."""
        # Chosen before the claim is sent, so that a claim whose answer is
        # lost can still be given back: nobody else holds this token.
        token = new_token()
        loop = asyncio.get_running_loop()
        claiming = _start(
            loop, self.ledger.claim(key, print_, lease=self._lease, token=token)
        )
        if not claiming.done():
            remaining = call.remaining(loop.time())
            try:
                # asyncio.wait cancels nothing, at the deadline or when the
                # caller is cancelled: a store's claim cut half-way may still
                # commit (a thread, a server), and then it must be given back.
                done, _ = await asyncio.wait(
                    (claiming,),
                    timeout=None if remaining is None else max(remaining, 0),
                )
            except asyncio.CancelledError:
                self._spawn(self._give_back_late(claiming, key, print_, token))
                raise
            if not done:
                self._spawn(self._give_back_late(claiming, key, print_, token))
                raise _claim_failed(call, "no answer within the call's deadline")
        try:
            return claiming.result()
        # A ledger is user-pluggable: whatever its store raises, the caller
        # learns that nothing was sent.
        except Exception as exc:
            # The store may have committed the claim before it failed to
            # answer (a timeout, a dropped connection): give it back, or its
            # tradeNo would stay blocked for the lease with nothing sent.
            self._spawn(self._give_back(key, token))
            raise _claim_failed(call, repr(exc)) from exc

    async def _finish(
        self, record: Coroutine[object, object, None], call: Call
    ) -> None:
        """Run a ledger write to its end, waiting for it until the margin.

        Past the call's deadline plus :data:`LEDGER_MARGIN`, or if the
        caller is cancelled, the write goes on in the background.
        """
        task = self._spawn(record)
        if task.done():
            return
        loop = asyncio.get_running_loop()
        remaining = call.remaining(loop.time())
        # asyncio.wait, like shield, leaves the write running when the
        # caller is cancelled or its time is up.
        await asyncio.wait(
            (task,),
            timeout=None if remaining is None else max(remaining + LEDGER_MARGIN, 0),
        )

    def _spawn(self, record: Coroutine[object, object, None]) -> asyncio.Task[None]:
        task = _start(asyncio.get_running_loop(), record)
        if task.done():
            return task  # nothing left to wait for on closing
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)
        return task

    async def _give_back_late(
        self, claiming: asyncio.Task[Claim], key: str, print_: str, token: str
    ) -> None:
        """Give back a claim that ends after its caller stopped waiting.

        Tracked like a write, so that closing the client waits for it.
        """
        # asyncio.wait: a cancellation of this task must not cut the claim.
        await asyncio.wait((claiming,))
        if claiming.cancelled():
            return  # only as the loop closes: nothing runs now; the lease frees it
        if claiming.exception() is not None:
            # Its answer is lost: the token we chose gives it back anyway.
            await self._give_back(key, token)
            return
        claim = claiming.result()
        if not claim.granted:
            return
        token = claim.token or token
        if claim.prior is not None:  # an earlier attempt is unknown: it stays so
            await self._settle(key, token, print_, EntryState.UNKNOWN)
        else:  # nothing was sent under this claim
            await self._record(lambda: self.ledger.release(key, token=token), key)

    async def _give_back(self, key: str, token: str) -> None:
        """Release a claim whose answer was lost, retrying while the store fails.

        Release is fenced by *token*: it changes nothing if the claim never
        committed, and a claim that took an entry over reverts to unknown.
        """
        await self._write(
            lambda: self.ledger.release(key, token=token),
            key,
            "give back a claim whose answer was lost",
        )

    async def _write(
        self, write: Callable[[], Awaitable[bool]], key: str, what: str
    ) -> bool | None:
        """Run a ledger *write*, again while its store fails; None if it never did.

        An entry left in flight blocks its tradeNo for the whole lease (every
        call meanwhile gets "another worker is sending"), so a write that
        failed, on a store that stalled or a connection that broke, is tried
        again until the lease would have freed the claim anyway, or the
        client closes. Each write is fenced by its token, and a write sent
        again whose first try landed reports as the first would have.
        """
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + self._lease
        delay, longest = _GIVE_BACK_DELAYS
        while True:
            try:
                return await write()
            except Exception:
                if self._closing or loop.time() + delay >= give_up_at:
                    logger.exception(
                        "the ledger failed to %s on key=%s; the tradeNo waits for "
                        "the claim lease, then the next call asks the gateway",
                        what,
                        key,
                    )
                    return None
            if self._closed is None:
                self._closed = loop.create_future()
            # Woken early by drain(): a closing client stops retrying.
            await asyncio.wait((self._closed,), timeout=delay)
            delay = min(2 * delay, longest)

    async def drain(self) -> None:
        """Wait for the ledger writes still under way (on closing the client).

        A claim still being given back gets one last try, not the retries
        left until its lease.
        """
        self._closing = True
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)
        while self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)

    async def _settle_failure(
        self,
        key: str,
        token: str,
        print_: str,
        claim: Claim,
        exc: VexoraError,
        *,
        trace: Trace | None,
    ) -> None:
        """Record what a create that failed with *exc* leaves behind."""
        if isinstance(exc, RequestRejected) and exc.confirmed:
            await self._settle(
                key,
                token,
                print_,
                EntryState.REJECTED,
                code=exc.code,
                msg=exc.msg,
                trace=trace,
            )
        elif isinstance(exc, (RequestRejected, TradeNoCollision)):
            # An unconfirmed refusal may be the duplicate refusal of a paid
            # payout, and a collision leaves the tradeNo taken: the next call
            # must ask the gateway, not answer from here.
            await self._settle(key, token, print_, EntryState.UNKNOWN, trace=trace)
        elif verdict(exc) is not Executed.NO or claim.prior is not None:
            # May have executed now, or an earlier attempt's outcome is
            # unknown and this one changed nothing: unknown it stays.
            await self._settle(key, token, print_, EntryState.UNKNOWN, trace=trace)
        else:
            await self._record(
                lambda: self.ledger.release(key, token=token), key, trace
            )

    async def _settle(
        self,
        key: str,
        token: str,
        print_: str,
        state: EntryState,
        *,
        data: Mapping[str, object] | None = None,
        code: str | None = None,
        msg: str | None = None,
        trace: Trace | None = None,
    ) -> None:
        entry = LedgerEntry(
            state=state,
            fingerprint=print_,
            updated_at=self._clock(),
            data=data,
            code=code,
            msg=msg,
        )
        await self._record(
            lambda: self.ledger.settle(key, entry, token=token), key, trace
        )

    async def _record(
        self,
        write: Callable[[], Awaitable[bool]],
        key: str,
        trace: Trace | None = None,
    ) -> None:
        # The outcome is already decided at the gateway: a ledger that fails
        # to record it must not turn a paid payout into an error for the
        # caller. It is tried again in the background (see _write); if it
        # never lands, the next call with this tradeNo reconciles once the
        # lease runs out.
        applied = await self._write(write, key, "record an outcome")
        self._recorded(key, applied=applied, trace=trace)

    def _recorded(self, key: str, *, applied: bool | None, trace: Trace | None) -> None:
        """Report a ledger write: failed (None, logged), fenced off (False) or done."""
        if applied is None:
            _emit_ledger(trace, LedgerAction.SETTLE_FAILED)
        elif applied is False:
            # Our claim outlived its lease and another worker took the
            # tradeNo over: its record wins; it reconciles with the gateway.
            logger.warning(
                "the ledger fenced off a stale claim on key=%s: another worker "
                "took this tradeNo over after the claim lease ran out; its "
                "record stands",
                key,
            )
            _emit_ledger(trace, LedgerAction.FENCED)

    def _answer_from_ledger(self, call: Call, claim: Claim) -> object:
        prior = claim.prior
        if prior is None:  # pragma: no cover - a refused claim always says why
            msg = "the ledger refused a claim without a prior entry"
            raise _unknown(call, msg)
        if prior.fingerprint != fingerprint(call.params):
            raise _conflict(call)
        if prior.state in {EntryState.ACCEPTED, EntryState.REJECTED}:
            _ledger_event(call, LedgerAction.ANSWERED)
            if call.trace is not None:
                call.trace.from_ledger = True
        else:
            _ledger_event(call, LedgerAction.REFUSED_IN_FLIGHT)
        if prior.state is EntryState.ACCEPTED and prior.data is not None:
            logger.debug(
                "op=%s trade_no=%s answered from the ledger",
                call.label,
                call.trade_no,
            )
            return result_from_data(call.operation, prior.data, self._codec)
        if prior.state is EntryState.REJECTED:
            # Recorded only once a status query confirmed it.
            raise RequestRejected(
                prior.code or ResponseCode.REJECTED.value,
                prior.msg or "refused earlier",
                operation=call.label,
                trade_no=call.trade_no,
                confirmed=True,
            )
        raise _unknown(
            call,
            "another worker is sending this tradeNo right now; query it later",
        )


def _start(
    loop: asyncio.AbstractEventLoop, work: Coroutine[object, object, T]
) -> asyncio.Task[T]:
    """Run a ledger's *work* in a task of its own, as far as it goes at once.

    A task, so that neither the caller's cancellation nor its deadline cuts
    a store's write half-way. Started eagerly where asyncio can (3.12+): a
    ledger that answers without waiting (the in-process one) is done
    before this returns, and the caller need not wait for it.
    """
    if sys.version_info < (3, 12):  # pragma: no cover - 3.10 and 3.11
        return loop.create_task(work)
    return asyncio.eager_task_factory(loop, work)


def _claim_action(claim: Claim) -> LedgerAction:
    """Name a granted claim: new, a stale claim taken over, or an unknown resumed."""
    if claim.prior is None:
        return LedgerAction.CLAIMED
    if claim.prior.state is EntryState.IN_FLIGHT:
        return LedgerAction.TAKEN_OVER
    return LedgerAction.RESUMED


def _claim_failed(call: Call, detail: str) -> LedgerError:
    return LedgerError(
        f"the ledger could not claim this tradeNo ({detail}); nothing was sent",
        operation=call.label,
        trade_no=call.trade_no,
    )


def _emit_ledger(trace: Trace | None, action: LedgerAction) -> None:
    if trace is not None:
        trace.emit(
            LedgerEvent(
                operation=trace.operation, trade_no=trace.trade_no, action=action
            )
        )


def _ledger_event(call: Call, action: LedgerAction) -> None:
    if call.trace is not None:
        call.trace.emit(
            LedgerEvent(operation=call.label, trade_no=call.trade_no, action=action)
        )


def _conflict(call: Call) -> ConflictingRequestError:
    return ConflictingRequestError(
        "this tradeNo was already used with a different payload (amount, account, "
        "name or bank); nothing was sent. One tradeNo is one payout: use a new "
        "tradeNo for a different payout",
        operation=call.label,
        trade_no=call.trade_no,
    )


def _unknown(call: Call, reason: str) -> OutcomeUnknown:
    return outcome_unknown(call.operation, call.trade_no, reason, label=call.label)
