"""Run an awaitable until a deadline, correctly on every supported Python.

``asyncio.wait_for`` before 3.12 can swallow a cancellation that arrives
as its inner awaitable finishes: the caller's task is then never cancelled
(a shutdown hangs) or a permit it was granted is lost. ``asyncio.timeout``
(3.11+) counts cancellations and does not, so :func:`run_until` is
``asyncio.timeout_at`` there (from 3.11.3: before it, gh-102780 could turn
a cancellation into a timeout). 3.10 has neither that nor ``Task.uncancel``,
so there, and on 3.11.0-3.11.2, the awaitable runs in a child task that we wait for with
``asyncio.wait``: a cancellation of the caller is never turned into
anything else, and the child is cancelled and awaited before we return.
"""

from __future__ import annotations

import asyncio
import sys
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
    if sys.version_info < (3, 11, 3):  # pragma: no cover - 3.10 only
        return await _run_until_310(coro, when, undo)
    # In the caller's own task a cancellation lands inside *coro*, which
    # gives back what it holds itself: there is nothing left for *undo*.
    timeout = asyncio.timeout_at(when)
    try:
        async with timeout:
            return await coro
    except TimeoutError:
        if timeout.expired():
            raise TimeoutError from None  # ours: not chained to the cancel
        raise  # the coroutine's own, as it is


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
