"""The errors page's decision table agrees with ``may_have_executed``.

docs/errors.md carries the one table of what each error means for the
money. Each of its rows is checked against a real instance of the error it
names, so the page cannot drift from the code.
"""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest
from vexora_async import (
    ClientClosedError,
    ConflictingRequestError,
    ConnectError,
    DecodingError,
    GatewayError,
    HTTPStatusError,
    InvalidRequestError,
    LedgerError,
    OutcomeUnknown,
    PayoutOutcomeUnknown,
    RequestRejected,
    RequestTimeout,
    TradeNoCollision,
    TransportError,
    VexoraError,
)


PAGE = Path(__file__).resolve().parent.parent / "docs" / "errors.md"
TRADE_NO = "VX20260331004567"
CREATE = "create_payout"

#: A real instance of the error each row of the create table names, as the
#: SDK raises it for a create.
CREATE_ERRORS: dict[str, VexoraError] = {
    "InvalidRequestError": InvalidRequestError("amount", "must be at least 100"),
    "ConflictingRequestError": ConflictingRequestError(
        "another payload", operation=CREATE, trade_no=TRADE_NO
    ),
    "TradeNoCollision": TradeNoCollision(
        "held by another payout",
        trade_no=TRADE_NO,
        field="amount",
        requested_amount=Decimal(100),
        found_amount=Decimal(25000),
        operation=CREATE,
    ),
    "LedgerError": LedgerError("redis is down", operation=CREATE, trade_no=TRADE_NO),
    "ClientClosedError": ClientClosedError(operation=CREATE, trade_no=TRADE_NO),
    "ConnectError": ConnectError("refused", operation=CREATE, trade_no=TRADE_NO),
    "RequestRejected with `.confirmed` true": RequestRejected(
        "8000", "invalid", operation=CREATE, trade_no=TRADE_NO, confirmed=True
    ),
    "RequestRejected with `.confirmed` false": RequestRejected(
        "8000", "duplicate", operation=CREATE, trade_no=TRADE_NO
    ),
    "PayoutOutcomeUnknown": PayoutOutcomeUnknown(
        "lost", trade_no=TRADE_NO, operation=CREATE
    ),
    "OutcomeUnknown": OutcomeUnknown(
        "lost", trade_no=TRADE_NO, operation="create_deposit"
    ),
    "any other error (your own middleware's, say)": VexoraError(
        "from a middleware", operation=CREATE, trade_no=TRADE_NO
    ),
}

#: The errors of a read, each as a status query raises it.
QUERY_ERRORS: dict[str, VexoraError] = {
    "ConnectError": ConnectError("refused", operation="get_payout"),
    "RequestTimeout": RequestTimeout("slow", operation="get_payout"),
    "TransportError": TransportError("lost", operation="get_payout"),
    "HTTPStatusError": HTTPStatusError(
        "HTTP 503", status_code=503, body_excerpt="", operation="get_payout"
    ),
    "DecodingError": DecodingError("not JSON", operation="get_deposit"),
    "RequestRejected": RequestRejected("8000", "not found", operation="get_payout"),
    "GatewayError": GatewayError("5000", "busy", operation="get_balance"),
    "ClientClosedError": ClientClosedError(operation="get_balance"),
}

_CLASS = re.compile(r"\{class\}`~vexora_async\.(\w+)`")


def _rows(heading: str) -> list[list[str]]:
    """Return the cells of the first table after *heading*, header excluded."""
    text = PAGE.read_text(encoding="utf-8")
    section = text[text.index(heading) :]
    rows: list[list[str]] = []
    for line in section.splitlines():
        if line.startswith("|"):
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
        elif rows:
            break
    return rows[2:]  # the header and its rule


def _name(cell: str) -> str:
    """Turn ``{class}`~vexora_async.X` with ...`` into ``X with ...``."""
    return _CLASS.sub(r"\1", cell)


def _verdict(cell: str) -> bool:
    word = cell.strip("*").lower()
    assert word in {"yes", "no"}, f"a verdict must be yes or no, not {cell!r}"
    return word == "yes"


CREATE_ROWS = _rows("## What each means for the money")


@pytest.mark.parametrize("row", CREATE_ROWS, ids=[_name(r[0]) for r in CREATE_ROWS])
def test_each_row_of_the_create_table_is_the_error_s_own_answer(
    row: list[str],
) -> None:
    """The page's "may have executed" is what the error itself says."""
    name, verdict, store, then = row
    assert name
    assert store
    assert then
    error = CREATE_ERRORS[_name(name)]
    assert error.may_have_executed is _verdict(verdict)


def test_the_create_table_names_every_error_of_a_create() -> None:
    """Nothing a create raises is left out of the table, nor added to it."""
    assert [_name(row[0]) for row in CREATE_ROWS] == list(CREATE_ERRORS)


def test_every_error_of_a_query_is_not_an_execution() -> None:
    """The query table lists the read errors; none of them executed anything."""
    names = [_name(row[0]) for row in _rows("For a **query**")]
    assert names == list(QUERY_ERRORS)
    for error in QUERY_ERRORS.values():
        assert error.may_have_executed is False
