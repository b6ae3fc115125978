"""Tests for NotificationReceiver: answers, dedup, concurrency, failures."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import uvicorn
from vexora_async import (
    DepositNotification,
    InvalidRequestError,
    MemoryNotificationStore,
    Notification,
    NotificationReceiver,
    NotificationStore,
    PayoutNotification,
    ReceiverResponse,
)

from tests.helpers import CALLBACK_BODY, SECRET, callback


if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable


URL = "http://127.0.0.1:8091/vexora/notify"
NOW = 1774953271.0


class Recorder:
    """A handler that records its calls and can be told to fail or stall."""

    def __init__(self) -> None:
        self.calls: list[tuple[Notification, bool]] = []
        self.fail = False
        self.gate: asyncio.Event | None = None
        self.running = 0
        self.max_running = 0
        self.cancelled = 0

    async def __call__(
        self, notification: Notification, *, already_handled: bool
    ) -> None:
        """Record the call; stall on *gate*; raise if told to fail."""
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
            self.calls.append((notification, already_handled))
            if self.gate is not None:
                await self.gate.wait()
            if self.fail:
                msg = "database is down"
                raise RuntimeError(msg)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.running -= 1

    @property
    def flags(self) -> list[bool]:
        """The already_handled flag of each call, in order."""
        return [already for _, already in self.calls]


@pytest.fixture
def handler() -> Recorder:
    """Return a fresh recording handler."""
    return Recorder()


@pytest.fixture
def receiver(handler: Recorder) -> NotificationReceiver:
    """Return a receiver with the test secret and the recording handler."""
    return NotificationReceiver(SECRET, handler)


@pytest.fixture
async def http(receiver: NotificationReceiver) -> AsyncIterator[httpx.AsyncClient]:
    """Yield an httpx client that talks to *receiver* in-process."""
    transport = httpx.ASGITransport(app=receiver)
    async with httpx.AsyncClient(transport=transport) as client:
        yield client


async def wait_until(condition: Callable[[], bool]) -> None:
    """Let other tasks run until *condition* holds (no clock involved)."""
    while not condition():  # noqa: ASYNC110 - the state polled has no event of its own
        await asyncio.sleep(0)


def assert_ok(response: httpx.Response) -> None:
    """Assert the exact acknowledgement the gateway wants."""
    assert response.status_code == 200
    assert response.content == b"OK"
    assert response.headers["content-type"].startswith("text/plain")


def assert_not_ok(response: httpx.Response, status: int) -> None:
    """Assert an error answer that the gateway cannot mistake for OK."""
    assert response.status_code == status
    assert "ok" not in response.text.lower()


async def test_vector_is_acknowledged(
    http: httpx.AsyncClient, handler: Recorder
) -> None:
    """The fact sheet's callback reaches the handler, and OK goes back."""
    response = await http.post(URL, content=CALLBACK_BODY)
    assert_ok(response)
    [(notification, already)] = handler.calls
    assert isinstance(notification, PayoutNotification)
    assert notification.trade_no == "VX20260331004567"
    assert already is False


async def test_duplicates_are_flagged_and_acknowledged(
    http: httpx.AsyncClient, handler: Recorder
) -> None:
    """A redelivery is acknowledged and flagged as already handled."""
    for _ in range(3):
        assert_ok(await http.post(URL, content=CALLBACK_BODY))
    assert handler.flags == [False, True, True]


async def test_duplicates_credit_once(receiver: NotificationReceiver) -> None:
    """A handler that trusts the flag credits a repeated callback once."""
    credited: list[str] = []

    async def credit(n: Notification, *, already_handled: bool) -> None:
        if not already_handled:
            credited.append(n.trade_no)

    receiver = NotificationReceiver(SECRET, credit)
    for _ in range(4):
        assert (await receiver.respond(CALLBACK_BODY)).acknowledged
    assert credited == ["VX20260331004567"]


async def test_concurrent_deliveries_run_the_handler_once_at_a_time(
    http: httpx.AsyncClient, receiver: NotificationReceiver, handler: Recorder
) -> None:
    """Ten deliveries at once: one new, nine flagged, never two in parallel."""
    handler.gate = asyncio.Event()
    tasks = [
        asyncio.create_task(http.post(URL, content=CALLBACK_BODY)) for _ in range(10)
    ]
    # Wait until every delivery is inside the receiver, queued on the key
    # (or, were they not serialised, until a second one reached the handler).
    key = json.dumps(["payout", "VX20260331004567", "0000"], separators=(",", ":"))
    await wait_until(
        lambda: (
            receiver._locks._locks.get(key, (None, 0))[1] == 10
            or len(handler.calls) > 1
        )
    )
    assert len(handler.calls) == 1
    handler.gate.set()
    for response in await asyncio.gather(*tasks):
        assert_ok(response)
    assert handler.flags == [False] + [True] * 9
    assert handler.max_running == 1
    assert len(receiver._locks) == 0


async def test_different_keys_run_in_parallel(
    http: httpx.AsyncClient, handler: Recorder
) -> None:
    """Another tradeNo or status is not held up by a slow one."""
    handler.gate = asyncio.Event()
    first = asyncio.create_task(http.post(URL, content=CALLBACK_BODY))
    await wait_until(lambda: len(handler.calls) == 1)
    second = asyncio.create_task(http.post(URL, content=callback({"status": "0015"})))
    await wait_until(lambda: len(handler.calls) == 2)
    assert handler.max_running == 2
    handler.gate.set()
    assert_ok(await first)
    assert_ok(await second)
    assert handler.flags == [False, False]


async def test_a_new_status_is_a_new_notification(
    http: httpx.AsyncClient, handler: Recorder
) -> None:
    """Processing then success for one tradeNo are both handled as new."""
    assert_ok(await http.post(URL, content=callback({"status": "0015"})))
    assert_ok(await http.post(URL, content=CALLBACK_BODY))
    assert handler.flags == [False, False]
    assert [n.status for n, _ in handler.calls] == ["0015", "0000"]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (CALLBACK_BODY.replace(b'"100"', b'"1000"'), 403),
        (CALLBACK_BODY.replace(b"11cf5c6a", b"11CF5C6A"), 403),
        (callback(drop=("tradeNo",)), 400),
        (b"not json", 400),
        (b"[]", 400),
        (b"\xff\xfe\x00", 400),
        (b"", 400),
    ],
)
async def test_refused_bodies_get_an_error_and_never_reach_the_handler(
    http: httpx.AsyncClient, handler: Recorder, body: bytes, status: int
) -> None:
    """Forged, tampered and malformed bodies get 403/400 without OK."""
    assert_not_ok(await http.post(URL, content=body), status)
    assert handler.calls == []


async def test_huge_body_with_content_length_is_refused_unread(
    http: httpx.AsyncClient, handler: Recorder
) -> None:
    """A declared length over the cap is answered 413 straight away."""
    response = await http.post(URL, content=b"{" + b" " * 70000 + b"}")
    assert_not_ok(response, 413)
    assert handler.calls == []


async def test_huge_streamed_body_is_refused(
    http: httpx.AsyncClient, handler: Recorder
) -> None:
    """A body without Content-Length is cut off once over the cap."""

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(100):
            yield b" " * 1000

    response = await http.post(URL, content=chunks())
    assert_not_ok(response, 413)
    assert handler.calls == []


async def test_streamed_body_within_cap_is_accepted(
    http: httpx.AsyncClient, handler: Recorder
) -> None:
    """A body in several chunks is joined before verification."""

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(CALLBACK_BODY), 10):
            yield CALLBACK_BODY[start : start + 10]

    assert_ok(await http.post(URL, content=chunks()))
    assert len(handler.calls) == 1


async def test_failing_handler_withholds_ok_and_is_retried(
    http: httpx.AsyncClient, handler: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    """A raising handler gets 500; the redelivery is handled as new."""
    handler.fail = True
    assert_not_ok(await http.post(URL, content=CALLBACK_BODY), 500)
    assert "handler failed" in caplog.text
    handler.fail = False
    assert_ok(await http.post(URL, content=CALLBACK_BODY))
    assert handler.flags == [False, False]


async def test_slow_handler_is_cancelled_and_withholds_ok(handler: Recorder) -> None:
    """Past handler_timeout the handler is cancelled and 503 goes back."""
    handler.gate = asyncio.Event()
    receiver = NotificationReceiver(SECRET, handler, handler_timeout=0.05)
    response = await receiver.respond(CALLBACK_BODY)
    assert response.status_code == 503
    assert not response.acknowledged
    assert handler.cancelled == 1
    handler.gate.set()
    assert (await receiver.respond(CALLBACK_BODY)).acknowledged
    assert handler.flags == [False, False]


async def test_default_timeout_is_well_under_the_gateways_ten_seconds(
    receiver: NotificationReceiver,
) -> None:
    """The documented default leaves room inside the 10-second rule."""
    assert receiver.handler_timeout <= 5.0


@pytest.mark.parametrize("method", ["GET", "PUT", "HEAD", "DELETE"])
async def test_only_post_is_served(
    http: httpx.AsyncClient, handler: Recorder, method: str
) -> None:
    """Other methods get 405 with Allow: POST."""
    response = await http.request(method, URL)
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert handler.calls == []


class BrokenStore:
    """A store whose lookups or marks fail."""

    def __init__(self, *, lookup: bool = False, mark: bool = False) -> None:
        self.lookup = lookup
        self.mark = mark

    async def was_handled(self, key: str) -> bool:
        """Fail or say no."""
        if self.lookup:
            raise ConnectionError(key)
        return False

    async def mark_handled(self, key: str) -> None:
        """Fail or forget."""
        if self.mark:
            raise ConnectionError(key)


async def test_store_lookup_failure_withholds_ok(handler: Recorder) -> None:
    """If the store cannot tell, the handler is not run and no OK goes out."""
    receiver = NotificationReceiver(SECRET, handler, store=BrokenStore(lookup=True))
    response = await receiver.respond(CALLBACK_BODY)
    assert response.status_code == 500
    assert handler.calls == []


async def test_store_mark_failure_still_acknowledges(
    handler: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    """The handler succeeded, so OK goes out; the failed mark is logged."""
    receiver = NotificationReceiver(SECRET, handler, store=BrokenStore(mark=True))
    assert (await receiver.respond(CALLBACK_BODY)).acknowledged
    assert "failed to mark" in caplog.text


async def test_custom_store_is_used(handler: Recorder) -> None:
    """A store shared by two receivers (two processes) carries the flag."""

    class DictStore:
        def __init__(self) -> None:
            self.keys: set[str] = set()

        async def was_handled(self, key: str) -> bool:
            return key in self.keys

        async def mark_handled(self, key: str) -> None:
            self.keys.add(key)

    store = DictStore()
    assert isinstance(store, NotificationStore)
    one = NotificationReceiver(SECRET, handler, store=store)
    two = NotificationReceiver(SECRET, handler, store=store)
    assert (await one.respond(CALLBACK_BODY)).acknowledged
    assert (await two.respond(CALLBACK_BODY)).acknowledged
    assert handler.flags == [False, True]


async def test_memory_store_is_bounded() -> None:
    """The default store forgets its oldest keys beyond max_entries."""
    store = MemoryNotificationStore(max_entries=2)
    for key in ("a", "b", "c"):
        await store.mark_handled(key)
    assert len(store) == 2
    assert not await store.was_handled("a")
    assert await store.was_handled("c")
    with pytest.raises(InvalidRequestError):
        MemoryNotificationStore(max_entries=0)


async def test_max_age_is_off_by_default(handler: Recorder) -> None:
    """A day-old retry is still handled by default."""
    receiver = NotificationReceiver(SECRET, handler, clock=lambda: NOW + 86400)
    assert (await receiver.respond(CALLBACK_BODY)).acknowledged


async def test_max_age_refuses_stale_notifications(handler: Recorder) -> None:
    """With max_age on, an old notification gets 400 and no handler call."""
    receiver = NotificationReceiver(
        SECRET, handler, max_age=600, clock=lambda: NOW + 601
    )
    response = await receiver.respond(CALLBACK_BODY)
    assert response.status_code == 400
    assert handler.calls == []
    fresh = NotificationReceiver(SECRET, handler, max_age=600, clock=lambda: NOW)
    assert (await fresh.respond(CALLBACK_BODY)).acknowledged


async def test_deposit_receiver(handler: Recorder) -> None:
    """kind='deposit' hands the handler DepositNotifications."""
    receiver = NotificationReceiver(SECRET, handler, kind="deposit")
    assert (await receiver.respond(CALLBACK_BODY)).acknowledged
    assert isinstance(handler.calls[0][0], DepositNotification)


async def test_logs_never_show_the_secret(
    http: httpx.AsyncClient, handler: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    """Accepted, refused and failed deliveries log without the secret."""
    caplog.set_level(logging.DEBUG, logger="vexora_async")
    await http.post(URL, content=CALLBACK_BODY)
    await http.post(URL, content=b"[]")
    await http.post(URL, content=callback({"amount": "7"}, secret="other"))
    handler.fail = True
    await http.post(URL, content=callback({"status": "0015"}))
    assert "refused notification" in caplog.text
    assert "trade_no=VX20260331004567" in caplog.text
    assert SECRET not in caplog.text


def test_repr_hides_the_secret(receiver: NotificationReceiver) -> None:
    """The receiver's repr names its settings, never the secret."""
    assert SECRET not in repr(receiver)
    assert "NotificationReceiver(" in repr(receiver)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"app_secret": ""}, "app_secret"),
        ({"handler": None}, "handler"),
        ({"kind": "refund"}, "kind"),
        ({"max_body_bytes": 0}, "max_body_bytes"),
        ({"handler_timeout": 0}, "handler_timeout"),
        ({"max_age": -1}, "max_age"),
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, Any], field: str) -> None:
    """Misconfiguration fails at construction, naming the setting."""
    args: dict[str, Any] = {"app_secret": SECRET, "handler": Recorder(), **kwargs}
    with pytest.raises(InvalidRequestError) as info:
        NotificationReceiver(args.pop("app_secret"), args.pop("handler"), **args)
    assert info.value.field == field


@pytest.mark.parametrize(
    "response",
    [
        ReceiverResponse(500, "handler failed"),
        ReceiverResponse(200, "OK "),
        ReceiverResponse(201, "OK"),
    ],
)
def test_only_200_ok_is_an_acknowledgement(response: ReceiverResponse) -> None:
    """Anything but status 200 with body exactly OK is not acknowledged."""
    assert not response.acknowledged


# -- the ASGI protocol beyond plain requests ------------------------------------


async def test_lifespan_is_answered(receiver: NotificationReceiver) -> None:
    """Served alone, the receiver completes the lifespan protocol."""
    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: Any) -> None:
        sent.append(dict(message))

    await receiver({"type": "lifespan"}, receive, send)
    assert [m["type"] for m in sent] == [
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
    ]


async def test_websocket_is_closed(receiver: NotificationReceiver) -> None:
    """A websocket connection is refused."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: Any) -> None:
        sent.append(dict(message))

    await receiver({"type": "websocket"}, receive, send)
    assert sent == [{"type": "websocket.close", "code": 1008}]


async def test_disconnected_client_gets_nothing(
    receiver: NotificationReceiver, handler: Recorder
) -> None:
    """If the gateway hangs up mid-body, nothing is handled or sent."""
    incoming: list[dict[str, Any]] = [
        {"type": "http.request", "body": CALLBACK_BODY[:10], "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "headers": []}
    await receiver(scope, receive, send)
    assert sent == []
    assert handler.calls == []


async def test_real_server_on_loopback(
    receiver: NotificationReceiver, handler: Recorder
) -> None:
    """Under uvicorn on 127.0.0.1, a POST gets OK over real HTTP."""
    config = uvicorn.Config(
        receiver, host="127.0.0.1", port=0, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:  # noqa: ASYNC110 - uvicorn offers no event
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        async with httpx.AsyncClient(trust_env=False) as client:
            response = await client.post(
                f"http://127.0.0.1:{port}/anything", content=CALLBACK_BODY
            )
        assert_ok(response)
        assert handler.flags == [False]
    finally:
        server.should_exit = True
        await task
