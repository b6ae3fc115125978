"""The errors page's decision table agrees with ``may_have_executed``.

docs/errors.md carries the one table of what each error means for the
money: may it have executed, what to store, what to do next. Each of its
rows is checked against a real instance of the error it names, its "what
to store" against its verdict, and the page's own ``state_after`` (the
table as code) against both, so the page cannot drift from the code.
"""

from __future__ import annotations

import asyncio
import inspect
import re
import sys
import types
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import vexora_async.exceptions
from vexora_async import (
    ClientClosedError,
    ConflictingRequestError,
    ConnectError,
    DecodingError,
    GatewayError,
    HTTPStatusError,
    InvalidRequestError,
    LedgerError,
    NotificationError,
    OutcomeUnknown,
    PayoutOutcomeUnknown,
    RequestRejected,
    RequestTimeout,
    TradeNoCollision,
    TransportError,
    VexoraClient,
    VexoraError,
)
from vexora_async.ledgers import EntryState
from vexora_async.testing import FakeGateway, Fault

from tests.helpers import make_payout


if TYPE_CHECKING:
    from collections.abc import Callable


DOCS = Path(__file__).resolve().parent.parent / "docs"
PAGE = DOCS / "errors.md"
QUICKSTART = DOCS / "quickstart.md"
TRADE_NO = "VX20260331004567"
CREATE = "create_payout"
CANCELLED = "`asyncio.CancelledError` (your task was cancelled)"

#: A real instance of the error each row of the create table names, as the
#: SDK (or, for the last rows, your own code) raises it for a create.
CREATE_ERRORS: dict[str, BaseException] = {
    "PayoutOutcomeUnknown": PayoutOutcomeUnknown(
        "lost", trade_no=TRADE_NO, operation=CREATE
    ),
    "OutcomeUnknown": OutcomeUnknown(
        "lost", trade_no=TRADE_NO, operation="create_deposit"
    ),
    "RequestRejected with `.confirmed` true": RequestRejected(
        "8000", "invalid", operation=CREATE, trade_no=TRADE_NO, confirmed=True
    ),
    "RequestRejected with `.confirmed` false": RequestRejected(
        "8000", "duplicate", operation=CREATE, trade_no=TRADE_NO
    ),
    "ConnectError": ConnectError("refused", operation=CREATE, trade_no=TRADE_NO),
    "LedgerError": LedgerError("redis is down", operation=CREATE, trade_no=TRADE_NO),
    "ClientClosedError": ClientClosedError(operation=CREATE, trade_no=TRADE_NO),
    "InvalidRequestError": InvalidRequestError("deadline", "must be over 0"),
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
    # A create raises none of these itself (see
    # test_a_create_raises_no_plain_transport_status_or_decoding_error);
    # what your own middleware raises under a create is judged by its class.
    "HTTPStatusError": HTTPStatusError(
        "HTTP 500", status_code=500, body_excerpt="", operation=CREATE
    ),
    "RequestTimeout": RequestTimeout("slow", operation=CREATE, trade_no=TRADE_NO),
    "TransportError": TransportError("lost", operation=CREATE, trade_no=TRADE_NO),
    "DecodingError": DecodingError("not JSON", operation=CREATE, trade_no=TRADE_NO),
    "GatewayError": GatewayError("5000", "busy", operation=CREATE, trade_no=TRADE_NO),
    # Not a VexoraError: its verdict is checked by a real cancelled create
    # (test_a_cancelled_create_may_have_executed).
    CANCELLED: asyncio.CancelledError(),
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
_PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


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


def _names(cell: str) -> list[str]:
    """Return the errors a row names: ``X with ...``, each class, or the text."""
    if " with " in cell:
        return [_CLASS.sub(r"\1", cell)]
    return _CLASS.findall(cell) or [cell]


def _verdict(cell: str) -> bool:
    word = cell.strip("*").lower()
    assert word in {"yes", "no"}, f"a verdict must be yes or no, not {cell!r}"
    return word == "yes"


def _stored(cell: str) -> str | None:
    """Return the state a "what to store" cell says to write; None: no change."""
    if cell.startswith("no change"):
        return None
    state = re.match(r"`(\w+)`", cell)
    assert state, f"what to store must start with a `state` or 'no change': {cell!r}"
    return state.group(1)


def _page_block(name: str, page: Path = PAGE) -> dict[str, Any]:
    """Run *page*'s Python block that defines *name*; return its namespace."""
    text = page.read_text(encoding="utf-8")
    (block,) = [b for b in _PYTHON_BLOCK.findall(text) if f"def {name}(" in b]
    # A module of its own (dataclasses look their module up), not "__main__":
    # a program's asyncio.run(main()) guard does not run.
    module = types.ModuleType(f"docs_{page.stem}")
    sys.modules[module.__name__] = module
    try:
        exec(compile(block, str(page), "exec"), module.__dict__)  # noqa: S102 - the docs' own code
    finally:
        del sys.modules[module.__name__]
    return module.__dict__


def _page_function(name: str) -> Callable[..., Any]:
    """Run the page's Python block that defines *name*; return the function."""
    function: Callable[..., Any] = _page_block(name)[name]
    return function


CREATE_ROWS = _rows("## The decision table")
ROW_IDS = [", ".join(_names(row[0])) for row in CREATE_ROWS]


def test_the_table_is_the_page_s_decision_table_label() -> None:
    """Other pages link to it as {ref}`decision-table`: the label sits on it."""
    text = PAGE.read_text(encoding="utf-8")
    assert "(decision-table)=\n## The decision table\n" in text


@pytest.mark.parametrize("row", CREATE_ROWS, ids=ROW_IDS)
def test_each_row_of_the_create_table_is_the_error_s_own_answer(
    row: list[str],
) -> None:
    """The page's "may have executed" is what each error it names says."""
    name, verdict, store, then = row
    assert store
    assert then
    for error in (CREATE_ERRORS[n] for n in _names(name)):
        if isinstance(error, VexoraError):
            assert error.may_have_executed is _verdict(verdict)
        else:  # a cancellation: see test_a_cancelled_create_may_have_executed
            assert _verdict(verdict) is True


@pytest.mark.parametrize("row", CREATE_ROWS, ids=ROW_IDS)
def test_what_to_store_follows_from_may_have_executed(row: list[str]) -> None:
    """Maybe executed: store unknown, never failed; failed only when proven not."""
    name, verdict, store, _ = row
    stored = _stored(store)
    if _verdict(verdict):
        assert stored == "unknown", row
        assert "`failed`" not in store, row
    else:
        assert stored in {None, "failed"}, row
    if stored == "failed":
        # Only a refusal a status query confirmed says the gateway does not
        # hold the tradeNo; "nothing was sent" alone says nothing about an
        # earlier call under it.
        assert _names(name) == ["RequestRejected with `.confirmed` true"]


@pytest.mark.parametrize("row", CREATE_ROWS, ids=ROW_IDS)
def test_the_page_s_state_after_is_the_table(row: list[str]) -> None:
    """The page's ``state_after`` stores what the table says, for each error."""
    state_after = _page_function("state_after")
    name, _, store, _ = row
    for error_name in _names(name):
        assert state_after(CREATE_ERRORS[error_name]) == _stored(store), error_name


def test_the_page_s_needs_a_human_is_the_table() -> None:
    """The rows that say "alert a human" are the ones ``needs_a_human`` picks."""
    needs_a_human = _page_function("needs_a_human")
    for name, _, _, then in CREATE_ROWS:
        for error_name in _names(name):
            error = CREATE_ERRORS[error_name]
            assert needs_a_human(error) is ("alert a human" in then), error_name


class _Raising:
    """A client whose create_payout raises *error*: the quickstart's input."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    async def create_payout(self, _request: object) -> None:
        raise self.error


@pytest.mark.parametrize("row", CREATE_ROWS, ids=ROW_IDS)
async def test_the_quickstart_s_handler_stores_what_the_table_says(
    row: list[str],
) -> None:
    """The quickstart's ``send`` handles every error as its row says."""
    program = _page_block("send", QUICKSTART)
    alerts: list[BaseException] = []
    program["alert"] = lambda payout, error: alerts.append(error)
    name, _, store, then = row
    for error_name in _names(name):
        error = CREATE_ERRORS[error_name]
        payout = program["new_payout"](25_000, "09791234567", "Ko Min Thu")
        if isinstance(error, VexoraError):
            await program["send"](_Raising(error), payout)
        else:  # a cancellation reaches the caller; the row says "sending"
            with pytest.raises(type(error)):
                await program["send"](_Raising(error), payout)
            assert payout.state == "sending"
            continue
        assert payout.state == (_stored(store) or "sending"), error_name
        assert (error in alerts) is ("alert a human" in then), error_name


def test_the_create_table_names_every_error_of_a_create() -> None:
    """Every error class of the SDK but the callbacks' is in the table, once."""
    named = [n for row in CREATE_ROWS for n in _names(row[0])]
    assert sorted(named) == sorted(CREATE_ERRORS)
    classes = {
        cls.__name__
        for _, cls in inspect.getmembers(vexora_async.exceptions, inspect.isclass)
        if issubclass(cls, VexoraError) and not issubclass(cls, NotificationError)
    }
    in_table = {type(e).__name__ for e in CREATE_ERRORS.values()}
    assert classes - in_table == set()


@pytest.mark.parametrize(
    "fault",
    [
        Fault.http_error(500),
        Fault.http_error(503),
        Fault.rate_limited(0.01),
        Fault.system_error(),
        Fault.garbage(),
        Fault.drop(),
    ],
    ids=lambda fault: fault.kind.value,
)
async def test_a_create_raises_no_plain_transport_status_or_decoding_error(
    fault: Fault, gateway: FakeGateway, sandbox_client: VexoraClient
) -> None:
    """What the table says a create never raises arrives as an unknown outcome."""
    gateway.faults.for_trade_no(TRADE_NO, *[fault] * 1000)

    with pytest.raises(PayoutOutcomeUnknown) as caught:
        await sandbox_client.create_payout(make_payout(), deadline=0.5)

    assert caught.value.may_have_executed is True
    causes = []
    cause = caught.value.__cause__
    while cause is not None:
        causes.append(cause)
        cause = cause.__cause__
    assert any(
        isinstance(c, (TransportError, HTTPStatusError, DecodingError, GatewayError))
        for c in causes
    ), causes


async def test_a_cancelled_create_may_have_executed(
    gateway: FakeGateway, sandbox_client: VexoraClient
) -> None:
    """The CancelledError row's "yes": the gateway made it, the SDK says unknown."""
    request = make_payout()
    gateway.faults.for_trade_no(TRADE_NO, Fault.delay(3600))
    task = asyncio.create_task(sandbox_client.create_payout(request))
    while not gateway.payouts.get(TRADE_NO):  # noqa: ASYNC110 - the gateway has no event for it
        await asyncio.sleep(0.001)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert gateway.payouts[TRADE_NO].executions == 1  # made, though cancelled
    entry = await sandbox_client.ledger.get(sandbox_client.ledger_key(request))
    assert entry is not None
    assert entry.state is EntryState.UNKNOWN
    assert _page_function("state_after")(asyncio.CancelledError()) == "unknown"


def test_every_error_of_a_query_is_not_an_execution() -> None:
    """The query table lists the read errors; none of them executed anything."""
    names = [_names(row[0])[0] for row in _rows("## Errors of a query")]
    assert names == list(QUERY_ERRORS)
    for error in QUERY_ERRORS.values():
        assert error.may_have_executed is False
