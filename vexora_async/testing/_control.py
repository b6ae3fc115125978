"""The sandbox's control and stats endpoints, under ``/_sandbox/``.

A service under test that talks to the sandbox from another process (or
another language) can be inspected and steered over HTTP, as a test in
the same process does through :class:`~vexora_async.testing.FakeGateway`:

``GET /_sandbox/stats``
    Every counter of :class:`~vexora_async.testing.SandboxStats`, keyed by
    ``tradeNo`` where it counts per transaction, with ``double_executions``
    and the balance.
``GET /_sandbox/payouts/{tradeNo}`` (and ``/deposits/{tradeNo}``)
    One transaction: status, amount, executions and callbacks.
``POST /_sandbox/payouts/{tradeNo}/settle`` (and ``/deposits/...``)
    Settle it now; the body may name the final status:
    ``{"status": "00029"}`` (default ``"0000"``).
``POST /_sandbox/faults``
    Queue a fault: ``{"fault": "drop"}``; also ``"http_error"`` (with
    ``"status"``), ``"system_error"``, ``"garbage"``, ``"rate_limited"``,
    ``"rejected"`` (with ``"message"``) and ``"delay"`` (with
    ``"seconds"``), ``"executed"`` where the fault takes it, ``"trade_no"``
    to aim it at one transaction, ``"operation"`` (``"create_payout"``,
    ``"get_payout"``...) to aim it at one call, and ``"count"`` (default 1).
``DELETE /_sandbox/faults``
    Forget every scripted fault.

The control endpoints need no signature: the sandbox only listens on
loopback. They answer JSON; a mistake is a 4xx with ``{"error": "..."}``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from vexora_async._operations import Operation
from vexora_async.exceptions import InvalidRequestError

from ._faults import Fault, FaultKind
from ._gateway import Reply
from ._transactions import TransactionKind


if TYPE_CHECKING:
    from collections.abc import Mapping

    from ._gateway import FakeGateway
    from ._transactions import Transaction


#: Where the control endpoints live, under any base-URL prefix.
CONTROL_PREFIX = "/_sandbox/"

_OPERATIONS = {operation.label: operation for operation in Operation}
_BOOKS = {"payouts": TransactionKind.PAYOUT, "deposits": TransactionKind.DEPOSIT}
_MAX_COUNT = 1000


class _ControlError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def control_path(path: str) -> str | None:
    """Return the part of *path* after ``/_sandbox/``, or ``None``."""
    _, found, rest = path.partition(CONTROL_PREFIX)
    return rest if found else None


def handle_control(gateway: FakeGateway, method: str, path: str, body: bytes) -> Reply:
    """Answer one control request; *path* is what follows ``/_sandbox/``."""
    parts = [part for part in path.split("/") if part]
    try:
        data = _route(gateway, method, parts, body)
    except _ControlError as exc:
        return _json(exc.status, {"error": exc.message})
    except InvalidRequestError as exc:
        return _json(400, {"error": str(exc)})
    return _json(200, data)


def _route(
    gateway: FakeGateway, method: str, parts: list[str], body: bytes
) -> dict[str, Any]:
    match parts:
        case ["stats"]:
            _allow(method, "GET")
            return stats(gateway)
        case [book, trade_no] if book in _BOOKS:
            _allow(method, "GET")
            return _transaction(gateway, _find(gateway, _BOOKS[book], trade_no))
        case [book, trade_no, "settle"] if book in _BOOKS:
            _allow(method, "POST")
            kind = _BOOKS[book]
            transaction = _find(gateway, kind, trade_no)
            if not transaction.status.is_processing:
                raise _ControlError(
                    409, f"{trade_no} is already final ({transaction.status})"
                )
            status = str(_body(body).get("status", "0000"))
            settle = (
                gateway.settle
                if kind is TransactionKind.PAYOUT
                else (gateway.settle_deposit)
            )
            return _transaction(gateway, settle(trade_no, status))
        case ["faults"]:
            if method == "DELETE":
                gateway.faults.clear()
            else:
                _allow(method, "POST")
                _queue_fault(gateway, _body(body))
            return {"pending": gateway.faults.pending}
    raise _ControlError(404, "no such control endpoint; see the testing guide")


def stats(gateway: FakeGateway) -> dict[str, Any]:
    """Return the gateway's counters and balance as JSON-ready values."""
    counters = gateway.stats
    balance = gateway.balance
    return {
        "requests": dict(counters.requests),
        "executions": dict(counters.executions),
        "double_executions": counters.double_executions,
        "deposit_executions": dict(counters.deposit_executions),
        "duplicates": dict(counters.duplicates),
        "rejections": dict(counters.rejections),
        "faults": {kind.value: n for kind, n in counters.faults.items()},
        "pending_faults": gateway.faults.pending,
        "callback_attempts": dict(counters.callback_attempts),
        "callbacks_delivered": dict(counters.callbacks_delivered),
        "callbacks_exhausted": dict(counters.callbacks_exhausted),
        "balance": {
            "available": str(balance.available_amount),
            "frozen": str(balance.freeze_amount),
        },
    }


def _transaction(gateway: FakeGateway, transaction: Transaction) -> dict[str, Any]:
    counters, trade_no = gateway.stats, transaction.trade_no
    return {
        "kind": transaction.kind.value,
        "trade_no": trade_no,
        "platform_trade_no": transaction.platform_trade_no,
        "amount": str(transaction.amount),
        "status": str(transaction.status),
        "executions": transaction.executions,
        "callback_attempts": counters.callback_attempts[trade_no],
        "callbacks_delivered": counters.callbacks_delivered[trade_no],
    }


def _find(gateway: FakeGateway, kind: TransactionKind, trade_no: str) -> Transaction:
    book = gateway.payouts if kind is TransactionKind.PAYOUT else gateway.deposits
    transaction = book.get(trade_no)
    if transaction is None:
        raise _ControlError(404, f"no {kind.value} {trade_no!r}")
    return transaction


def _queue_fault(gateway: FakeGateway, spec: Mapping[str, Any]) -> None:
    fault = _fault(spec)
    count = spec.get("count", 1)
    if not isinstance(count, int) or isinstance(count, bool):
        raise _ControlError(400, "count must be an integer")
    if not 1 <= count <= _MAX_COUNT:
        raise _ControlError(400, f"count must be from 1 to {_MAX_COUNT}")
    operation = spec.get("operation")
    operations = None
    if operation is not None:
        if operation not in _OPERATIONS:
            raise _ControlError(
                400, f"operation must be one of {', '.join(sorted(_OPERATIONS))}"
            )
        operations = _OPERATIONS[operation]
    trade_no = spec.get("trade_no")
    if trade_no is None:
        gateway.faults.queue(*[fault] * count, operations=operations)
    else:
        gateway.faults.for_trade_no(trade_no, *[fault] * count, operations=operations)


def _fault(spec: Mapping[str, Any]) -> Fault:  # noqa: C901, PLR0911 - a case per kind
    name = spec.get("fault")
    kinds = {kind.value for kind in FaultKind}
    if name not in kinds:
        raise _ControlError(400, f"fault must be one of {', '.join(sorted(kinds))}")
    executed = spec.get("executed")
    if executed is not None and not isinstance(executed, bool):
        raise _ControlError(400, "executed must be true or false")
    options: dict[str, Any] = {} if executed is None else {"executed": executed}
    try:
        match FaultKind(name):
            case FaultKind.DELAY:
                return Fault.delay(spec.get("seconds", 1.0))
            case FaultKind.RATE_LIMITED:
                return Fault.rate_limited(spec.get("seconds", 1.0))
            case FaultKind.HTTP_ERROR:
                return Fault.http_error(spec.get("status", 500), **options)
            case FaultKind.DROP:
                return Fault.drop(**options)
            case FaultKind.SYSTEM_ERROR:
                return Fault.system_error(**options)
            case FaultKind.GARBAGE:
                return Fault.garbage(**options)
            case FaultKind.REJECTED:  # pragma: no branch - every kind is handled
                return Fault.rejected(spec.get("message", "rejected by a control call"))
    except (TypeError, ValueError) as exc:
        raise _ControlError(400, f"invalid fault: {exc}") from None


def _allow(method: str, allowed: str) -> None:
    if method != allowed:
        raise _ControlError(405, f"use {allowed}")


def _body(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        parsed = json.loads(body)
    except ValueError:
        raise _ControlError(400, "the body must be a JSON object") from None
    if not isinstance(parsed, dict):
        raise _ControlError(400, "the body must be a JSON object")
    return parsed


def _json(status: int, data: Mapping[str, Any]) -> Reply:
    return Reply(status, json.dumps(data, sort_keys=True).encode())
