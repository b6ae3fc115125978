"""Faults the sandbox injects: scripted per request, per tradeNo, or by rate.

A :class:`Fault` says what goes wrong and whether the gateway executed the
request first. A :class:`FaultPlan` (``gateway.faults``) decides which
request gets which fault, in this order of precedence: a fault scripted for
the request's ``tradeNo``, then the queue of faults for the next requests,
then the random rate. Each request gets at most one fault.
"""

from __future__ import annotations

import enum
import random
import threading
from collections import deque
from typing import TYPE_CHECKING

import attrs

from vexora_async._operations import Operation
from vexora_async.exceptions import InvalidRequestError


if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence


class FaultKind(enum.Enum):
    """What goes wrong."""

    #: The gateway executes the request, then waits before answering.
    DELAY = "delay"
    #: The connection is closed without any response.
    DROP = "drop"
    #: A non-2xx HTTP status with an HTML body, as a proxy would answer.
    HTTP_ERROR = "http_error"
    #: HTTP 200 with the envelope ``code`` ``5000`` ("system exception").
    SYSTEM_ERROR = "system_error"
    #: HTTP 200 with a body that is not the envelope (truncated JSON).
    GARBAGE = "garbage"
    #: HTTP 429 with a ``Retry-After`` header, before executing.
    RATE_LIMITED = "rate_limited"
    #: HTTP 200 with the envelope ``code`` ``8000``, never executing: a
    #: refusal such as insufficient balance or a disabled account.
    REJECTED = "rejected"


# Statuses a gateway (or its proxy) answers before doing anything.
_REFUSED_BEFORE = frozenset({429, 503})


@attrs.frozen
class Fault:
    """One injected fault.

    *executed* tells whether the gateway carries out the request before the
    fault hides its answer: a payout with ``executed=True`` is really made
    (money leaves, a callback follows), which is what makes an unknown
    outcome dangerous. *seconds* is the delay, or the ``Retry-After``.
    Build faults with the class methods.
    """

    kind: FaultKind
    executed: bool = True
    seconds: float = 0.0
    status: int = 500
    message: str = ""

    @classmethod
    def delay(cls, seconds: float) -> Fault:
        """Execute the request, then wait *seconds* before answering.

        Over a socket, a client whose timeout is shorter gives up while the
        payout is made anyway. In process, ``httpx.ASGITransport`` enforces
        no timeout, so the client just waits.
        """
        _check_seconds(seconds)
        return cls(FaultKind.DELAY, executed=True, seconds=float(seconds))

    @classmethod
    def drop(cls, *, executed: bool = True) -> Fault:
        """Close the connection without a response (after executing, by default).

        Over a loopback socket the socket is really closed; in process the
        app raises :class:`httpx.RemoteProtocolError`, which is what httpx
        raises for a real dropped connection.
        """
        return cls(FaultKind.DROP, executed=executed)

    @classmethod
    def http_error(cls, status: int = 500, *, executed: bool | None = None) -> Fault:
        """Answer HTTP *status* (5xx) with an HTML body.

        By default 503 is answered before executing (the service is
        unavailable) and any other status after executing (the gateway
        failed while or after making the payout). Pass *executed* to choose.
        """
        if not _is_int_in(status, 400, 599):
            raise InvalidRequestError("status", "must be an HTTP error status")
        if executed is None:
            executed = status not in _REFUSED_BEFORE
        return cls(FaultKind.HTTP_ERROR, executed=executed, status=status)

    @classmethod
    def system_error(cls, *, executed: bool = True) -> Fault:
        """Answer code ``5000`` (after executing, by default)."""
        return cls(FaultKind.SYSTEM_ERROR, executed=executed)

    @classmethod
    def garbage(cls, *, executed: bool = True) -> Fault:
        """Answer HTTP 200 with truncated JSON (after executing, by default)."""
        return cls(FaultKind.GARBAGE, executed=executed)

    @classmethod
    def rejected(cls, message: str = "rejected by the sandbox's fault plan") -> Fault:
        """Refuse the request with code ``8000`` and *message*, never executing.

        The gateway's refusal of a request it will not carry out (say,
        ``"insufficient balance"``), on demand. On a create, the client's
        status query then finds no payout, so the refusal is confirmed:
        :class:`~vexora_async.RequestRejected` with ``confirmed=True``.
        Aim it with ``operations=Operation.CREATE_PAYOUT``: on a status
        query it refuses the query instead.
        """
        if not _is_text(message):
            raise InvalidRequestError("message", "must be a non-empty str")
        return cls(FaultKind.REJECTED, executed=False, message=message)

    @classmethod
    def rate_limited(cls, retry_after: float = 1.0) -> Fault:
        """Answer HTTP 429 with ``Retry-After: retry_after``, never executing.

        A fractional *retry_after* is sent as such (``"0.05"``). That is not
        standard HTTP, and :class:`~vexora_async.VexoraClient` ignores it
        (``retry_after`` is ``None``) and falls back to its own backoff,
        which keeps compressed tests fast. Whole seconds are honoured.
        """
        _check_seconds(retry_after)
        return cls(
            FaultKind.RATE_LIMITED,
            executed=False,
            seconds=float(retry_after),
            status=429,
        )


def _check_seconds(seconds: object) -> None:
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, (int, float))
        or not 0 <= seconds < float("inf")
    ):
        raise InvalidRequestError("seconds", "must be a finite number >= 0")


def _is_int_in(value: object, low: int, high: int) -> bool:
    return (
        isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
    )


def _is_text(value: object) -> bool:
    return isinstance(value, str) and bool(value)


def _is_fraction(value: object) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and 0 <= value <= 1
    )


#: One of each kind, the mix :meth:`FaultPlan.at_rate` draws from by default.
DEFAULT_FAULTS: tuple[Fault, ...] = (
    Fault.delay(0.02),
    Fault.drop(),
    Fault.http_error(500),
    Fault.http_error(503),
    Fault.system_error(),
    Fault.garbage(),
    Fault.rate_limited(0.01),
)

_Filter = frozenset[Operation] | None


def _as_filter(operations: Operation | Iterable[Operation] | None) -> _Filter:
    if operations is None:
        return None
    ops = (operations,) if isinstance(operations, Operation) else tuple(operations)
    if not ops or not all(isinstance(op, Operation) for op in ops):
        raise InvalidRequestError(
            "operations", "must be an Operation, several, or None for all"
        )
    return frozenset(ops)


def _check_faults(faults: Sequence[object]) -> tuple[Fault, ...]:
    if not faults or not all(isinstance(f, Fault) for f in faults):
        raise InvalidRequestError("faults", "must be one or more Fault values")
    return tuple(faults)  # type: ignore[arg-type]  # checked just above


class FaultPlan:
    """Which request gets which fault. Reached as ``gateway.faults``.

    Thread-safe: a test may script faults while the sandbox serves from
    another thread.
    """

    def __init__(self, lock: threading.RLock | None = None) -> None:
        self._lock = lock or threading.RLock()
        self._queue: deque[tuple[Fault, _Filter]] = deque()
        self._by_trade_no: dict[str, deque[tuple[Fault, _Filter]]] = {}
        self._rate = 0.0
        self._choices: tuple[Fault, ...] = DEFAULT_FAULTS
        self._rate_filter: _Filter = None
        self._rng = random.Random(0)

    def queue(
        self,
        *faults: Fault,
        operations: Operation | Iterable[Operation] | None = None,
    ) -> None:
        """Give the next requests these faults, one each, in order.

        With *operations*, only requests for those calls take them (for
        example ``Operation.CREATE_PAYOUT``), and other requests pass.
        """
        checked, only = _check_faults(faults), _as_filter(operations)
        with self._lock:
            self._queue.extend((fault, only) for fault in checked)

    def for_trade_no(
        self,
        trade_no: str,
        *faults: Fault,
        operations: Operation | Iterable[Operation] | None = None,
    ) -> None:
        """Give the next requests carrying *trade_no* these faults, in order.

        Covers creates and status queries alike unless *operations* narrows
        it.
        """
        if not _is_text(trade_no):
            raise InvalidRequestError("trade_no", "must be a non-empty str")
        checked, only = _check_faults(faults), _as_filter(operations)
        with self._lock:
            pending = self._by_trade_no.setdefault(trade_no, deque())
            pending.extend((fault, only) for fault in checked)

    def at_rate(
        self,
        rate: float,
        faults: Sequence[Fault] = DEFAULT_FAULTS,
        *,
        seed: int = 0,
        operations: Operation | Iterable[Operation] | None = None,
    ) -> None:
        """Inject a fault into a fraction *rate* of requests, at random.

        The fault is drawn uniformly from *faults*; the draws come from a
        ``random.Random(seed)``, so a run is reproducible for a given order
        of requests. ``rate=0`` turns random faults off.
        """
        if not _is_fraction(rate):
            raise InvalidRequestError("rate", "must be a number from 0 to 1")
        checked, only = _check_faults(faults), _as_filter(operations)
        with self._lock:
            self._rate = float(rate)
            self._choices = checked
            self._rate_filter = only
            self._rng = random.Random(seed)

    def clear(self) -> None:
        """Forget every scripted fault and turn random faults off."""
        with self._lock:
            self._queue.clear()
            self._by_trade_no.clear()
            self._rate = 0.0

    @property
    def pending(self) -> int:
        """How many scripted (queued or per-tradeNo) faults are still unused."""
        with self._lock:
            return len(self._queue) + sum(map(len, self._by_trade_no.values()))

    def pick(self, operation: Operation, trade_no: str | None) -> Fault | None:
        """Take the fault for one request, if any (used by the gateway)."""
        with self._lock:
            if trade_no is not None and trade_no in self._by_trade_no:
                pending = self._by_trade_no[trade_no]
                fault = _take(pending, operation)
                if not pending:
                    del self._by_trade_no[trade_no]
                if fault is not None:
                    return fault
            fault = _take(self._queue, operation)
            if fault is not None:
                return fault
            if self._rate and (
                self._rate_filter is None or operation in self._rate_filter
            ):
                # Draw both numbers every time so that the sequence of
                # faults depends only on the seed and the request order.
                hit = self._rng.random() < self._rate
                choice = self._rng.choice(self._choices)
                if hit:
                    return choice
            return None


def _take(pending: deque[tuple[Fault, _Filter]], operation: Operation) -> Fault | None:
    for index, (fault, only) in enumerate(pending):
        if only is None or operation in only:
            del pending[index]
            return fault
    return None
