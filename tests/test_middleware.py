"""Tests for the middleware onion around the sign-and-send step."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

import httpx
import pytest
from vexora_async import Call, Middleware, Operation, VexoraError
from vexora_async._middleware import build_chain

from tests.helpers import (
    envelope,
    mock_client,
    payout_data,
    sent_body,
)


if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    import respx


def recorder(name: str, seen: list[str]) -> Middleware:
    """Return a middleware that notes when it runs, before and after."""

    async def layer(
        call: Call, call_next: Callable[[Call], Awaitable[object]]
    ) -> object:
        seen.append(f"{name}>")
        result = await call_next(call)
        seen.append(f"<{name}")
        return result

    return layer


async def test_first_middleware_is_outermost() -> None:
    """build_chain runs the first middleware first and returns through it last."""
    seen: list[str] = []

    async def innermost(call: Call) -> object:
        seen.append("send")
        return call.trade_no

    chain = build_chain([recorder("a", seen), recorder("b", seen)], innermost)
    result = await chain(Call(Operation.GET_PAYOUT, {"tradeNo": "T1"}, "T1"))
    assert result == "T1"
    assert seen == ["a>", "b>", "send", "<b", "<a"]


async def test_middleware_sees_unsigned_params_and_each_try_is_resigned(
    router: respx.MockRouter,
) -> None:
    """A retrying middleware gets a fresh timestamp and sign on every attempt."""
    seen_params: list[dict[str, str]] = []

    async def twice(
        call: Call, call_next: Callable[[Call], Awaitable[object]]
    ) -> object:
        seen_params.append(dict(call.params))
        await call_next(call)
        return await call_next(call)

    route = router.post("/v1/vexora/queryPayOutResult").mock(
        return_value=httpx.Response(200, json=envelope(payout_data("T1")))
    )
    ticks = itertools.count(1000)
    async with mock_client(
        router.async_handler, clock=lambda: next(ticks), middleware=[twice]
    ) as client:
        status = await client.get_payout("T1")
    assert status.trade_no == "T1"
    assert seen_params == [{"tradeNo": "T1"}]
    bodies = [sent_body(c.request) for c in route.calls]
    assert [b["timestamp"] for b in bodies] == ["1000", "1001"]
    assert bodies[0]["sign"] != bodies[1]["sign"]
    assert {b["tradeNo"] for b in bodies} == {"T1"}


async def test_middleware_answering_the_wrong_type_is_an_error(
    router: respx.MockRouter,
) -> None:
    """A middleware that answers something else than the record is caught."""

    async def liar(
        call: Call, call_next: Callable[[Call], Awaitable[object]]
    ) -> object:
        del call, call_next
        return "not a balance"

    async with mock_client(router.async_handler, middleware=[liar]) as client:
        with pytest.raises(VexoraError, match="a middleware answered str"):
            await client.get_balance()
