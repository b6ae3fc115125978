"""An ASGI app that receives gateway callbacks and answers what it expects.

The gateway wants HTTP 200 with the plain body ``OK`` within 10 seconds,
and delivers again (8 times over 24 hours) on anything else. So the
receiver answers ``OK`` only after your handler returned, answers an error
(never containing ``OK``) when the body is refused or the handler failed or
ran out of time, and tells the handler when the same (kind, tradeNo,
status) was already handled. It depends on no web framework: mount it in
FastAPI or Starlette, serve it with any ASGI server, or call
:meth:`NotificationReceiver.respond` from any other framework.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    MutableMapping,
    Sequence,
)
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from vexora_async._deadline import run_until
from vexora_async._masking import mask_digit_runs
from vexora_async._secret import Secret, as_secret
from vexora_async._validation import (
    MAX_NOTIFICATION_AGE,
    MAX_NOTIFICATION_BYTES,
    check_callable,
    check_count,
    check_kind,
    check_seconds,
)
from vexora_async.events import CallbackHandled, Event, as_hooks, emit
from vexora_async.exceptions import (
    InvalidRequestError,
    NotificationError,
    NotificationTooLarge,
)

from ._parse import DEFAULT_MAX_BYTES, parse_notification
from ._stores import MemoryNotificationStore, NotificationStore


if TYPE_CHECKING:
    from ._records import Notification, NotificationKind


logger = logging.getLogger("vexora_async.notifications")

#: Well under the gateway's 10 s, leaving room for the network both ways.
DEFAULT_HANDLER_TIMEOUT = 5.0
#: Seconds to receive a whole body. A callback is a few hundred bytes sent
#: at once; together with the handler's 5 s this stays under the gateway's
#: 10 s.
DEFAULT_BODY_TIMEOUT = 3.0
#: Requests that may wait for their body at once. A body that has fully
#: arrived when the request reaches the receiver (a real callback's, as a
#: rule) never waits, so it needs no slot.
DEFAULT_MAX_BODY_READS = 100

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class Handler(Protocol):
    """``async def handler(notification, *, already_handled) -> None``.

    Return to acknowledge; raise to make the gateway deliver it again.
    """

    def __call__(
        self, notification: Notification, /, *, already_handled: bool
    ) -> Awaitable[object]:
        """Handle one verified notification."""
        ...


_TEXT = "text/plain; charset=utf-8"


@attrs.frozen
class ReceiverResponse:
    """What to answer the gateway: a status and a short plain-text body.

    The body is ``OK`` exactly when :attr:`acknowledged`; no error body
    contains those letters.
    """

    status_code: int
    text: str
    headers: tuple[tuple[str, str], ...] = ()
    content_type: str = _TEXT

    @property
    def acknowledged(self) -> bool:
        """Whether this answer tells the gateway to stop delivering."""
        return self.status_code == 200 and self.text == "OK"  # noqa: PLR2004

    @property
    def body(self) -> bytes:
        """The body as bytes."""
        return self.text.encode("utf-8")


_ACK = ReceiverResponse(200, "OK")
_CLOSE = ("connection", "close")
# Both close the connection: its file descriptor is what a flood of slow
# bodies exhausts.
_BODY_TIMEOUT = ReceiverResponse(408, "body not received in time", (_CLOSE,))
_BUSY = ReceiverResponse(503, "too many slow requests", (_CLOSE,))
_HANDLER_FAILED = ReceiverResponse(500, "handler failed")
_RECEIVER_FAILED = ReceiverResponse(500, "receiver failed")
_HANDLER_TIMEOUT = ReceiverResponse(503, "handler timed out")
_NOT_POST = ReceiverResponse(405, "method not allowed", (("allow", "POST"),))
_REASONS = {
    400: "malformed notification",
    403: "invalid signature",
    413: "payload too large",
}


def _refusal(exc: NotificationError) -> ReceiverResponse:
    # A short fixed reason: the sender learns nothing about the secret or
    # the expected sign.
    return ReceiverResponse(exc.http_status, _REASONS.get(exc.http_status, "refused"))


class _BodyRead:
    """One request's body read: whether it waits now, and its push-out signal."""

    __slots__ = ("pushed_out", "waiting")

    def __init__(self, pushed_out: asyncio.Future[None]) -> None:
        self.waiting = False
        self.pushed_out = pushed_out


class _KeyedLocks:
    """One asyncio lock per key, dropped when nobody holds or awaits it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    def __len__(self) -> int:
        return len(self._locks)

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


class _Seen:
    """What a callback delivery showed, for the ``CallbackHandled`` event."""

    __slots__ = (
        "duplicate",
        "error_type",
        "handler_time",
        "kind",
        "status",
        "trade_no",
    )

    def __init__(self) -> None:
        self.kind: str | None = None
        self.trade_no: str | None = None
        self.status: str | None = None
        self.duplicate = False
        self.handler_time: float | None = None
        self.error_type: str | None = None


class NotificationReceiver:
    """An ASGI app that verifies callbacks and acknowledges them correctly.

    For each POST it reads the body (at most *max_body_bytes*, within
    *body_timeout* seconds), verifies it with
    :func:`~vexora_async.notifications.parse_notification` (with *kind*
    and *max_age*), and awaits ``handler(notification,
    already_handled=...)``. Deliveries of the same (kind, tradeNo, status)
    never run the handler concurrently.

    It answers 200 ``OK`` when the handler returned; 400, 403 or 413 for a
    refused body; 408 when the body did not arrive within *body_timeout*;
    503 to the requests that have waited longest for their bodies when
    more than *max_body_reads* are waiting (both close the connection; a
    request whose body has arrived never waits, so a burst of real
    callbacks pushes nobody out and is never pushed out); 500 when the
    handler raised (anything but a cancellation, ``SystemExit`` and
    ``KeyboardInterrupt`` included) and 503 when it took longer than
    *handler_timeout* seconds (it is then cancelled). The gateway
    delivers again after any answer but ``OK``.

    Keep the handler fast: record the fact durably (one database write)
    and leave slow work to a background task; see "Receiving callbacks".
    A signature proves the gateway sent a callback, not that its tradeNo
    is one of yours: the handler must check that.

    Every option is checked here: one of the wrong type or value raises
    :class:`~vexora_async.InvalidRequestError` whose ``field`` names it.

    :param app_secret: The secret callbacks are signed with (the client's):
        a ``str`` or a :class:`~vexora_async.Secret`; the receiver keeps
        only the masked wrapper. Required. Valid: a non-empty string.
    :param handler: ``async def handler(notification, *,
        already_handled)``: return to acknowledge, raise to have the
        gateway deliver again. *already_handled* is true when *store* says
        this (kind, tradeNo, status) was handled before. Required. Valid:
        a callable.
    :param kind: ``"payout"`` or ``"deposit"``: the one kind this
        receiver takes; a body carrying the other kind's fields is refused
        (400). Default ``None``: guessed from the body (see
        :func:`~vexora_async.notifications.parse_notification`); give each
        kind its own ``notify_url`` and receiver instead.
    :param store: Remembers which notifications were handled. Default
        ``None``: a :class:`MemoryNotificationStore` of this process
        (100,000 keys, forgotten on restart). Valid: anything with async
        ``was_handled(key)`` and ``mark_handled(key)``; share one (such as
        :class:`RedisNotificationStore`) between receiver replicas. Cost:
        one read per delivery before the handler, and one write after the
        first that succeeded.
    :param max_body_bytes: The largest body read; a larger one is refused
        with 413, as soon as its size shows. Default ``65536`` (64 KiB; a callback
        is a few hundred bytes). Valid: an ``int`` from 1 to 16 MiB.
    :param handler_timeout: Seconds the handler may run before it is
        cancelled and the gateway gets 503. Default ``5.0``, well under
        the gateway's 10 s. Valid: over 0, at most 86,400; past about 10 s
        the gateway has given up on the answer and delivers again.
    :param max_age: Refuse notifications whose ``timestamp`` is older, in
        seconds (400). Default ``None``: not checked. Valid: over 0, at
        most 604,800 (a week). The gateway redelivers for hours, so a
        short limit refuses its legitimate retries.
    :param clock: Returns epoch seconds, for *max_age*. Default
        ``time.time``. Valid: a callable.
    :param body_timeout: Seconds to receive a whole body, else 408.
        Default ``3.0`` (with the handler's 5 s, under the gateway's 10 s).
        Valid: over 0, at most 86,400.
    :param max_body_reads: Requests that may wait for their body at once;
        past it the longest waiting get 503. Default ``100``. Valid: an
        ``int`` of at least 1. Cost: each waiting request holds a
        connection (a file descriptor) until its body or *body_timeout*.
    :param on_event: A callable, or a sequence of them, called with a
        :class:`~vexora_async.events.CallbackHandled` for each delivery
        answered. Default ``None``. The receiver is not instrumented by
        itself: give it the client's :class:`~vexora_async.otel.OpenTelemetryHook`
        or :class:`~vexora_async.prometheus.PrometheusHook` here.
    """

    def __init__(
        self,
        app_secret: str | Secret,
        handler: Handler,
        *,
        kind: NotificationKind | None = None,
        store: NotificationStore | None = None,
        max_body_bytes: int = DEFAULT_MAX_BYTES,
        handler_timeout: float = DEFAULT_HANDLER_TIMEOUT,
        max_age: float | None = None,
        clock: Callable[[], float] = time.time,
        body_timeout: float = DEFAULT_BODY_TIMEOUT,
        max_body_reads: int = DEFAULT_MAX_BODY_READS,
        on_event: Callable[[Event], object]
        | Sequence[Callable[[Event], object]]
        | None = None,
    ) -> None:
        try:
            self._app_secret = as_secret(app_secret)
        finally:  # from here on only the masked wrapper
            del app_secret
        check_callable("handler", handler)
        check_kind("kind", kind)
        if store is not None and not isinstance(store, NotificationStore):
            raise InvalidRequestError(
                "store",
                "must have async was_handled(key) and mark_handled(key) methods",
            )
        check_callable("clock", clock)
        self._handler = handler
        self.kind = kind
        self.store: NotificationStore = (
            MemoryNotificationStore() if store is None else store
        )
        # The checks parse_notification runs on each body, run once here.
        self.max_body_bytes = check_count(
            "max_body_bytes", max_body_bytes, 1, MAX_NOTIFICATION_BYTES
        )
        self.handler_timeout = check_seconds("handler_timeout", handler_timeout)
        self.max_age = (
            None
            if max_age is None
            else check_seconds("max_age", max_age, maximum=MAX_NOTIFICATION_AGE)
        )
        self.body_timeout = check_seconds("body_timeout", body_timeout)
        self.max_body_reads = check_count("max_body_reads", max_body_reads, 1)
        self._clock = clock
        self._hooks = as_hooks(on_event)
        self._locks = _KeyedLocks()
        # The requests reading their body, oldest first; only those inside
        # receive() are waiting for it and count against max_body_reads.
        self._reads: dict[_BodyRead, None] = {}
        # The loop a bound check is pending on (a loop that stopped before
        # running it must not leave the check skipped forever).
        self._bounding: asyncio.AbstractEventLoop | None = None
        self._throttle = _Throttle()

    def __repr__(self) -> str:
        # Never the secret.
        return (
            f"NotificationReceiver(handler={self._handler!r}, kind={self.kind!r}, "
            f"store={self.store!r}, handler_timeout={self.handler_timeout!r}, "
            f"body_timeout={self.body_timeout!r}, "
            f"max_body_reads={self.max_body_reads!r})"
        )

    @property
    def body_reads_in_flight(self) -> int:
        """Requests waiting for their body now.

        At most :attr:`max_body_reads` from one turn of the event loop to
        the next; a request whose body has arrived never waits.
        """
        return sum(read.waiting for read in self._reads)

    # -- framework-neutral core ----------------------------------------------

    async def respond(self, body: bytes) -> ReceiverResponse:
        """Verify *body*, run the handler and return what to answer.

        The entry point for frameworks that are not ASGI (aiohttp): read
        the body with a size cap of :attr:`max_body_bytes` and a time limit
        of :attr:`body_timeout`, call this, and send back the returned
        status, body and content type. Never raises, except for
        cancellation.
        """
        if not self._hooks:
            return await self._respond(body, None)
        seen = _Seen()
        response = await self._respond(body, seen)
        emit(
            self._hooks,
            CallbackHandled(
                kind=seen.kind,
                trade_no=seen.trade_no,
                status=seen.status,
                http_status=response.status_code,
                duplicate=seen.duplicate,
                handler_time=seen.handler_time,
                error_type=seen.error_type,
            ),
        )
        return response

    async def _respond(self, body: bytes, seen: _Seen | None) -> ReceiverResponse:
        try:
            notification = parse_notification(
                body,
                self._app_secret,
                kind=self.kind,
                max_bytes=self.max_body_bytes,
                max_age=self.max_age,
                now=self._clock() if self.max_age is not None else None,
            )
        except NotificationError as exc:
            logger.warning(
                "refused notification: %s: %s",
                type(exc).__name__,
                mask_digit_runs(exc.message),
            )
            if seen is not None:
                seen.error_type = type(exc).__name__
            return _refusal(exc)
        if seen is not None:
            seen.kind = notification.kind
            seen.trade_no = notification.trade_no
            seen.status = str(notification.status)
        when = asyncio.get_running_loop().time() + self.handler_timeout
        try:
            # Not asyncio.wait_for: before 3.12 it can swallow a
            # cancellation of ours (a server shutting down).
            return await run_until(self._process(notification, seen), when)
        except TimeoutError:
            logger.error(  # noqa: TRY400 - the traceback of a timeout says nothing
                "handler timed out after %s s: kind=%s trade_no=%s status=%s",
                self.handler_timeout,
                notification.kind,
                notification.trade_no,
                notification.status,
            )
            return _HANDLER_TIMEOUT

    async def _process(
        self, notification: Notification, seen: _Seen | None = None
    ) -> ReceiverResponse:
        key = notification.dedup_key
        async with self._locks.hold(key):
            try:
                already_handled = await self.store.was_handled(key)
            # A store is user code: whatever it raises, no OK goes out.
            except asyncio.CancelledError:
                raise
            except BaseException:
                logger.exception("notification store failed to look up %s", key)
                return _RECEIVER_FAILED
            logger.info(
                "notification kind=%s trade_no=%s status=%s amount=%s "
                "already_handled=%s",
                notification.kind,
                notification.trade_no,
                notification.status,
                notification.amount,
                already_handled,
            )
            if seen is not None:
                seen.duplicate = already_handled
            started = time.perf_counter()
            try:
                await self._handler(notification, already_handled=already_handled)
            # The handler is user code: whatever it raises (SystemExit and
            # KeyboardInterrupt too), the gateway must deliver again and the
            # server must keep serving. Only a cancellation goes through.
            except asyncio.CancelledError:
                raise
            except BaseException:
                logger.exception(
                    "handler failed: kind=%s trade_no=%s status=%s",
                    notification.kind,
                    notification.trade_no,
                    notification.status,
                )
                if seen is not None:
                    seen.handler_time = time.perf_counter() - started
                    seen.error_type = "handler failed"
                return _HANDLER_FAILED
            if seen is not None:
                seen.handler_time = time.perf_counter() - started
            if not already_handled:
                await self._mark(key)
            return _ACK

    async def _mark(self, key: str) -> None:
        try:
            await self.store.mark_handled(key)
        # The handler succeeded: acknowledging is right. The next delivery
        # (if any) reads as new, which an idempotent handler shrugs off.
        except asyncio.CancelledError:
            raise
        except BaseException:
            logger.exception("notification store failed to mark %s", key)

    # -- ASGI --------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection."""
        if scope["type"] == "lifespan":
            await serve_lifespan(receive, send)
            return
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
            return
        if scope.get("method") != "POST":
            await _send(send, _NOT_POST)
            return
        body = await self._read_body(scope, receive)
        if body is None:
            return  # the client went away: nobody to answer
        if isinstance(body, ReceiverResponse):
            await _send(send, body)
            return
        await _send(send, await self.respond(body))

    def _declared_too_large(self, scope: Scope) -> bool:
        for name, value in scope.get("headers", ()):
            if name.lower() == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    return False
                if declared > self.max_body_bytes:
                    logger.warning(
                        "refused notification: Content-Length %s is over %s bytes",
                        declared,
                        self.max_body_bytes,
                    )
                    return True
                return False
        return False

    async def _read_body(
        self, scope: Scope, receive: Receive
    ) -> bytes | ReceiverResponse | None:
        if self._declared_too_large(scope):
            return self._too_large()
        loop = asyncio.get_running_loop()
        read = _BodyRead(loop.create_future())
        self._reads[read] = None
        reader = loop.create_task(self._collect(receive, read))
        either: set[asyncio.Future[Any]] = {reader, read.pushed_out}
        try:
            # asyncio.wait, unlike wait_for, never swallows our cancellation.
            await asyncio.wait(
                either,
                timeout=self.body_timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            self._reads.pop(read, None)
            if not reader.done():
                reader.cancel()
        if reader.done():
            # A body that has arrived is served, even if the read was
            # pushed out or timed out while it was coming in.
            return reader.result()
        if read.pushed_out.done():
            return _BUSY
        self._throttle.warning(
            "refused notification: the body did not arrive within %s s (408)",
            self.body_timeout,
        )
        return _BODY_TIMEOUT

    async def _collect(
        self, receive: Receive, read: _BodyRead
    ) -> bytes | ReceiverResponse | None:
        body = bytearray()
        while True:
            # Counted as waiting only while inside receive(): a body that
            # has arrived comes back without suspending, so no other request
            # can see this read waiting, let alone push it out.
            read.waiting = True
            if len(self._reads) > self.max_body_reads:
                self._bound_later()
            try:
                message = await receive()
            finally:
                read.waiting = False
            if message["type"] == "http.disconnect":
                return None
            if message["type"] != "http.request":
                continue
            body += message.get("body", b"")
            if len(body) > self.max_body_bytes:
                logger.warning(
                    "refused notification: body over %s bytes", self.max_body_bytes
                )
                return self._too_large()
            if not message.get("more_body", False):
                return bytes(body)

    def _bound_later(self) -> None:
        # Not at once: the reads of a burst that arrived together start one
        # after another in this turn of the event loop, and those whose body
        # is complete finish without waiting. Counting on the next turn
        # pushes out only reads still waiting then.
        loop = asyncio.get_running_loop()
        if self._bounding is not loop:
            self._bounding = loop
            loop.call_soon(self._bound)

    def _bound(self) -> None:
        self._bounding = None
        excess = self.body_reads_in_flight - self.max_body_reads
        if excess <= 0:
            return
        # Push out the reads that have waited longest: a real callback's
        # body follows its headers within milliseconds, so only a flood
        # faster than that could push it out, whereas refusing newcomers
        # would let a few slow bodies, renewed as they time out, keep every
        # real callback out.
        oldest = [read for read in self._reads if read.waiting][:excess]
        for read in oldest:
            del self._reads[read]
            read.pushed_out.set_result(None)
            self._throttle.warning(
                "busy: %s requests were waiting for their bodies; "
                "dropped the one waiting longest (503)",
                self.max_body_reads,
            )

    def _too_large(self) -> ReceiverResponse:
        return _refusal(
            NotificationTooLarge(f"the body is over {self.max_body_bytes} bytes")
        )


class _Throttle:
    """Log a flood's warnings at most once per *interval* seconds."""

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self.last: dict[str, float] = {}
        self.skipped: dict[str, int] = {}

    def warning(self, msg: str, *args: object) -> None:
        now = time.monotonic()
        if now - self.last.get(msg, -math.inf) < self.interval:
            self.skipped[msg] = self.skipped.get(msg, 0) + 1
            return
        skipped = self.skipped.pop(msg, 0)
        self.last[msg] = now
        suffix = (
            f" (and {skipped} more like it since the last report)" if skipped else ""
        )
        template = msg + "%s"
        logger.warning(template, *args, suffix)


async def _send(send: Send, response: ReceiverResponse) -> None:
    body = response.body
    headers = [
        (b"content-type", response.content_type.encode("latin-1")),
        (b"content-length", str(len(body)).encode("latin-1")),
        *((k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers),
    ]
    await send(
        {
            "type": "http.response.start",
            "status": response.status_code,
            "headers": headers,
        }
    )
    await send({"type": "http.response.body", "body": body})


async def serve_lifespan(receive: Receive, send: Send) -> None:
    """Answer the ASGI lifespan protocol for an app with nothing to start."""
    # Served alone (uvicorn module:receiver), the receiver gets the
    # lifespan protocol; it has nothing to start or stop.
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
