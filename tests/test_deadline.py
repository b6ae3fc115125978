"""run_until: a deadline that never swallows the caller's cancellation."""

from __future__ import annotations

import asyncio
import gc
import sys
import weakref

import pytest
from vexora_async import _deadline
from vexora_async._deadline import run_until

from tests.helpers import FIXED_MS, make_payout, mock_client, ok


@pytest.fixture(params=["native", "py310"])
def impl(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run each test with the running Python's construct and with 3.10's."""
    if request.param == "py310":

        async def forced(coro: object, when: float | None) -> object:
            if when is None:
                return await coro  # type: ignore[misc]
            return await _deadline._run_until_310(coro, when)  # type: ignore[arg-type]

        monkeypatch.setattr(_deadline, "run_until", forced)
    name: str = request.param
    return name


async def test_returns_the_result_in_time(impl: str) -> None:
    """A quick awaitable's result comes back."""
    loop = asyncio.get_running_loop()
    assert await _deadline.run_until(asyncio.sleep(0, "ok"), loop.time() + 5) == "ok"


async def test_times_out_and_cancels_the_inner(impl: str) -> None:
    """Past the deadline: TimeoutError, and the inner work was cancelled."""
    loop = asyncio.get_running_loop()
    cancelled = asyncio.Event()

    async def slow() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    started = loop.time()
    with pytest.raises(TimeoutError):
        await _deadline.run_until(slow(), loop.time() + 0.05)
    assert loop.time() - started < 1
    assert cancelled.is_set()


async def test_the_inner_error_propagates(impl: str) -> None:
    """An error of the awaitable is raised as it is."""
    loop = asyncio.get_running_loop()

    async def boom() -> None:
        raise KeyError("x")

    with pytest.raises(KeyError):
        await _deadline.run_until(boom(), loop.time() + 5)


@pytest.mark.parametrize("delay", [0.0, 0.001, 0.01])
async def test_a_cancel_of_the_caller_is_never_swallowed(
    impl: str, delay: float
) -> None:
    """Cancelled as the inner finishes: the caller still ends cancelled.

    This is what wait_for got wrong before 3.12 (a SandboxApp exit that hung).
    """
    loop = asyncio.get_running_loop()
    for _ in range(50):
        event = asyncio.Event()

        async def waiter(event: asyncio.Event = event) -> None:
            await _deadline.run_until(event.wait(), loop.time() + 5)
            await asyncio.sleep(30)  # only reached if the cancel was swallowed

        task = loop.create_task(waiter())
        await asyncio.sleep(delay)
        event.set()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 2)


async def test_no_deadline_just_awaits() -> None:
    """when=None is a plain await."""
    assert await run_until(asyncio.sleep(0, 7), None) == 7


async def test_many_deadlines_each_fire_at_their_own() -> None:
    """Interleaved short and long deadlines: each task times out at its own."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    ended: dict[int, float] = {}

    async def one(i: int) -> None:
        try:
            await run_until(asyncio.sleep(30), started + 0.05 * (i % 5 + 1))
        except TimeoutError:
            ended[i] = loop.time() - started

    quick = [
        loop.create_task(run_until(asyncio.sleep(0), started + 60)) for _ in range(50)
    ]
    await asyncio.gather(*quick, *(one(i) for i in range(25)))
    assert len(ended) == 25
    for i, elapsed in ended.items():
        due = 0.05 * (i % 5 + 1)
        assert due <= elapsed < due + 0.5


async def test_finished_deadlines_leave_nothing_scheduled(impl: str) -> None:
    """Thousands of quick calls leave no timer behind them in the loop.

    A timer left armed for a finished call keeps what it refers to alive
    until it fires, an hour later here.
    """
    loop = asyncio.get_running_loop()
    far = loop.time() + 3600
    before = {id(timer) for timer in _timers_due_after(far - 1)}
    for _ in range(2000):
        await _deadline.run_until(asyncio.sleep(0), far)
    await asyncio.sleep(0)
    left = [t for t in _timers_due_after(far - 1) if id(t) not in before]
    assert not left


def _timers_due_after(when: float) -> list[asyncio.TimerHandle]:
    """Live timers due at or after *when* (what a leak would leave)."""
    return [
        timer
        for timer in gc.get_objects()
        if isinstance(timer, asyncio.TimerHandle)
        and not timer.cancelled()
        and timer.when() >= when
    ]


async def test_a_swallowed_deadline_leaves_no_cancel_pending() -> None:
    """An awaitable that ends anyway when cut off: its result, no stray cancel."""
    loop = asyncio.get_running_loop()

    async def stubborn() -> str:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            return "finished anyway"
        return "slept"  # pragma: no cover

    result = await run_until(stubborn(), loop.time() + 0.01)
    await asyncio.sleep(0.01)  # a cancellation left pending would land here
    assert result == "finished anyway"
    task = asyncio.current_task()
    assert task is not None
    if sys.version_info >= (3, 11):
        assert task.cancelling() == 0


async def test_a_cancel_at_the_deadline_stays_a_cancel(impl: str) -> None:
    """Cancelled by its caller as its deadline passes: CancelledError wins.

    Just before the deadline, or in the same turn of the loop: the caller's
    cancel is never turned into a TimeoutError (after the deadline, the
    call has already ended with TimeoutError and the cancel finds it done).
    """
    loop = asyncio.get_running_loop()
    for offset in (-0.001, 0.0):
        when = loop.time() + 0.05
        task = loop.create_task(_deadline.run_until(asyncio.sleep(30), when))
        loop.call_at(when + offset, task.cancel)
        with pytest.raises(asyncio.CancelledError):
            await task


def test_closed_event_loops_are_not_kept_alive() -> None:
    """200 asyncio.run() calls, each a payout with a deadline: their loops go.

    A script or a worker that runs a call per ``asyncio.run()`` must not
    grow by a closed loop (and all it holds) per run.
    """
    loops: list[weakref.ref[asyncio.AbstractEventLoop]] = []
    # Loops other tests left behind are theirs to answer for.
    earlier = weakref.WeakSet(_loops_in_memory())

    async def one_payout() -> None:
        loops.append(weakref.ref(asyncio.get_running_loop()))
        async with mock_client(lambda _: ok(), clock=lambda: FIXED_MS) as client:
            await client.create_payout(make_payout(), deadline=5.0)

    for _ in range(200):
        asyncio.run(one_payout())
    gc.collect()
    assert sum(ref() is not None for ref in loops) <= 2
    closed = [loop for loop in _loops_in_memory() if loop.is_closed()]
    assert len([loop for loop in closed if loop not in earlier]) <= 2


def _loops_in_memory() -> list[asyncio.AbstractEventLoop]:
    return [
        obj for obj in gc.get_objects() if isinstance(obj, asyncio.AbstractEventLoop)
    ]
