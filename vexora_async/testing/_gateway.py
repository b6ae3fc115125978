"""The fake gateway's state: requests in, replies and callbacks out, no I/O.

:class:`FakeGateway` answers one request at a time (:meth:`FakeGateway.handle`
takes the method, path, headers and body and returns a :class:`Reply`), and
keeps its own time only through the clocks it is given: the ASGI adapter
(:class:`~vexora_async.testing.SandboxApp`) sleeps until
:meth:`FakeGateway.next_due`, calls :meth:`FakeGateway.advance` and POSTs the
:class:`CallbackDelivery` values it returns. A test can drive it by hand
with a fake clock just as well.
"""

from __future__ import annotations

import heapq
import itertools
import json
import re
import threading
import time
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import attrs

from vexora_async._models import Balance, TransactionStatus
from vexora_async._operations import Operation
from vexora_async._signer import SIGN_FIELD, sign, verify
from vexora_async.exceptions import InvalidRequestError

from ._config import SandboxConfig
from ._faults import Fault, FaultKind, FaultPlan
from ._stats import SandboxStats
from ._transactions import (
    Transaction,
    TransactionKind,
    callback_fields,
    default_scenario,
    local_time,
    message_for,
    status_data,
)


if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from ._transactions import Scenario


CODE_OK = "0000"
CODE_SYSTEM_ERROR = "5000"
CODE_REJECTED = "8000"
_JSON = (("content-type", "application/json"),)
_TEXT = (("content-type", "text/plain; charset=utf-8"),)
_HTML = (("content-type", "text/html"),)
_TIMESTAMP = re.compile(r"[0-9]{1,16}")
_AMOUNT = re.compile(r"[0-9]{1,15}(\.0{1,2})?")
_BANK_CODES = frozenset({"KBZPAY", "WAVEPAY"})
_MAX_TRADE_NO = 64
_MIN_PAYOUT = Decimal(100)
_GARBAGE = b'{"msg":"success","code":"0000","data":{"tradeNo":"'


def _epoch_ms() -> int:
    return time.time_ns() // 1_000_000


@attrs.frozen
class Reply:
    """What the gateway answers one request with.

    *delay*: seconds to wait before answering. *drop*: close the connection
    and answer nothing (then *status* and *body* are unused).
    """

    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = _JSON
    delay: float = 0.0
    drop: bool = False


@attrs.frozen
class CallbackDelivery:
    """One callback POST to make: *body* is signed JSON; *attempt* counts from 1."""

    kind: TransactionKind
    trade_no: str
    url: str
    body: bytes
    attempt: int


class _Refused(Exception):
    def __init__(self, reason: str, msg: str) -> None:
        super().__init__(msg)
        self.reason = reason
        self.msg = msg


_SETTLE, _NOTIFY = "settle", "notify"


class FakeGateway:
    """An in-memory twin of the Vexora gateway; see "Testing your integration".

    Checks every request as the gateway does (``merchantNo`` header,
    timestamp window, ``sign``), refuses a repeated ``tradeNo`` with code
    ``8000``, keeps payouts and deposits with their balance effects, settles
    them by *scenario* (default: :func:`default_scenario`) after
    ``config.settle_delay`` or on :meth:`settle`, and produces signed
    callbacks with the gateway's retry schedule. Faults are scripted through
    :attr:`faults`; what happened is counted in :attr:`stats`.

    *clock* is a monotonic clock in seconds (the timers); *wall_clock* gives
    epoch milliseconds (the ``timestamp`` check and the answers). All
    methods are thread-safe.
    """

    def __init__(
        self,
        config: SandboxConfig | None = None,
        *,
        scenario: Scenario | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], int] = _epoch_ms,
    ) -> None:
        self.config = config or SandboxConfig()
        self._scenario = scenario or default_scenario
        self._clock = clock
        self._wall_clock = wall_clock
        self._lock = threading.RLock()
        self.faults = FaultPlan(self._lock)
        self.stats = SandboxStats()
        self._payouts: dict[str, Transaction] = {}
        self._deposits: dict[str, Transaction] = {}
        self._available = self.config.initial_balance
        self._frozen = Decimal(0)
        self._timers: list[tuple[float, int, str, TransactionKind, str, int]] = []
        self._seq = itertools.count()
        self._platform_seq = itertools.count(1)
        self._listeners: list[Callable[[], object]] = []

    def __repr__(self) -> str:
        return (
            f"FakeGateway(merchant_no={self.config.merchant_no!r}, "
            f"payouts={len(self._payouts)}, deposits={len(self._deposits)})"
        )

    # -- inspection ---------------------------------------------------------

    @property
    def payouts(self) -> Mapping[str, Transaction]:
        """Every payout executed, by ``tradeNo`` (a read-only view)."""
        return MappingProxyType(self._payouts)

    @property
    def deposits(self) -> Mapping[str, Transaction]:
        """Every deposit created, by ``tradeNo`` (a read-only view)."""
        return MappingProxyType(self._deposits)

    @property
    def balance(self) -> Balance:
        """The merchant's balance now: available, frozen (payouts in flight)."""
        with self._lock:
            return Balance(
                available_amount=self._available,
                freeze_amount=self._frozen,
                unsettled_amount=Decimal(0),
            )

    @property
    def pending_timers(self) -> int:
        """Settlements and callback retries still scheduled."""
        with self._lock:
            return len(self._timers)

    def subscribe(self, listener: Callable[[], object]) -> Callable[[], None]:
        """Call *listener* whenever a timer is added; return an unsubscriber.

        The listener may be called from any thread. The ASGI adapter uses
        this to wake up its timer loop.
        """
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    # -- one request ----------------------------------------------------------

    def handle(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        body: bytes,
        *,
        host: str | None = None,
    ) -> Reply:
        """Answer one HTTP request. *headers* must have lowercase names."""
        operation = _route(path)
        with self._lock:
            self.stats.requests[operation.path if operation else path] += 1
            if operation is None:
                return Reply(404, b"Not Found", _TEXT)
            if method != "POST":
                return Reply(405, b"Method Not Allowed", (*_TEXT, ("allow", "POST")))
            fields = _parse(body)
            trade_no = fields.get("tradeNo") if fields is not None else None
            fault = self.faults.pick(
                operation, trade_no if isinstance(trade_no, str) else None
            )
            if fault is not None:
                self.stats.faults[fault.kind] += 1
                if not fault.executed:
                    return self._fault_reply(fault, None)
            try:
                data = self._execute(operation, headers, fields, host)
                reply = self._envelope(CODE_OK, "success", data)
            except _Refused as refusal:
                self.stats.rejections[refusal.reason] += 1
                reply = self._envelope(CODE_REJECTED, refusal.msg, None)
            return reply if fault is None else self._fault_reply(fault, reply)

    def _fault_reply(self, fault: Fault, reply: Reply | None) -> Reply:  # noqa: PLR0911 - one answer per kind
        kind = fault.kind
        if kind is FaultKind.DELAY:
            if reply is None:  # pragma: no cover - a delay always executes
                msg = "a delay fault always executes"
                raise AssertionError(msg)
            return attrs.evolve(reply, delay=fault.seconds)
        if kind is FaultKind.DROP:
            return Reply(0, b"", (), drop=True)
        if kind is FaultKind.HTTP_ERROR:
            html = f"<html><body><h1>{fault.status} Error</h1></body></html>"
            return Reply(fault.status, html.encode(), _HTML)
        if kind is FaultKind.SYSTEM_ERROR:
            return self._envelope(CODE_SYSTEM_ERROR, "system exception", None)
        if kind is FaultKind.GARBAGE:
            return Reply(200, _GARBAGE, _JSON)
        if kind is FaultKind.REJECTED:
            return self._envelope(CODE_REJECTED, fault.message, None)
        retry_after = f"{fault.seconds:g}"
        return Reply(429, b"Too Many Requests", (*_TEXT, ("retry-after", retry_after)))

    def _envelope(self, code: str, msg: str, data: dict[str, object] | None) -> Reply:
        body = {
            "msg": msg,
            "code": code,
            "timestamp": self._wall_clock(),
            "success": code == CODE_OK,
            "data": data,
        }
        return Reply(200, json.dumps(body, ensure_ascii=False).encode())

    def _execute(
        self,
        operation: Operation,
        headers: Mapping[str, str],
        fields: dict[str, Any] | None,
        host: str | None,
    ) -> dict[str, object]:
        merchant_no = headers.get("merchantno")
        if merchant_no is None:
            raise _Refused("merchant", "merchantNo header is required")
        if merchant_no != self.config.merchant_no:
            raise _Refused("merchant", "merchant does not exist")
        if fields is None or not all(isinstance(v, str) for v in fields.values()):
            raise _Refused("malformed", "the body must be a JSON object of strings")
        params: dict[str, str] = fields
        self._check_timestamp(params.get("timestamp"))
        signature = params.get(SIGN_FIELD)
        if not signature:
            raise _Refused("sign", "sign is required")
        if not verify(params, self.config.app_secret, signature):
            raise _Refused("sign", "sign verification failed")
        params = {k: v for k, v in params.items() if k not in {SIGN_FIELD, "timestamp"}}
        if operation is Operation.CREATE_PAYOUT:
            return self._create_payout(params)
        if operation is Operation.CREATE_DEPOSIT:
            return self._create_deposit(params, host)
        if operation is Operation.GET_BALANCE:
            return {
                "availableAmount": _number(self._available),
                "freezeAmount": _number(self._frozen),
                "unsettledAmount": 0,
            }
        book = self._payouts if operation is Operation.GET_PAYOUT else self._deposits
        transaction = book.get(_required(params, "tradeNo"))
        if transaction is None:
            raise _Refused("not_found", "order does not exist")
        return status_data(transaction)

    def _check_timestamp(self, value: str | None) -> None:
        if value is None or not _TIMESTAMP.fullmatch(value):
            raise _Refused("timestamp", "timestamp is missing or malformed")
        window_ms = self.config.timestamp_window * 1000
        if abs(self._wall_clock() - int(value)) > window_ms:
            raise _Refused("timestamp", "timestamp is outside the allowed window")

    def _create_payout(self, params: dict[str, str]) -> dict[str, object]:
        trade_no = _trade_no(params)
        amount = _amount(params, _MIN_PAYOUT)
        if _required(params, "bankCode") not in _BANK_CODES:
            raise _Refused("invalid", "bankCode is not supported")
        _required(params, "bankNumber")
        _required(params, "name")
        _url(params)
        existing = self._payouts.get(trade_no)
        if existing is not None and self.config.reject_duplicates:
            self.stats.duplicates[trade_no] += 1
            raise _Refused("duplicate", "tradeNo already exists")
        if amount > self._available:
            raise _Refused("balance", "insufficient balance")
        self._available -= amount
        self._frozen += amount
        self.stats.executions[trade_no] += 1
        if existing is not None:
            # Only reachable with reject_duplicates=False: the double payout
            # a real gateway's duplicate check exists to prevent.
            existing.executions += 1
            transaction = existing
        else:
            transaction = self._new(TransactionKind.PAYOUT, trade_no, amount, params)
            self._payouts[trade_no] = transaction
        return {
            "tradeNo": trade_no,
            "platFormTradeNo": transaction.platform_trade_no,
            "status": str(TransactionStatus.PROCESSING),
            "message": message_for(TransactionStatus.PROCESSING),
            "remark": params.get("remark", ""),
            "amount": params["amount"],
        }

    def _create_deposit(
        self, params: dict[str, str], host: str | None
    ) -> dict[str, object]:
        trade_no = _trade_no(params)
        amount = _amount(params, Decimal(1))
        _required(params, "name")
        _url(params)
        way_code = params.get("wayCode")
        if way_code and way_code not in _BANK_CODES:
            raise _Refused("invalid", "wayCode is not supported")
        if trade_no in self._deposits:
            self.stats.duplicates[trade_no] += 1
            raise _Refused("duplicate", "tradeNo already exists")
        transaction = self._new(TransactionKind.DEPOSIT, trade_no, amount, params)
        self._deposits[trade_no] = transaction
        self.stats.deposit_executions[trade_no] += 1
        origin = f"http://{host}" if host else "http://127.0.0.1"
        return {
            "tradeNo": trade_no,
            "platFormTradeNo": transaction.platform_trade_no,
            "status": str(TransactionStatus.PROCESSING),
            "message": message_for(TransactionStatus.PROCESSING),
            "amount": params["amount"],
            "payUrl": f"{origin}/checkout/{transaction.platform_trade_no}",
        }

    def _new(
        self,
        kind: TransactionKind,
        trade_no: str,
        amount: Decimal,
        params: dict[str, str],
    ) -> Transaction:
        transaction = Transaction(
            kind=kind,
            trade_no=trade_no,
            platform_trade_no=f"vxs{next(self._platform_seq):014d}",
            amount=amount,
            fields=params,
            created_at=local_time(self._wall_clock()),
        )
        if self.config.settle_delay is not None:
            self._schedule(
                self._clock() + self.config.settle_delay, _SETTLE, kind, trade_no
            )
        return transaction

    # -- settling and callbacks ----------------------------------------------

    def settle(
        self, trade_no: str, status: str = TransactionStatus.SUCCESS
    ) -> Transaction:
        """Move a processing payout to *status* now, and send its callback.

        *status* is any final code: ``"0000"`` (default), ``"00029"``, or
        one the client does not know (``"00032"``) to test its handling.
        Raises :class:`~vexora_async.InvalidRequestError` for an unknown
        ``tradeNo`` or a payout that is no longer processing.
        """
        return self._settle_now(TransactionKind.PAYOUT, trade_no, status)

    def settle_deposit(
        self, trade_no: str, status: str = TransactionStatus.SUCCESS
    ) -> Transaction:
        """Move a processing deposit to *status* now (``"0001"``: half paid)."""
        return self._settle_now(TransactionKind.DEPOSIT, trade_no, status)

    def _settle_now(
        self, kind: TransactionKind, trade_no: str, status: str
    ) -> Transaction:
        final = TransactionStatus(status)
        if final.is_processing:
            raise InvalidRequestError("status", "must be a final status, not 0015")
        with self._lock:
            book = self._payouts if kind is TransactionKind.PAYOUT else self._deposits
            transaction = book.get(trade_no)
            if transaction is None:
                raise InvalidRequestError("trade_no", f"no {kind.value} {trade_no!r}")
            if not transaction.status.is_processing:
                raise InvalidRequestError(
                    "trade_no", f"is already final ({transaction.status})"
                )
            self._apply(transaction, final)
            self._schedule(self._clock(), _NOTIFY, kind, trade_no, attempt=1)
            return transaction

    def _apply(self, transaction: Transaction, final: TransactionStatus) -> None:
        transaction.status = final
        transaction.settled_at = local_time(self._wall_clock())
        if transaction.kind is TransactionKind.DEPOSIT:
            if final.is_success:
                transaction.received_amount = transaction.amount
            elif final == TransactionStatus.PARTIAL:
                transaction.received_amount = (transaction.amount / 2).quantize(
                    Decimal(1)
                )
            if transaction.received_amount is not None:
                self._available += transaction.received_amount
            return
        held = transaction.amount * transaction.executions
        if final.is_success:
            transaction.received_amount = transaction.amount
            self._frozen -= held
        elif final.is_failed:
            self._frozen -= held
            self._available += held
        # Any other code: the money's fate is unknown, so it stays frozen.

    def _schedule(
        self,
        due: float,
        action: str,
        kind: TransactionKind,
        trade_no: str,
        attempt: int = 0,
    ) -> None:
        heapq.heappush(
            self._timers, (due, next(self._seq), action, kind, trade_no, attempt)
        )
        for listener in tuple(self._listeners):
            listener()

    def next_due(self) -> float | None:
        """When (on *clock*) the next timer is due, or ``None`` if none is."""
        with self._lock:
            return self._timers[0][0] if self._timers else None

    def advance(self, now: float | None = None) -> list[CallbackDelivery]:
        """Fire every timer due by *now*; return the callbacks to POST now."""
        with self._lock:
            now = self._clock() if now is None else now
            deliveries = []
            while self._timers and self._timers[0][0] <= now:
                _, _, action, kind, trade_no, attempt = heapq.heappop(self._timers)
                book = (
                    self._payouts if kind is TransactionKind.PAYOUT else self._deposits
                )
                transaction = book[trade_no]
                if action == _SETTLE:
                    if not transaction.status.is_processing:
                        continue  # settled by hand in the meantime
                    final = self._scenario(transaction)
                    if final is None or final.is_processing:
                        continue
                    self._apply(transaction, final)
                    attempt = 1
                if self.config.callbacks:
                    deliveries.append(self._delivery(transaction, attempt))
            return deliveries

    def _delivery(self, transaction: Transaction, attempt: int) -> CallbackDelivery:
        # Each attempt carries a fresh timestamp and sign, so a receiver that
        # checks freshness accepts a retry hours later.
        fields = callback_fields(transaction)
        fields["timestamp"] = str(self._wall_clock())
        fields[SIGN_FIELD] = sign(fields, self.config.app_secret)
        return CallbackDelivery(
            kind=transaction.kind,
            trade_no=transaction.trade_no,
            url=transaction.notify_url,
            body=json.dumps(fields, ensure_ascii=False).encode(),
            attempt=attempt,
        )

    def record_delivery(
        self, delivery: CallbackDelivery, *, delivered: bool, now: float | None = None
    ) -> None:
        """Report how a delivery went; schedule the next retry if it failed.

        *delivered* is true only for HTTP 200 with the body exactly ``OK``.
        """
        with self._lock:
            self.stats.callback_attempts[delivery.trade_no] += 1
            if delivered:
                self.stats.callbacks_delivered[delivery.trade_no] += 1
                return
            schedule = self.config.callback_schedule
            if delivery.attempt > len(schedule):
                self.stats.callbacks_exhausted[delivery.trade_no] += 1
                return
            wait = schedule[delivery.attempt - 1] * self.config.time_scale
            now = self._clock() if now is None else now
            self._schedule(
                now + wait,
                _NOTIFY,
                delivery.kind,
                delivery.trade_no,
                attempt=delivery.attempt + 1,
            )


def _route(path: str) -> Operation | None:
    # Any prefix is accepted, so that a base URL like
    # http://127.0.0.1:8090/myanmar works as the real per-country ones do.
    for operation in Operation:
        if path.endswith(operation.path):
            return operation
    return None


def _parse(body: bytes) -> dict[str, Any] | None:
    try:
        obj = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return obj if isinstance(obj, dict) else None


def _required(params: Mapping[str, str], field: str) -> str:
    value = params.get(field)
    if not value:
        raise _Refused("invalid", f"{field} is required")
    return value


def _trade_no(params: Mapping[str, str]) -> str:
    trade_no = _required(params, "tradeNo")
    if len(trade_no) > _MAX_TRADE_NO or not trade_no.isascii():
        raise _Refused("invalid", "tradeNo is invalid")
    return trade_no


def _amount(params: Mapping[str, str], minimum: Decimal) -> Decimal:
    text = _required(params, "amount")
    if not _AMOUNT.fullmatch(text):
        raise _Refused("invalid", "amount must be an integer")
    try:
        amount = Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern excludes it
        raise _Refused("invalid", "amount must be an integer") from None
    if amount < minimum:
        raise _Refused("invalid", f"amount must be at least {minimum}")
    return amount.quantize(Decimal(1))


def _url(params: Mapping[str, str]) -> str:
    url = _required(params, "notifyUrl")
    if not url.startswith(("http://", "https://")):
        raise _Refused("invalid", "notifyUrl is invalid")
    return url


def _number(amount: Decimal) -> int | float:
    return int(amount) if amount == amount.to_integral_value() else float(amount)
