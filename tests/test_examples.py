"""The receiver examples in docs/examples, run with their frameworks' tools."""

from __future__ import annotations

import importlib.util
import json
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from aiohttp import test_utils

from tests.helpers import CALLBACK_BODY, SECRET, callback


if TYPE_CHECKING:
    from types import ModuleType


EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples"
BASE = "http://127.0.0.1:8091"
FORGED = CALLBACK_BODY.replace(b'"amount":"100"', b'"amount":"100000"')


def load(name: str) -> ModuleType:
    """Import an example by file name (docs/examples is not a package)."""
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fastapi_example = load("fastapi_receiver")
aiohttp_example = load("aiohttp_receiver")
TRADE_NO = "VX20260331004567"  # CALLBACK_BODY's, for 100 kyat


def fastapi_app(**sent: int) -> Any:
    """The FastAPI example, having sent the vector's payout and *sent* too."""
    ledger = fastapi_example.Ledger()
    ledger.sent = {TRADE_NO: Decimal(100)} | {k: Decimal(v) for k, v in sent.items()}
    return fastapi_example.create_app(SECRET, ledger)


# -- FastAPI -------------------------------------------------------------------


async def post_fastapi(app: Any, path: str, *bodies: bytes) -> list[httpx.Response]:
    """POST each body to the FastAPI app in-process, with its lifespan running."""
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url=BASE) as client,
    ):
        responses = [await client.post(path, content=body) for body in bodies]
        await app.state.follow_ups.join()
    return responses


async def test_fastapi_payout_is_recorded_and_followed_up_once() -> None:
    """OK for every delivery; the state is recorded and the customer told once."""
    app = fastapi_app()
    responses = await post_fastapi(
        app, "/vexora/payouts/notify", CALLBACK_BODY, CALLBACK_BODY
    )
    assert [(r.status_code, r.text) for r in responses] == [(200, "OK")] * 2
    assert app.state.ledger.states == {"VX20260331004567": "0000"}
    assert app.state.ledger.customers_told == ["VX20260331004567"]


async def test_fastapi_late_processing_does_not_undo_success() -> None:
    """A 'processing' arriving after 'success' is acknowledged and ignored."""
    app = fastapi_app()
    late = callback({"status": "0015"})
    responses = await post_fastapi(app, "/vexora/payouts/notify", CALLBACK_BODY, late)
    assert all(r.text == "OK" for r in responses)
    assert app.state.ledger.states == {"VX20260331004567": "0000"}


async def test_fastapi_deposit_route() -> None:
    """The deposit URL hands deposits to the same ledger."""
    app = fastapi_app(**{"DEP-1": 100})
    body = callback({"wayCode": "KBZPAY", "tradeNo": "DEP-1"})
    [response] = await post_fastapi(app, "/vexora/deposits/notify", body)
    assert response.text == "OK"
    assert app.state.ledger.states == {"DEP-1": "0000"}


async def test_fastapi_ignores_validly_signed_callbacks_that_are_not_ours() -> None:
    """A tradeNo never sent, or another amount: acknowledged, nothing recorded.

    The sign only proves the secret: the SDK accepts them, the handler must not.
    """
    app = fastapi_app()
    stranger = callback({"tradeNo": "VX-NOT-OURS"})
    more = callback({"amount": "100000"})
    responses = await post_fastapi(app, "/vexora/payouts/notify", stranger, more)
    assert [(r.status_code, r.text) for r in responses] == [(200, "OK")] * 2
    assert app.state.ledger.states == {}
    assert app.state.ledger.customers_told == []
    assert app.state.ledger.strangers == ["VX-NOT-OURS", TRADE_NO]


async def test_fastapi_refuses_forgeries_and_other_methods() -> None:
    """A forged body gets 403, a GET 405; neither touches the ledger."""
    app = fastapi_example.create_app(SECRET)
    [forged] = await post_fastapi(app, "/vexora/payouts/notify", FORGED)
    assert forged.status_code == 403
    assert "ok" not in forged.text.lower()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=BASE
    ) as client:
        assert (await client.get("/vexora/payouts/notify")).status_code == 405
    assert app.state.ledger.states == {}


async def test_fastapi_route_answers_the_exact_path() -> None:
    """The notify URL itself is served: no redirect the gateway would not follow."""
    app = fastapi_app()
    [response] = await post_fastapi(app, "/vexora/payouts/notify", CALLBACK_BODY)
    assert response.status_code == 200
    assert not response.has_redirect_location


# -- aiohttp ---------------------------------------------------------------------


async def post_aiohttp(app: Any, path: str, *bodies: bytes) -> list[tuple[int, str]]:
    """POST each body to the aiohttp app served on 127.0.0.1 by aiohttp's tools."""
    server = test_utils.TestServer(app, host="127.0.0.1")
    results = []
    async with test_utils.TestClient(server) as client:
        for body in bodies:
            response = await client.post(path, data=body)
            results.append((response.status, await response.text()))
    return results


def aiohttp_app(**sent: int) -> Any:
    """The aiohttp example, having sent the vector's payout and *sent* too."""
    ledger = aiohttp_example.Ledger()
    ledger.sent = {TRADE_NO: Decimal(100)} | {k: Decimal(v) for k, v in sent.items()}
    return aiohttp_example.create_app(SECRET, ledger)


async def test_aiohttp_adapted_receiver() -> None:
    """The adapted receiver acknowledges, records once, and refuses forgeries."""
    app = aiohttp_app()
    results = await post_aiohttp(
        app, "/vexora/payouts/notify", CALLBACK_BODY, CALLBACK_BODY, FORGED, b"[]"
    )
    assert results[:2] == [(200, "OK"), (200, "OK")]
    assert results[2][0] == 403
    assert results[3][0] == 400
    assert all("ok" not in text.lower() for _, text in results[2:])
    assert app[aiohttp_example.LEDGER].states == {"VX20260331004567": "0000"}


async def test_aiohttp_refuses_huge_bodies() -> None:
    """client_max_size, set from the receiver's cap, answers 413."""
    app = aiohttp_example.create_app(SECRET)
    huge = json.dumps({"pad": "x" * 70000}).encode()
    [(status, text)] = await post_aiohttp(app, "/vexora/payouts/notify", huge)
    assert status == 413
    assert "ok" not in text.lower()


async def test_aiohttp_sans_io_core_route() -> None:
    """The deposit route, on parse_notification alone, verifies and answers."""
    app = aiohttp_app(**{"DEP-2": 100})
    body = callback({"channelCode": "EWALLET", "tradeNo": "DEP-2"})
    results = await post_aiohttp(app, "/vexora/deposits/notify", body, FORGED, b"\xff")
    assert results == [(200, "OK"), (403, "refused"), (400, "refused")]
    assert app[aiohttp_example.LEDGER].states == {"DEP-2": "0000"}


@pytest.mark.parametrize("path", ["/vexora/payouts/notify", "/vexora/deposits/notify"])
async def test_aiohttp_ignores_validly_signed_callbacks_that_are_not_ours(
    path: str,
) -> None:
    """A tradeNo never sent, or more than was sent: acknowledged, not recorded."""
    app = aiohttp_app()
    stranger = callback({"tradeNo": "VX-NOT-OURS"})
    more = callback({"amount": "100000"})
    results = await post_aiohttp(app, path, stranger, more)
    assert results == [(200, "OK"), (200, "OK")]
    assert app[aiohttp_example.LEDGER].states == {}
    assert app[aiohttp_example.LEDGER].strangers == ["VX-NOT-OURS", TRADE_NO]
