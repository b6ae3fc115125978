"""A reverse proxy on loopback that lies about creates it has forwarded.

Every fault it plays happens *after* the gateway has the request: a load
balancer's 503 or 429 once its upstream timed out or reset, an answer
meant for another request (another amount, another tradeNo), or a
connection cut before the answer. Gateway answers carry no signature, so
a proxy can rewrite one unseen; the SDK can only check what it says.

The proxy keeps the ground truth the campaign judges by: each create it
forwarded, when it arrived and whether the gateway executed it (its true
answer, read before any fault is played).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import random
import threading
from typing import TYPE_CHECKING, Any

import attrs
import httpx


if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

CREATE_PATH = "/v1/vexora/disbursements"

FORWARD = "forward"
S503 = "503 after forwarding"
S503_RETRY_AFTER = "503 + Retry-After after forwarding"
S429 = "429 after forwarding"
S429_RETRY_AFTER = "429 + Retry-After after forwarding"
OTHER_AMOUNT = "0000 with another amount"
OTHER_TRADE_NO = "0000 about another tradeNo"
OTHER_REFUSAL = "8000 about another tradeNo"
DROP = "connection dropped after forwarding"

#: How often each fault is played on a create, in percent.
FAULT_WEIGHTS: dict[str, int] = {
    FORWARD: 58,
    S503: 5,
    S503_RETRY_AFTER: 4,
    S429: 4,
    S429_RETRY_AFTER: 4,
    OTHER_AMOUNT: 7,
    OTHER_TRADE_NO: 6,
    OTHER_REFUSAL: 4,
    DROP: 8,
}
#: The amount a misrouted answer carries (no campaign payout asks for it).
FOREIGN_AMOUNT = "999999"
_STATUS = {
    S503: (503, None),
    S503_RETRY_AFTER: (503, "1"),
    S429: (429, None),
    S429_RETRY_AFTER: (429, "1"),
}
_REASONS = {200: "OK", 429: "Too Many Requests", 502: "Bad Gateway", 503: "Unavailable"}
_HOP_BY_HOP = frozenset(
    {"host", "content-length", "connection", "keep-alive", "transfer-encoding"}
)


@attrs.frozen
class Forwarded:
    """One create the proxy forwarded, and what the gateway really did."""

    trade_no: str
    #: The request's signed ``timestamp`` (epoch ms): when the SDK made
    #: this attempt, which names the call it belongs to.
    signed_at: int
    fault: str
    executed: bool


class FaultyProxy:
    """Forward to *upstream*; play a seeded fault on some creates.

    The fault of a create depends only on *seed*, its tradeNo and how many
    times that tradeNo came by before: the same run plays the same faults
    whatever the interleaving. Set :attr:`faulty` to ``False`` to forward
    everything as it is.
    """

    def __init__(self, seed: int, trade_nos: Sequence[str]) -> None:
        self.seed = seed
        self.trade_nos = list(trade_nos)
        self.upstream = ""
        self.faulty = True
        self.faults: collections.Counter[str] = collections.Counter()
        self.upstream_errors = 0
        self._seen: collections.Counter[str] = collections.Counter()
        self._forwarded: list[Forwarded] = []
        self._lock = threading.Lock()
        self._busy = 0
        self._http: httpx.AsyncClient | None = None

    @property
    def in_flight(self) -> int:
        """Requests the proxy is handling now."""
        return self._busy

    def forwarded(self) -> list[Forwarded]:
        """Every create forwarded so far."""
        with self._lock:
            return list(self._forwarded)

    @contextlib.asynccontextmanager
    async def serving(self, upstream: str) -> AsyncIterator[str]:
        """Listen on a free loopback port; yield the base URL to give clients."""
        self.upstream = upstream
        handlers: set[asyncio.Task[Any]] = set()
        writers: set[asyncio.StreamWriter] = set()

        async def handle(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter
        ) -> None:
            task = asyncio.current_task()
            if task is not None:
                handlers.add(task)
                task.add_done_callback(handlers.discard)
            writers.add(writer)
            try:
                await self._connection(reader, writer)
            finally:
                writers.discard(writer)

        async with httpx.AsyncClient(timeout=30.0) as self._http:
            server = await asyncio.start_server(handle, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            try:
                yield f"http://127.0.0.1:{port}/myanmar"
            finally:
                server.close()
                # Cut the idle keep-alive connections rather than cancel
                # their handlers: asyncio's streams log a cancelled handler
                # as an error on some Pythons.
                for writer in list(writers):
                    writer.transport.abort()
                if handlers:
                    await asyncio.wait(handlers, timeout=5)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(server.wait_closed(), 2)

    async def _connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if line:
                        name, _, value = line.partition(":")
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", 0)))
                self._busy += 1
                try:
                    keep = await self._answer(writer, method, target, headers, body)
                finally:
                    self._busy -= 1
                if not keep:
                    return
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            pass  # the client hung up, as it may after its deadline
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _answer(
        self,
        writer: asyncio.StreamWriter,
        method: str,
        target: str,
        headers: dict[str, str],
        body: bytes,
    ) -> bool:
        """Forward one request and answer it; False: the connection is cut."""
        trade_no, signed_at = (
            _identity(body) if target.endswith(CREATE_PATH) else (None, 0)
        )
        fault = self._pick(trade_no) if trade_no is not None else FORWARD
        assert self._http is not None
        try:
            answer = await self._http.request(
                method,
                self.upstream + target,  # the gateway takes any prefix
                headers={k: v for k, v in headers.items() if k not in _HOP_BY_HOP},
                content=body,
            )
        except httpx.HTTPError:
            self.upstream_errors += 1
            await _write(writer, 502, b"upstream failed", "text/plain")
            return True
        if trade_no is not None:
            executed = _executed(answer, trade_no)
            fault = self._play_or_forward(fault, answer)
            with self._lock:
                self.faults[fault] += 1
                self._forwarded.append(Forwarded(trade_no, signed_at, fault, executed))
        if fault == DROP:
            writer.transport.abort()
            return False
        if fault in _STATUS:
            status, retry_after = _STATUS[fault]
            page = f"<html><body><h1>{status}</h1>upstream reset</body></html>"
            await _write(writer, status, page.encode(), "text/html", retry_after)
            return True
        content = answer.content
        if fault in {OTHER_AMOUNT, OTHER_TRADE_NO, OTHER_REFUSAL}:
            assert trade_no is not None
            content = self._misroute(fault, trade_no, answer.json())
        kind = answer.headers.get("content-type", "application/json")
        await _write(writer, answer.status_code, content, kind)
        return True

    def _pick(self, trade_no: str) -> str:
        if not self.faulty:
            return FORWARD
        with self._lock:
            self._seen[trade_no] += 1
            nth = self._seen[trade_no]
        rng = random.Random(f"{self.seed}:{trade_no}:{nth}")
        [fault] = rng.choices(list(FAULT_WEIGHTS), weights=list(FAULT_WEIGHTS.values()))
        return fault

    def _play_or_forward(self, fault: str, answer: httpx.Response) -> str:
        """Return the fault actually played: an amount needs an answer to alter."""
        if fault == OTHER_AMOUNT:
            data = _data(answer)
            if data is None or "amount" not in data:
                return FORWARD
        return fault

    def _misroute(self, fault: str, trade_no: str, envelope: Any) -> bytes:
        other = self._other(trade_no)
        data = dict(envelope.get("data") or {})
        if fault == OTHER_AMOUNT:
            data["amount"] = FOREIGN_AMOUNT
            if "orderAmount" in data:
                data["orderAmount"] = float(FOREIGN_AMOUNT)
            answer = {**envelope, "data": data}
        elif fault == OTHER_TRADE_NO:
            data = {"status": "0015", "amount": FOREIGN_AMOUNT, **data}
            answer = {**envelope, "code": "0000", "success": True, "msg": "success"}
            answer["data"] = {**data, "tradeNo": other}
        else:
            answer = {
                "msg": "tradeNo already exists",
                "code": "8000",
                "timestamp": envelope.get("timestamp", 0),
                "success": False,
                "data": {"tradeNo": other},
            }
        return json.dumps(answer).encode()

    def _other(self, trade_no: str) -> str:
        index = self.trade_nos.index(trade_no) if trade_no in self.trade_nos else 0
        return self.trade_nos[(index + 1) % len(self.trade_nos)]


def _identity(body: bytes) -> tuple[str | None, int]:
    """Return a create's tradeNo and signed timestamp (0 if unreadable)."""
    try:
        fields = json.loads(body)
    except ValueError:
        return None, 0
    if not isinstance(fields, dict) or not isinstance(fields.get("tradeNo"), str):
        return None, 0
    stamp = str(fields.get("timestamp"))
    return fields["tradeNo"], int(stamp) if stamp.isdigit() else 0


def _data(answer: httpx.Response) -> dict[str, Any] | None:
    try:
        envelope = answer.json()
    except ValueError:
        return None
    if not isinstance(envelope, dict) or envelope.get("code") != "0000":
        return None
    data = envelope.get("data")
    return data if isinstance(data, dict) else None


def _executed(answer: httpx.Response, trade_no: str) -> bool:
    """Tell from the gateway's true answer whether it executed this create."""
    data = _data(answer) if answer.status_code == 200 else None
    return data is not None and data.get("tradeNo") == trade_no


async def _write(
    writer: asyncio.StreamWriter,
    status: int,
    body: bytes,
    content_type: str,
    retry_after: str | None = None,
) -> None:
    head = [
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body)}",
    ]
    if retry_after is not None:
        head.append(f"Retry-After: {retry_after}")
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
    await writer.drain()
