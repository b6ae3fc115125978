"""The report of a spreadsheet run: one line per input row, and a JSON summary.

``FILE.report.csv`` holds the input's columns, in its order, then
:data:`~vexora_async._cli._sheet.REPORT_COLUMNS`; its rows are the input's,
in input order, every one of them. ``FILE.report.json`` beside it counts
the outcomes and says what the exit status was. Both are written to a
temporary file first and moved into place: a reader never sees half a
report.
"""

from __future__ import annotations

import csv
import json
import os
from collections import Counter
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ._journal import now_iso
from ._sheet import REPORT_COLUMNS


if TYPE_CHECKING:
    from pathlib import Path

    from ._journal import Record
    from ._sheet import Sheet


#: The outcomes a report row can have.
REPORT_OUTCOMES = ("accepted", "rejected", "unknown", "invalid", "not_sent")


def report_path(sheet: Path, given: str | None) -> Path:
    """Return where the report goes: *given*, or ``FILE.report.csv``."""
    if given is not None:
        from pathlib import Path

        return Path(given)
    return sheet.with_name(sheet.stem + ".report.csv")


def report_rows(sheet: Sheet, records: dict[str, Record]) -> list[dict[str, str]]:
    """Return the report's rows: the input's cells and what became of each."""
    lines = []
    for row in sheet.rows:
        cells = {name: row.cells.get(name, "") for name in sheet.columns}
        record = records.get(row.trade_no) if row.valid else None
        if not row.valid:
            extra = {
                "outcome": "invalid",
                "error_message": "; ".join(
                    (f"{p.column}: " if p.column else "") + p.message
                    for p in row.problems
                ),
            }
        elif record is None or record.outcome == "pending":
            extra = {"outcome": "not_sent"}
            if record is not None:
                extra["attempts"] = str(record.attempts)
        else:
            extra = {
                "outcome": record.outcome,
                "platform_trade_no": record.platform_trade_no or "",
                "status": record.status or "",
                "error_code": record.error_code or "",
                "error_message": record.error_message or "",
                "attempts": str(record.attempts),
                "updated_at": record.updated_at or "",
            }
        lines.append(
            {**cells, **{name: extra.get(name, "") for name in REPORT_COLUMNS}}
        )
    return lines


def write_report(
    path: Path,
    sheet: Sheet,
    records: dict[str, Record],
    *,
    exit_status: int,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write the CSV report and its JSON summary; return the summary."""
    rows = report_rows(sheet, records)
    _write_atomically(path, lambda file: _write_csv(file, sheet.columns, rows))
    counts = Counter(row["outcome"] for row in rows)
    accepted_total = sum(
        (Decimal(row["amount"]) for row in rows if row["outcome"] == "accepted"),
        Decimal(0),
    )
    summary: dict[str, Any] = {
        "report": str(path),
        "rows": len(rows),
        **{outcome: counts.get(outcome, 0) for outcome in REPORT_OUTCOMES},
        "accepted_amount": str(accepted_total),
        "exit_status": exit_status,
        "written_at": now_iso(),
        **(extra or {}),
    }
    summary_path = path.with_suffix(".json")
    _write_atomically(
        summary_path, lambda file: json.dump(summary, file, indent=2, sort_keys=True)
    )
    return summary


def _write_csv(file: Any, columns: list[str], rows: list[dict[str, str]]) -> None:
    writer = csv.DictWriter(file, fieldnames=[*columns, *REPORT_COLUMNS])
    writer.writeheader()
    writer.writerows(rows)


def _write_atomically(path: Path, write: Any) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    # The report repeats account numbers and names: its owner's only.
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "w", encoding="utf-8", newline="") as file:  # noqa: PTH123
        write(file)
        file.flush()
        os.fsync(file.fileno())
    temporary.replace(path)
