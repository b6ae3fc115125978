"""Run an awaitable until a deadline, correctly on every supported Python.

``asyncio.wait_for`` before 3.12 can swallow a cancellation that arrives
as its inner awaitable finishes: the caller's task is then never cancelled
(a shutdown hangs) or a permit it was granted is lost. ``asyncio.timeout``
(3.11+) counts cancellations and does not; :func:`run_until` does what it
does, with one difference: the deadlines of a loop share one timer (a
:class:`_Watchdog`), where ``asyncio.timeout`` makes a timer, a timeout
object and a heap entry in the loop per use, a tenth of the SDK's own
work per call. 3.10 has no ``Task.uncancel``, so there the awaitable runs
in a child task that we wait for with ``asyncio.wait``: a cancellation of
the caller is never turned into anything else, and the child is cancelled
and awaited before we return.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import sys
import weakref
from typing import TYPE_CHECKING, Any, TypeVar


if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine


T = TypeVar("T")


async def run_until(
    coro: Coroutine[object, object, T],
    when: float | None,
    *,
    undo: Callable[[T], object] | None = None,
) -> T:
    """Await *coro*, but raise ``TimeoutError`` once loop time *when* passes.

    *when* is ``None`` for no deadline. The coroutine is cancelled (and
    finished) before ``TimeoutError`` is raised. A cancellation of the
    caller always propagates as ``CancelledError``. *undo* is called with
    the coroutine's result if it completed but the caller is cancelled
    anyway (on 3.10, where it runs in a child task), so that a resource it
    acquired is given back.
    """
    if when is None:
        return await coro
    if sys.version_info < (3, 11):  # pragma: no cover - 3.10 only
        return await _run_until_310(coro, when, undo)
    task = asyncio.current_task()
    if task is None:  # pragma: no cover - not in a task: asyncio's own way
        async with asyncio.timeout_at(when):
            return await coro
    loop = task.get_loop()
    watchdog = _watchdogs.get(loop)
    if watchdog is None:
        watchdog = _watchdogs[loop] = _Watchdog(loop)
    watch = watchdog.watch(when, task)
    # As asyncio.timeout's __aexit__: our cancellation becomes TimeoutError
    # only when no one else asked to cancel the task too.
    cancelling = task.cancelling()
    try:
        result = await coro
    except asyncio.CancelledError:
        if watch.expired and task.uncancel() <= cancelling:
            raise TimeoutError from None
        raise
    except BaseException:
        if watch.expired:
            task.uncancel()
        raise
    finally:
        watchdog.forget(watch)
    if watch.expired:
        task.uncancel()  # it finished as the deadline passed: in time enough
    return result


class _Watch:
    """One task's deadline in a watchdog."""

    __slots__ = ("done", "expired", "task")

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self.task = task
        self.expired = False
        self.done = False


class _Watchdog:
    """The deadlines of one event loop, on one timer.

    A heap of deadlines; the loop's timer is armed for the earliest one
    still running, and moved only when a nearer one arrives. A finished
    watch is dropped lazily (when it reaches the top, or when finished
    ones are half the heap), so a watch costs a heap push and a flag.
    """

    #: Below this, dropping finished watches eagerly is not worth a pass.
    COMPACT_AT = 1024

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._heap: list[tuple[float, int, _Watch]] = []
        self._order = itertools.count()
        self._handle: asyncio.TimerHandle | None = None
        self._armed_for = float("inf")
        self._done = 0

    def watch(self, when: float, task: asyncio.Task[Any]) -> _Watch:
        """Cancel *task* at loop time *when*, unless forgotten first."""
        watch = _Watch(task)
        heapq.heappush(self._heap, (when, next(self._order), watch))
        if when < self._armed_for:
            self._arm(when)
        return watch

    def forget(self, watch: _Watch) -> None:
        """Drop *watch*: its task is past the guarded await."""
        watch.done = True
        if watch.expired:
            return  # already out of the heap
        self._done += 1
        if self._done > self.COMPACT_AT and self._done * 2 > len(self._heap):
            self._heap = [entry for entry in self._heap if not entry[2].done]
            heapq.heapify(self._heap)
            self._done = 0

    def _arm(self, when: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._armed_for = when
        self._handle = self._loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self._handle = None
        self._armed_for = float("inf")
        now = self._loop.time()
        heap = self._heap
        while heap and (heap[0][0] <= now or heap[0][2].done):
            _, _, watch = heapq.heappop(heap)
            if watch.done:
                self._done -= 1
            else:
                watch.expired = True
                watch.task.cancel()
        if heap:
            self._arm(heap[0][0])


_watchdogs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Watchdog] = (
    weakref.WeakKeyDictionary()
)


async def _run_until_310(  # pragma: no cover - exercised on Python 3.10 only
    coro: Coroutine[object, object, T],
    when: float,
    undo: Callable[[T], object] | None = None,
) -> T:
    loop = asyncio.get_running_loop()
    child = loop.create_task(coro)
    try:
        done, _ = await asyncio.wait({child}, timeout=max(0.0, when - loop.time()))
    except BaseException:
        child.cancel()
        try:
            await _finish(child)
        finally:
            completed = not child.cancelled() and child.exception() is None
            if completed and undo is not None:
                undo(child.result())
        raise
    if done:
        return child.result()
    child.cancel()
    await _finish(child)
    if not child.cancelled() and child.exception() is None:
        return child.result()  # it finished as it was being cancelled
    if not child.cancelled():
        raise child.exception()  # type: ignore[misc]  # checked just above
    raise TimeoutError


async def _finish(task: asyncio.Future[Any]) -> None:  # pragma: no cover - 3.10
    # Wait for the cancelled child without letting a second cancellation of
    # ours leave it running unobserved.
    try:
        await asyncio.wait({task})
    except asyncio.CancelledError:
        task.cancel()
        await asyncio.wait({task})
        raise
