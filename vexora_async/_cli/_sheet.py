"""Reading and checking a spreadsheet of payouts (CSV) before anything is sent.

Every row is checked with the SDK's own validators (those of
:class:`~vexora_async.PayoutRequest`), one column at a time, so that a row
with three mistakes shows all three. A problem names its line (as a
spreadsheet numbers it: the header is line 1) and its column. Nothing here
touches the network or the journal.
"""

from __future__ import annotations

import csv
import io
import re
from decimal import Decimal
from typing import TYPE_CHECKING

import attrs

from vexora_async import InvalidRequestError, PayoutRequest


if TYPE_CHECKING:
    from pathlib import Path


#: The columns every file must have.
REQUIRED = ("trade_no", "amount", "bank_code", "bank_number", "name")
#: Columns a file may have; a missing one takes its default.
OPTIONAL = ("remark", "notify_url")
#: What the report adds after the input's columns; an input may not use them.
REPORT_COLUMNS = (
    "outcome",
    "platform_trade_no",
    "status",
    "error_code",
    "error_message",
    "attempts",
    "updated_at",
)

#: Whole kyat, optionally written with zero decimals ("1500" or "1500.00"):
#: no thousands separators, signs or exponents, which a spreadsheet may add
#: and which must not silently change an amount.
_AMOUNT = re.compile(r"[0-9]+(\.[0-9]+)?")

#: A request every column of a row is checked against, one column at a time.
_TEMPLATE: dict[str, object] = {
    "trade_no": "CHECK1",
    "amount": Decimal(1000),
    "bank_code": "KBZPAY",
    "bank_number": "09000000000",
    "name": "Check",
    "notify_url": "https://merchant.example/notify",
    "remark": None,
}


@attrs.frozen
class Problem:
    """One mistake (or, with *warning*, one thing to look at) in the file."""

    line: int
    column: str | None
    message: str
    warning: bool = False

    def __str__(self) -> str:
        where = f"line {self.line}" + (f", column {self.column}" if self.column else "")
        kind = "warning" if self.warning else "error"
        return f"{where}: {kind}: {self.message}"


@attrs.define
class Row:
    """One data row: its line, its cells by column, and its request if valid."""

    line: int
    cells: dict[str, str]
    request: PayoutRequest | None = None
    problems: list[Problem] = attrs.field(factory=list)

    @property
    def trade_no(self) -> str:
        """The row's tradeNo as written (checked or not)."""
        return self.cells.get("trade_no", "")

    def refuse(self, column: str | None, message: str) -> None:
        """Record an error on this row: it will not be sent."""
        self.problems.append(Problem(self.line, column, message))
        self.request = None

    @property
    def valid(self) -> bool:
        """Whether the row can be sent."""
        return self.request is not None


@attrs.define
class Sheet:
    """A whole file: its columns, its rows, and the problems found."""

    columns: list[str]
    rows: list[Row]
    #: Problems of the file itself (its header, its encoding), not of a row.
    problems: list[Problem] = attrs.field(factory=list)
    warnings: list[Problem] = attrs.field(factory=list)

    @property
    def usable(self) -> bool:
        """Whether the rows could be read at all (the header is sound)."""
        return not self.problems

    @property
    def invalid(self) -> list[Row]:
        """The rows that will not be sent."""
        return [row for row in self.rows if not row.valid]

    def all_problems(self) -> list[Problem]:
        """Every error and warning, in line order."""
        found = [*self.problems, *self.warnings]
        for row in self.rows:
            found.extend(row.problems)
        return sorted(found, key=lambda p: (p.line, p.warning))


def read_sheet(
    path: Path, *, notify_url: str | None = None, max_row: Decimal | None = None
) -> Sheet:
    """Read and check *path*; raise :class:`OSError` if it cannot be read."""
    raw = path.read_bytes()
    problems: list[Problem] = []
    text = _decode(raw, problems)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        return Sheet([], [], [Problem(1, None, "the file is empty: no header row")])
    except csv.Error as exc:
        return Sheet([], [], [Problem(1, None, f"not a CSV header: {exc}")])
    columns = [name.strip() for name in header]
    problems.extend(_check_header(columns))
    if problems and not columns:
        return Sheet(columns, [], problems)
    rows: list[Row] = []
    header_problem = any(p.line == 1 for p in problems)
    try:
        for cells in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in cells):
                continue  # a blank line, as spreadsheets leave at the end
            row = Row(line, dict(zip(columns, cells, strict=False)))
            if len(cells) != len(columns):
                row.refuse(
                    None,
                    f"has {len(cells)} cells where the header has {len(columns)} "
                    "columns",
                )
            elif not header_problem:
                _check_row(row, notify_url=notify_url, max_row=max_row)
            else:
                row.problems.append(
                    Problem(line, None, "not checked: the header is unusable")
                )
            rows.append(row)
    except csv.Error as exc:
        problems.append(Problem(reader.line_num, None, f"unreadable CSV: {exc}"))
    sheet = Sheet(columns, rows, problems)
    _attach_encoding_problems(sheet)
    _check_across_rows(sheet)
    return sheet


def _decode(raw: bytes, problems: list[Problem]) -> str:
    """Decode UTF-8 (a BOM is dropped); record each line that is not UTF-8."""
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    for number, line in enumerate(raw.split(b"\n"), start=1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as exc:  # noqa: PERF203 - only on a bad file
            problems.append(
                Problem(
                    number,
                    None,
                    f"not UTF-8 (byte 0x{line[exc.start]:02x} at position "
                    f"{exc.start + 1}); save the file as 'CSV UTF-8'",
                )
            )
    # Decoded with U+FFFD for the bad bytes, so that the other problems of
    # the file show too; a row holding one is refused.
    return raw.decode("utf-8", errors="replace")


def _attach_encoding_problems(sheet: Sheet) -> None:
    """Move each encoding problem onto its row, naming the column it hit."""
    by_line = {row.line: row for row in sheet.rows}
    kept = []
    for problem in sheet.problems:
        row = by_line.get(problem.line)
        if row is None or not problem.message.startswith("not UTF-8"):
            kept.append(problem)
            continue
        column = next(
            (name for name, cell in row.cells.items() if "\ufffd" in cell), None
        )
        row.refuse(column, problem.message)
    sheet.problems = kept


def _check_header(columns: list[str]) -> list[Problem]:
    problems = [
        Problem(1, name, "required column is missing")
        for name in REQUIRED
        if name not in columns
    ]
    seen: set[str] = set()
    for name in columns:
        if name in seen:
            problems.append(Problem(1, name, "column appears twice"))
        seen.add(name)
        if name in REPORT_COLUMNS:
            problems.append(
                Problem(1, name, "this name is reserved for the report's own column")
            )
    return problems


def _check_row(row: Row, *, notify_url: str | None, max_row: Decimal | None) -> None:
    cells = row.cells
    values: dict[str, object] = {
        name: cells[name] for name in (*REQUIRED, *OPTIONAL) if name in cells
    }
    amount_text = cells["amount"].strip()
    if _AMOUNT.fullmatch(amount_text):
        values["amount"] = Decimal(amount_text)
    else:
        row.refuse(
            "amount",
            f"{cells['amount']!r} is not an amount in whole kyat "
            "(digits only, such as 150000)",
        )
        values.pop("amount")
    if not values.get("remark"):
        values["remark"] = None
    if not values.get("notify_url"):
        if notify_url is None:
            row.refuse("notify_url", "empty, and no --notify-url given")
            values.pop("notify_url", None)
        else:
            values["notify_url"] = notify_url
    # One column at a time against a valid template: every mistake shows.
    for name, value in values.items():
        try:
            PayoutRequest(**{**_TEMPLATE, name: value})  # type: ignore[arg-type]
        except InvalidRequestError as exc:  # noqa: PERF203 - one per column
            row.refuse(name, _message(exc, name))
    if row.problems:
        return
    try:
        request = PayoutRequest(**{**_TEMPLATE, **values})  # type: ignore[arg-type]
    except InvalidRequestError as exc:
        row.refuse(exc.field, _message(exc, exc.field))
        return
    if max_row is not None and request.amount > max_row:
        row.refuse("amount", f"{request.amount} is over --max-row {max_row}")
        return
    row.request = request


def _message(exc: InvalidRequestError, field: str | None) -> str:
    message = exc.message.removeprefix(f"{field}: ") if field else exc.message
    # The SDK's hint is for code (BankCode("X")); a spreadsheet has no such thing.
    return message.split("; for a code the gateway added later")[0]


def _check_across_rows(sheet: Sheet) -> None:
    """Refuse a tradeNo used twice (on each line); warn of the same payee twice."""
    lines: dict[str, list[Row]] = {}
    for row in sheet.rows:
        if row.trade_no:
            lines.setdefault(row.trade_no.strip(), []).append(row)
    for trade_no, rows in lines.items():
        if len(rows) > 1:
            numbers = ", ".join(str(r.line) for r in rows)
            for row in rows:
                row.refuse(
                    "trade_no",
                    f"{trade_no!r} appears on lines {numbers}: one "
                    "tradeNo is one payout",
                )
    _warn_same_payee(sheet)


def _warn_same_payee(sheet: Sheet) -> None:
    payees: dict[tuple[str, str, Decimal], list[Row]] = {}
    for row in sheet.rows:
        if row.request is not None:
            request = row.request
            key = (str(request.bank_code), request.bank_number, request.amount)
            payees.setdefault(key, []).append(row)
    for (bank, _, amount), rows in payees.items():
        if len(rows) > 1:
            numbers = ", ".join(str(r.line) for r in rows)
            for row in rows:
                sheet.warnings.append(
                    Problem(
                        row.line,
                        "bank_number",
                        f"the same {bank} account and amount {amount} are on lines "
                        f"{numbers}: check that this is not the same payout twice",
                        warning=True,
                    )
                )
