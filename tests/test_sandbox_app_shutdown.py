"""SandboxApp stops on every Python: no wait_for that swallows a cancel."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from vexora_async.testing import FakeGateway, SandboxApp
from vexora_async.testing._app import DROP_EXTENSION, _drop


EXIT_LIMIT = 5.0


async def _finishes(awaitable: Any) -> bool:
    task = asyncio.ensure_future(awaitable)
    done, _ = await asyncio.wait({task}, timeout=EXIT_LIMIT)
    if not done:
        task.cancel()
        return False
    task.result()
    return True


@pytest.mark.parametrize("rounds", [1, 20])
async def test_exit_right_after_a_wake_up_returns(
    rounds: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Closing just as the timer loop is woken up ends the loop.

    On 3.11, asyncio.wait_for returned the wake-up's result instead of the
    cancellation, so the timer loop ran on and ``async with`` never exited
    (5 of 5 runs in the review).
    """
    for _ in range(rounds):
        gateway = FakeGateway()
        # A settlement is pending: the loop sleeps until it is due.
        monkeypatch.setattr(gateway, "next_due", lambda: time.monotonic() + 60)
        app = SandboxApp(gateway)
        await app.start()
        await asyncio.sleep(0)  # the timer loop now waits for a wake-up
        wake = app._wake
        assert wake is not None

        async def close_as_a_timer_arrives(
            app: SandboxApp = app, wake: asyncio.Event = wake
        ) -> None:
            wake.set()  # in the same step as the cancellation
            await app.aclose()

        closed = await _finishes(close_as_a_timer_arrives())
        if not closed:  # pragma: no cover - the defect; do not leak the loop
            assert app._runner is not None
            app._runner.cancel()
        assert closed, "SandboxApp.aclose() hung"
        assert not app.running


async def test_exit_while_a_timer_is_due_returns() -> None:
    """Closing while the loop sleeps until a timer is due ends it too."""
    async with SandboxApp(FakeGateway()) as app:
        await asyncio.sleep(0)
        assert app.running
    assert not app.running


async def test_drop_waits_for_the_server_and_can_be_cancelled() -> None:
    """A dropped exchange waits for the server to notice, and cancels cleanly."""
    dropped: list[int] = []

    def drop() -> bool:
        dropped.append(1)
        return True

    never = asyncio.Event()

    async def receive() -> dict[str, Any]:
        await never.wait()
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:  # pragma: no cover - nothing is sent
        raise AssertionError(message)

    scope = {"extensions": {DROP_EXTENSION: drop}}
    task = asyncio.create_task(_drop(scope, receive, send))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert dropped == [1]
