"""run_until: a deadline that never swallows the caller's cancellation."""

from __future__ import annotations

import asyncio

import pytest
from vexora_async import _deadline
from vexora_async._deadline import run_until


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
