"""Batch payouts: many requests through one client by a fixed pool of workers.

:func:`create_payouts` pulls requests lazily from any iterable or async
iterable, sends them with at most *concurrency* in flight, and yields one
:class:`PayoutOutcome` per request **in completion order** (each outcome
carries its request). One request's error never stops the batch: every
:class:`~vexora_async.VexoraError` becomes an outcome. Memory stays flat
however long the input: the workers hold one request each and the outcome
queue holds at most *concurrency* outcomes, so a slow consumer pauses the
input instead of buffering it.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Iterable,
    Iterator,
    Sized,
)
from typing import TYPE_CHECKING, Protocol

import attrs

from ._models import PayoutRequest, PayoutResult
from ._outcomes import Executed, verdict
from ._validation import MAX_CONNECTIONS, check_count
from .exceptions import (
    InvalidRequestError,
    OutcomeUnknown,
    RequestRejected,
    VexoraError,
)


if TYPE_CHECKING:
    from collections.abc import Callable


#: Payouts in flight at once when the caller does not say. The gateway's
#: rate limits are undocumented; this is polite and, on loopback, near the
#: throughput peak of one client.
DEFAULT_CONCURRENCY = 20


class OutcomeKind(enum.Enum):
    """What became of one request in a batch.

    Each outcome is what :meth:`~vexora_async.VexoraClient.create_payout`
    ended with, after the client's retries and reconciliation (see
    :doc:`/retries`).
    """

    #: The gateway accepted the payout (:attr:`PayoutOutcome.result`,
    #: usually still processing): wait for its callback or query it.
    ACCEPTED = "accepted"
    #: The gateway refused it with code ``8000``, and a status query
    #: confirmed it does not know the tradeNo: nothing was paid.
    REJECTED = "rejected"
    #: It may or may not have been executed, and reconciliation did not find
    #: out within the deadline (or, with ``verify_rejections=False``, a
    #: refusal no query confirmed): settle it later with
    #: ``client.resolve_payout(outcome.request)``; never resend it under a
    #: new tradeNo.
    UNKNOWN = "unknown"
    #: The call failed in a way that means it was not executed: the gateway
    #: was not reached, the client was closed, or the ledger could not claim
    #: the tradeNo (send it again later under the same tradeNo), or the
    #: request was invalid or
    #: conflicts with another payload under its tradeNo
    #: (:class:`~vexora_async.InvalidRequestError`,
    #: :class:`~vexora_async.ConflictingRequestError`: fix it first), or the
    #: gateway holds its tradeNo for another payout
    #: (:class:`~vexora_async.TradeNoCollision`: not made under it; find out
    #: who owns the tradeNo before paying under a new one).
    ERROR = "error"


@attrs.frozen
class PayoutOutcome:
    """The outcome of one payout request in a batch.

    Exactly one of *result* (for :attr:`OutcomeKind.ACCEPTED`) and *error*
    (every other kind) is set.
    """

    request: PayoutRequest
    kind: OutcomeKind
    result: PayoutResult | None = None
    error: VexoraError | None = None

    @property
    def trade_no(self) -> str:
        """The request's tradeNo: the key to query or resolve it by."""
        return self.request.trade_no

    @property
    def accepted(self) -> bool:
        """Whether the gateway accepted the payout."""
        return self.kind is OutcomeKind.ACCEPTED


@attrs.frozen
class BatchProgress:
    """Where a batch stands, passed to ``on_progress`` after each outcome.

    *total* is ``len(requests)`` when the input has a length, else
    ``None``. *started* counts requests taken from the input, *done* the
    outcomes yielded so far, split into the four kinds.
    """

    total: int | None
    started: int
    done: int
    accepted: int
    rejected: int
    unknown: int
    errors: int

    @property
    def in_flight(self) -> int:
        """Requests taken from the input whose outcome is not yet yielded."""
        return self.started - self.done


class PayoutSender(Protocol):
    """What a batch needs of a client: :meth:`VexoraClient.create_payout`."""

    async def create_payout(self, request: PayoutRequest) -> PayoutResult:
        """Send one payout."""


class _End:
    """The input is exhausted (a worker's last word)."""


class _Failure:
    """Something that is not a VexoraError went wrong; the batch stops."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


_END = _End()


class _Source:
    """The input, read by many workers; async iterators are read one at a time."""

    def __init__(self, requests: object) -> None:
        self._sync: Iterator[object] | None = None
        self._async: AsyncIterator[object] | None = None
        if isinstance(requests, AsyncIterable):
            self._async = aiter(requests)
        elif isinstance(requests, Iterable):
            self._sync = iter(requests)
        else:
            raise InvalidRequestError(
                "requests", "must be an iterable or async iterable of PayoutRequest"
            )
        # An async generator refuses a second __anext__ while one runs.
        self._lock = asyncio.Lock()
        self.started = 0

    async def next(self) -> object:
        """Return the next item (not checked yet), or ``_END``."""
        if self._sync is not None:
            item = next(self._sync, _END)
        elif self._async is not None:
            async with self._lock:
                item = await self._pull()
        else:
            return _END
        if item is _END:
            self._sync = self._async = None
        else:
            self.started += 1
        return item

    async def _pull(self) -> object:
        # Another worker may have met the end while this one waited.
        if self._async is None:
            return _END
        return await anext(self._async, _END)


async def _send_one(client: PayoutSender, request: PayoutRequest) -> PayoutOutcome:
    try:
        result = await client.create_payout(request)
    except OutcomeUnknown as exc:
        return PayoutOutcome(request, OutcomeKind.UNKNOWN, error=exc)
    except RequestRejected as exc:
        # Unconfirmed (verify_rejections=False), it may be the duplicate
        # refusal of a payout an earlier run made.
        kind = OutcomeKind.REJECTED if exc.confirmed else OutcomeKind.UNKNOWN
        return PayoutOutcome(request, kind, error=exc)
    except VexoraError as exc:
        # The money rules decide: an error that does not prove "nothing was
        # done" (one from your own middleware, say) is unknown, never ERROR.
        kind = OutcomeKind.ERROR if verdict(exc) is Executed.NO else OutcomeKind.UNKNOWN
        return PayoutOutcome(request, kind, error=exc)
    return PayoutOutcome(request, OutcomeKind.ACCEPTED, result=result)


def create_payouts(
    client: PayoutSender,
    requests: Iterable[PayoutRequest] | AsyncIterable[PayoutRequest],
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    on_progress: Callable[[BatchProgress], object] | None = None,
) -> AsyncGenerator[PayoutOutcome, None]:
    """Send many payouts through *client*; yield one outcome per request.

    See :meth:`vexora_async.VexoraClient.create_payouts`.
    """
    # One worker task per unit: a huge count would exhaust memory at once.
    check_count("concurrency", concurrency, 1, MAX_CONNECTIONS)
    if on_progress is not None and not callable(on_progress):
        raise InvalidRequestError("on_progress", "must be callable or None")
    source = _Source(requests)
    total = len(requests) if isinstance(requests, Sized) else None
    return _run(client, source, concurrency, on_progress, total)


_Item = PayoutOutcome | _End | _Failure


async def _work(
    client: PayoutSender, source: _Source, outcomes: asyncio.Queue[_Item]
) -> None:
    """One worker: take a request, send it, hand over its outcome; repeat."""
    try:
        while True:
            request = await source.next()
            if request is _END:
                break
            if isinstance(request, PayoutRequest):
                outcome = await _send_one(client, request)
            else:
                error = InvalidRequestError(
                    None, f"a batch takes PayoutRequest, not {type(request).__name__}"
                )
                outcome = PayoutOutcome(
                    request,  # type: ignore[arg-type]  # kept as given, for the caller
                    OutcomeKind.ERROR,
                    error=error,
                )
            await outcomes.put(outcome)
    # A broken input iterator or a bug below us: stop the whole batch and
    # hand the error to the consumer.
    except Exception as exc:  # noqa: BLE001
        await outcomes.put(_Failure(exc))
    else:
        await outcomes.put(_END)


async def _run(
    client: PayoutSender,
    source: _Source,
    concurrency: int,
    on_progress: Callable[[BatchProgress], object] | None,
    total: int | None,
) -> AsyncGenerator[PayoutOutcome, None]:
    # Bounded: when the consumer is slow, workers wait here and stop
    # pulling input.
    outcomes: asyncio.Queue[_Item] = asyncio.Queue(maxsize=concurrency)
    workers = [
        asyncio.create_task(_work(client, source, outcomes), name=f"vexora-batch-{i}")
        for i in range(concurrency)
    ]
    counts = dict.fromkeys(OutcomeKind, 0)
    try:
        running = len(workers)
        while running:
            item = await outcomes.get()
            if isinstance(item, _End):
                running -= 1
                continue
            if isinstance(item, _Failure):
                raise item.exc
            counts[item.kind] += 1
            if on_progress is not None:
                on_progress(
                    BatchProgress(
                        total=total,
                        started=source.started,
                        done=sum(counts.values()),
                        accepted=counts[OutcomeKind.ACCEPTED],
                        rejected=counts[OutcomeKind.REJECTED],
                        unknown=counts[OutcomeKind.UNKNOWN],
                        errors=counts[OutcomeKind.ERROR],
                    )
                )
            yield item
    finally:
        # Reached on exhaustion, on error, on the consumer's cancellation
        # and on aclose(): no worker outlives the batch.
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
