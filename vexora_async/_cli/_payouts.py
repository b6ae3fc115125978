"""Paying a spreadsheet: ``vexora payouts send | reconcile | resolve | status``.

The order of a run is the money's: read and check every row (nothing is
sent while one is invalid), find what the journal already knows of each
tradeNo, show the summary and the balance, have the operator confirm, then
send through :func:`~vexora_async.create_payouts` with a durable ledger,
and write the report. Each outcome is written to the journal as it
arrives, so a crash loses nothing but the rows in flight, and those the
next run resolves by a status query before any resend (see
:mod:`._journal`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import time
from collections import Counter
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, TypeVar
from urllib.parse import urlsplit

import attrs

from vexora_async import (
    OutcomeKind,
    PayoutOutcome,
    PayoutRequest,
    RequestRejected,
    VexoraClient,
    VexoraError,
)
from vexora_async._converter import WireCodec
from vexora_async._outcomes import Match, compare_found, describe
from vexora_async.ledgers import EntryState, LedgerEntry

from ._command import (
    EXIT_AUTH,
    EXIT_DECLINED,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_REJECTED,
    EXIT_UNKNOWN,
    EXIT_USAGE,
)
from ._credentials import Credentials, CredentialsProblem, load_credentials
from ._journal import (
    EXCLUSIVE,
    Journal,
    JournalBusy,
    Record,
    UnknownLedgerUrl,
    journal_path,
    locked,
    now_iso,
    open_ledger,
    take_over,
)
from ._report import report_path, report_rows, write_report
from ._sheet import Row, Sheet, read_sheet


if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine, Iterator

    from vexora_async import BatchProgress, PayoutResult
    from vexora_async.ledgers import Ledger

#: Encodes a row's request as the wire fields a found payout is compared
#: with (amounts compare as Decimals, whatever the client's amount format).
_WIRE = WireCodec.create()


#: Stands in for a row's empty notify_url where nothing is sent (reconcile,
#: resolve: the journal holds the request as it was sent).
_ANY_NOTIFY_URL = "https://merchant.example/not-sent"

T = TypeVar("T")

#: Ctrl-C, and a service manager's stop: finish the rows in flight, report.
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

#: How many tries the operator has to retype the total.
CONFIRM_TRIES = 3


class Stop(Exception):
    """End the command with this exit status (its message already printed)."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def err(message: str) -> None:
    """Print *message* to stderr."""
    print(message, file=sys.stderr, flush=True)


def rows_(count: int) -> str:
    """Return "1 row" or "N rows"."""
    return f"{count} row" if count == 1 else f"{count} rows"


def money(amount: Decimal) -> str:
    """Format whole kyat with thousands separators."""
    return f"{amount:,}"


# -- the client -------------------------------------------------------------


def credentials(args: argparse.Namespace) -> Credentials:
    """Load the credentials, or stop with status 2."""
    try:
        return load_credentials(args.config)
    except CredentialsProblem as exc:
        err(f"error: {exc}")
        raise Stop(EXIT_USAGE) from None


def make_client(
    creds: Credentials, args: argparse.Namespace, ledger: Ledger | None = None
) -> VexoraClient:
    """Build the client, or stop with status 2 on a bad setting."""
    concurrency = getattr(args, "concurrency", 20)
    try:
        return VexoraClient(
            creds.merchant_no,
            creds.app_secret,
            creds.base_url,
            ledger=ledger,
            max_connections=concurrency,
            timeout=args.timeout,
            deadline=args.deadline,
        )
    except VexoraError as exc:
        err(f"error: {exc}")
        raise Stop(EXIT_USAGE) from None


def refused_credentials(exc: VexoraError) -> None:
    """Stop with status 4 if *exc* is the gateway refusing who we are."""
    if isinstance(exc, RequestRejected):
        err(
            f"error: the gateway refused the credentials or the sign: code "
            f"{exc.code}: {exc.msg} (check VEXORA_MERCHANT_NO, VEXORA_APP_SECRET "
            "and VEXORA_BASE_URL)"
        )
        raise Stop(EXIT_AUTH)


def gateway_failed(what: str, exc: VexoraError) -> Stop:
    """Report a read that failed (it executed nothing); return status 1."""
    err(f"error: could not {what}: {exc}")
    return Stop(EXIT_ERROR)


def host_of(base_url: str) -> str:
    """Return the gateway's host (and port), as the summary shows it."""
    return urlsplit(base_url).netloc or base_url


# -- send -----------------------------------------------------------------------


@attrs.define
class Plan:
    """What a run will do with each valid row."""

    new: list[Row] = attrs.field(factory=list)
    #: Unknown, or in flight in a dead run: a status query comes first.
    check: list[Row] = attrs.field(factory=list)
    #: In flight in a dead run: taken over before sending.
    stale: list[tuple[str, LedgerEntry]] = attrs.field(factory=list)
    accepted: list[Row] = attrs.field(factory=list)
    rejected: list[Row] = attrs.field(factory=list)

    @property
    def to_send(self) -> list[Row]:
        """The rows handed to the SDK, in input order."""
        return sorted([*self.new, *self.check], key=lambda row: row.line)

    @property
    def done(self) -> int:
        """Rows an earlier run finished."""
        return len(self.accepted) + len(self.rejected)


async def make_plan(
    sheet: Sheet, client: VexoraClient, ledger: Ledger, journal: Journal
) -> Plan:
    """Sort the valid rows by what the ledger knows; refuse changed rows."""
    plan = Plan()
    records = journal.records()
    for row in sheet.rows:
        request = row.request
        if request is None:
            continue
        key = client.ledger_key(request)
        entry = await ledger.get(key)
        if entry is None:
            _plan_from_journal(
                plan, row, request, records.get(request.trade_no), client
            )
            continue
        if entry.fingerprint != client.ledger_fingerprint(request):
            record = records.get(request.trade_no)
            row.refuse("trade_no", _changed(request, record))
            continue
        if entry.state is EntryState.ACCEPTED:
            plan.accepted.append(row)
            _done_from_ledger(journal, records, request, entry)
        elif entry.state is EntryState.REJECTED:
            plan.rejected.append(row)
            _done_from_ledger(journal, records, request, entry)
        else:
            plan.check.append(row)
            if entry.state is EntryState.IN_FLIGHT:
                plan.stale.append((key, entry))
    return plan


def _plan_from_journal(
    plan: Plan,
    row: Row,
    request: PayoutRequest,
    record: Record | None,
    client: VexoraClient,
) -> None:
    """Place a row the ledger does not know, by what the journal says.

    A ledger may forget settled entries (Redis keeps them for a while); the
    journal keeps what each row became, so a row it saw accepted or
    rejected is never sent again, and a changed one is still refused.
    """
    if record is None or record.outcome not in {"accepted", "rejected"}:
        plan.new.append(row)
    elif client.ledger_fingerprint(record.request) != client.ledger_fingerprint(
        request
    ):
        row.refuse("trade_no", _changed(request, record))
    elif record.outcome == "accepted":
        plan.accepted.append(row)
    else:
        plan.rejected.append(row)


def _changed(request: PayoutRequest, record: Record | None) -> str:
    what = "its amount or beneficiary"
    if record is not None:
        before = record.request
        fields = [
            name
            for name in ("amount", "bank_code", "bank_number", "name")
            if getattr(before, name) != getattr(request, name)
        ]
        if fields:
            what = " and ".join(fields)
        if "amount" in fields:
            what += f" (sent as {before.amount}, now {request.amount})"
    return (
        f"{request.trade_no!r} was already sent with another payload: {what} "
        "changed; refused. One tradeNo is one payout: restore the row, or give "
        "the new payout a new trade_no"
    )


def _done_from_ledger(
    journal: Journal,
    records: dict[str, Record],
    request: PayoutRequest,
    entry: LedgerEntry,
) -> None:
    """Make the journal agree with the ledger on a row an earlier run finished."""
    record = records.get(request.trade_no)
    outcome = "accepted" if entry.state is EntryState.ACCEPTED else "rejected"
    if record is not None and record.outcome == outcome:
        return
    # The ledger recorded it, the journal had not (a crash in between).
    data = entry.data or {}
    record = record or Record(request.trade_no, request, outcome)
    record.outcome = outcome
    if outcome == "accepted":
        record.platform_trade_no = _text(data.get("platformTradeNo"))
        record.status = _status_word(data.get("status"))
        record.error_code = record.error_message = None
    else:
        record.error_code, record.error_message = entry.code, entry.msg
    record.updated_at = now_iso()
    journal.save(record)
    records[request.trade_no] = record


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _status_word(code: object) -> str | None:
    from vexora_async import TransactionStatus

    if not isinstance(code, str):
        return None
    return TransactionStatus(code).kind.value


def print_summary(
    sheet_path: Path,
    sheet: Sheet,
    plan: Plan,
    creds: Credentials,
    available: Decimal,
    *,
    skip_invalid: bool,
) -> Decimal:
    """Print what is about to happen; return the total to send."""
    rows = plan.to_send
    total = sum((row.request.amount for row in rows if row.request), Decimal(0))
    banks: dict[str, list[Decimal]] = {}
    for row in rows:
        if row.request is not None:
            banks.setdefault(str(row.request.bank_code), []).append(row.request.amount)
    invalid = len(sheet.invalid)
    check = (
        f" ({len(plan.check)} left unknown by an earlier run: each is looked "
        "up at the gateway before any resend)"
        if plan.check
        else ""
    )
    lines = [
        f"File          {sheet_path.name}: {rows_(len(sheet.rows))}",
        f"To send       {rows_(len(rows))}, total {money(total)} MMK{check}",
        (
            f"Already done  {plan.done} (accepted {len(plan.accepted)}, "
            f"rejected {len(plan.rejected)})"
        ),
        f"Invalid       {invalid}"
        + (" (skipped: --skip-invalid)" if invalid and skip_invalid else ""),
    ]
    for bank, amounts in sorted(banks.items()):
        lines.append(
            f"  {bank:<11} {rows_(len(amounts))}, {money(sum(amounts, Decimal(0)))} MMK"
        )
    lines += [
        f"Gateway       {host_of(creds.base_url)} (merchant {creds.merchant_no})",
        f"Balance       {money(available)} MMK available",
    ]
    print("\n".join(lines), flush=True)
    return total


def confirm(total: Decimal, args: argparse.Namespace) -> None:
    """Have the operator retype the total on a terminal, or stop."""
    if args.yes:
        return
    if not sys.stdin.isatty():
        err(
            "error: nothing was sent: confirm on a terminal (retype the total), "
            "or pass --yes"
        )
        raise Stop(EXIT_USAGE)
    expected = str(total)
    for _ in range(CONFIRM_TRIES):
        try:
            answer = input(
                f"Type the total to send ({money(total)}) to go on, or press "
                "Enter to stop: "
            )
        except EOFError:
            answer = ""
        typed = answer.strip().replace(",", "").replace(" ", "")
        if not typed:
            break
        if typed == expected:
            return
        print(f"{answer.strip()!r} is not the total ({money(total)}).", flush=True)
    err("Declined: nothing was sent.")
    raise Stop(EXIT_DECLINED)


class Progress:
    """A progress bar on a terminal (rich, when installed), plain lines otherwise."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.step = max(1, total // 20)
        self._bar: Any = None
        self._task: Any = None
        if sys.stderr.isatty():
            with contextlib.suppress(ImportError):
                from rich.console import Console
                from rich.progress import Progress as RichProgress

                # On stderr, as the check above: stdout may be a file.
                self._bar = RichProgress(console=Console(stderr=True))
                self._task = self._bar.add_task("sending", total=total)
                self._bar.start()

    def update(self, progress: BatchProgress) -> None:
        """Show where the batch stands."""
        line = (
            f"sent {progress.done}/{self.total}: accepted {progress.accepted}, "
            f"rejected {progress.rejected}, unknown {progress.unknown}, "
            f"not sent {progress.errors}"
        )
        if self._bar is not None:
            self._bar.update(self._task, completed=progress.done, description=line)
        elif progress.done % self.step == 0 or progress.done == self.total:
            print(line, flush=True)

    def close(self) -> None:
        """Stop the bar."""
        if self._bar is not None:
            self._bar.stop()


def record_outcome(
    journal: Journal, records: dict[str, Record], outcome: PayoutOutcome
) -> None:
    """Write what became of one request to the journal."""
    request = outcome.request
    record = records.get(request.trade_no) or Record(
        request.trade_no, request, "pending"
    )
    record.request = request
    record.attempts += 1
    record.updated_at = now_iso()
    if outcome.kind is OutcomeKind.ACCEPTED and outcome.result is not None:
        _accepted(record, outcome.result)
    else:
        error = outcome.error
        record.outcome = {
            OutcomeKind.REJECTED: "rejected",
            OutcomeKind.UNKNOWN: "unknown",
        }.get(outcome.kind, "not_sent")
        record.platform_trade_no = record.status = None
        if isinstance(error, RequestRejected):
            record.error_code, record.error_message = error.code, error.msg
        elif error is not None:
            record.error_code = type(error).__name__
            record.error_message = error.message
    journal.save(record)
    records[request.trade_no] = record


def _accepted(record: Record, result: PayoutResult) -> None:
    record.outcome = "accepted"
    record.platform_trade_no = result.platform_trade_no
    record.status = result.status.kind.value
    record.error_code = record.error_message = None


def exit_status(rows: list[dict[str, str]], *, interrupted: bool) -> int:
    """Return the exit status the report's rows call for."""
    if interrupted:
        return EXIT_INTERRUPTED
    outcomes = Counter(row["outcome"] for row in rows)
    if outcomes["unknown"]:
        return EXIT_UNKNOWN
    failed = any(
        row["outcome"] == "accepted" and row["status"] == "failed" for row in rows
    )
    if outcomes["rejected"] or failed:
        return EXIT_REJECTED
    if outcomes["not_sent"]:
        return EXIT_ERROR
    # Invalid rows get this far only with --skip-invalid: the operator chose
    # to send the others, and the report lists them.
    return EXIT_OK


def print_problems(sheet: Sheet, out: TextIO) -> None:
    """Print every error and warning of the file, in line order."""
    for problem in sheet.all_problems():
        print(problem, file=out)


def run_send(args: argparse.Namespace) -> int:
    """``vexora payouts send FILE``."""
    started = time.monotonic()
    path = Path(args.file)
    try:
        max_total = _amount_option("--max-total", args.max_total)
        sheet = _checked_sheet(path, args, _amount_option("--max-row", args.max_row))
        creds = credentials(args)
        with locked(path):
            run = SendRun(path, sheet, creds, args, started, max_total)
            return run.run()
    except KeyboardInterrupt:
        # Before sending (at the question, or while planning): while sending,
        # Ctrl-C is handled on the loop and ends with a report.
        err("\nInterrupted: nothing was sent.")
        return EXIT_INTERRUPTED
    except JournalBusy as exc:
        err(f"error: {exc}")
        return EXIT_ERROR
    except Stop as stop:
        return stop.status


def _checked_sheet(
    path: Path, args: argparse.Namespace, max_row: Decimal | None
) -> Sheet:
    """Read and check the file; print its problems; stop if it cannot go."""
    try:
        sheet = read_sheet(path, notify_url=args.notify_url, max_row=max_row)
    except OSError as exc:
        err(f"error: cannot read {path}: {exc.strerror}")
        raise Stop(EXIT_USAGE) from None
    print_problems(sheet, sys.stderr)
    if not sheet.usable:
        err("error: nothing was sent: the file cannot be used as it is")
        raise Stop(EXIT_USAGE)
    if not sheet.rows:
        err("error: nothing was sent: the file has no rows under its header")
        raise Stop(EXIT_USAGE)
    _refuse_invalid(sheet, skip_invalid=args.skip_invalid)
    return sheet


def _amount_option(name: str, value: str | None) -> Decimal | None:
    if value is None:
        return None
    try:
        amount = Decimal(value.replace(",", ""))
    except InvalidOperation:
        amount = Decimal(-1)
    if not amount.is_finite() or amount < 0:
        err(f"error: {name} takes an amount in kyat, not {value!r}")
        raise Stop(EXIT_USAGE)
    return amount


def _refuse_invalid(sheet: Sheet, *, skip_invalid: bool) -> None:
    invalid = sheet.invalid
    if invalid and not skip_invalid:
        err(
            f"error: nothing was sent: {len(invalid)} of {len(sheet.rows)} rows "
            "are invalid (fix them, or pass --skip-invalid to send the others)"
        )
        raise Stop(EXIT_USAGE)


@attrs.define
class SendRun:
    """One ``send``: from the checked file to the report."""

    path: Path
    sheet: Sheet
    creds: Credentials
    args: argparse.Namespace
    started: float
    max_total: Decimal | None
    stop: asyncio.Event = attrs.field(factory=asyncio.Event)
    first_send: float | None = None

    def run(self) -> int:
        """Plan and show the summary, confirm, send, report.

        Two event loops: the question is asked between them, outside any
        loop, where Ctrl-C is a plain KeyboardInterrupt (inside one, asyncio
        would hold the first Ctrl-C until input() returns).
        """
        journal = Journal(journal_path(self.path))
        try:
            planned = asyncio.run(self._with_client(journal, self._plan))
            if planned is None:
                return EXIT_OK
            plan, total = planned
            if not plan.to_send:
                print("Nothing to send.", flush=True)
                return self._finish(journal, {})
            confirm(total, self.args)

            async def send(client: VexoraClient, journal: Journal) -> int:
                return await self._send(plan, client, journal)

            return asyncio.run(self._with_client(journal, send))
        except UnknownLedgerUrl as exc:
            err(f"error: {exc}")
            return EXIT_USAGE
        finally:
            journal.close()

    async def _with_client(
        self,
        journal: Journal,
        work: Callable[[VexoraClient, Journal], Awaitable[T]],
    ) -> T:
        async with (
            open_ledger(self.args.ledger, self.path) as ledger,
            make_client(self.creds, self.args, ledger) as client,
        ):
            return await work(client, journal)

    async def _plan(
        self, client: VexoraClient, journal: Journal
    ) -> tuple[Plan, Decimal] | None:
        """Plan, show the summary, check the guards; None for a dry run."""
        before = {id(row) for row in self.sheet.invalid}
        plan = await make_plan(self.sheet, client, client.ledger, journal)
        changed = [row for row in self.sheet.invalid if id(row) not in before]
        for row in changed:
            err(str(row.problems[-1]))
        _refuse_invalid(self.sheet, skip_invalid=self.args.skip_invalid)
        try:
            balance = await client.get_balance()
        except VexoraError as exc:
            refused_credentials(exc)
            raise gateway_failed("read the balance", exc) from None
        available = balance.available_amount
        total = print_summary(
            self.path,
            self.sheet,
            plan,
            self.creds,
            available,
            skip_invalid=self.args.skip_invalid,
        )
        if not plan.to_send:
            return plan, total
        if self.max_total is not None and total > self.max_total:
            err(
                f"error: nothing was sent: the total {money(total)} is over --max-total"
            )
            raise Stop(EXIT_ERROR)
        if total > available:
            err(
                f"error: nothing was sent: the total {money(total)} is over the "
                f"available balance {money(available)}"
            )
            raise Stop(EXIT_ERROR)
        if self.args.dry_run:
            print("Dry run: nothing was sent.", flush=True)
            return None
        return plan, total

    def _requests(self, rows: list[Row]) -> Iterator[PayoutRequest]:
        """Hand the rows over one by one, until Ctrl-C."""
        for row in rows:
            if self.stop.is_set():
                return
            if self.first_send is None:
                self.first_send = time.monotonic()
            if row.request is not None:
                yield row.request

    def _interrupt(self) -> None:
        if not self.stop.is_set():
            err("Interrupted: finishing the rows in flight, then writing the report.")
        self.stop.set()

    async def _send(self, plan: Plan, client: VexoraClient, journal: Journal) -> int:
        if EXCLUSIVE:
            for key, entry in plan.stale:
                await take_over(client.ledger, key, entry)
        rows = plan.to_send
        journal.add_pending([row.request for row in rows if row.request is not None])
        records = journal.records()
        loop = asyncio.get_running_loop()
        for signum in _STOP_SIGNALS:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(signum, self._interrupt)
        concurrency = self.args.concurrency
        print(
            f"Sending {rows_(len(rows))}, {concurrency} at a time "
            "(Ctrl-C stops taking new rows; a rerun continues).",
            flush=True,
        )
        progress = Progress(len(rows))
        began = time.monotonic()
        try:
            batch = client.create_payouts(
                self._requests(rows),
                concurrency=concurrency,
                on_progress=progress.update,
            )
            async with contextlib.aclosing(batch):
                async for outcome in batch:
                    record_outcome(journal, records, outcome)
        finally:
            progress.close()
            for signum in _STOP_SIGNALS:
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.remove_signal_handler(signum)
        elapsed = time.monotonic() - began
        return self._finish(
            journal,
            {
                "seconds_sending": round(elapsed, 3),
                "seconds_before_first_send": None
                if self.first_send is None
                else round(self.first_send - self.started, 3),
                "rows_per_second": round(len(rows) / elapsed, 1)
                if elapsed and not self.stop.is_set()
                else None,
            },
        )

    def _finish(self, journal: Journal, extra: dict[str, Any]) -> int:
        return _finish(
            report_path(self.path, self.args.report),
            self.sheet,
            journal,
            interrupted=self.stop.is_set(),
            extra=extra,
        )


def _finish(
    report: Path,
    sheet: Sheet,
    journal: Journal,
    *,
    interrupted: bool,
    extra: dict[str, Any],
    out: TextIO | None = None,
) -> int:
    """Write the report; print where it is and what to do next; return the status."""
    out = out or sys.stdout
    records = journal.records()
    status = exit_status(report_rows(sheet, records), interrupted=interrupted)
    summary = write_report(report, sheet, records, exit_status=status, extra=extra)
    counts = ", ".join(
        f"{name.replace('_', ' ')} {summary[name]}"
        for name in ("accepted", "rejected", "unknown", "invalid", "not_sent")
    )
    print(f"Report: {report} ({counts})", file=out, flush=True)
    advice = {
        EXIT_UNKNOWN: "Some outcomes are unknown: run the same command again (it "
        "asks the gateway before any resend), or `vexora payouts reconcile`.",
        EXIT_REJECTED: "Some rows were rejected or their payout failed: see the "
        "report's error_message.",
        EXIT_ERROR: "Some rows were not sent: see the report; a rerun sends them.",
        EXIT_INTERRUPTED: "Interrupted: run the same command again to continue.",
    }.get(status)
    if advice:
        print(advice, file=out, flush=True)
    return status


# -- reconcile, resolve, status, balance ----------------------------------------


def _load_for_journal(args: argparse.Namespace) -> tuple[Path, Sheet]:
    path = Path(args.file)
    if not journal_path(path).exists():
        err(f"error: {path} has no journal ({journal_path(path).name}): nothing sent")
        raise Stop(EXIT_USAGE)
    try:
        # Queries need no callback URL: a row without one is not invalid here.
        sheet = read_sheet(path, notify_url=_ANY_NOTIFY_URL)
    except OSError as exc:
        err(f"error: cannot read {path}: {exc.strerror}")
        raise Stop(EXIT_USAGE) from None
    return path, sheet


def run_reconcile(args: argparse.Namespace) -> int:
    """``vexora payouts reconcile FILE``: query every row not final; rewrite."""
    return _on_the_journal(args, _reconcile)


def _on_the_journal(
    args: argparse.Namespace,
    work: Callable[
        [Path, Sheet, Credentials, argparse.Namespace], Coroutine[Any, Any, int]
    ],
) -> int:
    """Run *work* on the file's journal, held by this run alone."""
    try:
        path, sheet = _load_for_journal(args)
        creds = credentials(args)
        with locked(path):
            return asyncio.run(work(path, sheet, creds, args))
    except UnknownLedgerUrl as exc:
        err(f"error: {exc}")
        return EXIT_USAGE
    except JournalBusy as exc:
        err(f"error: {exc}")
        return EXIT_ERROR
    except Stop as stop:
        return stop.status


async def _reconcile(
    path: Path, sheet: Sheet, creds: Credentials, args: argparse.Namespace
) -> int:
    journal = Journal(journal_path(path))
    try:
        async with (
            open_ledger(args.ledger, path) as ledger,
            make_client(creds, args, ledger) as client,
        ):
            records = await _agree_with_ledger(client, journal)
            pending = [
                r
                for r in records.values()
                if r.outcome == "unknown"
                or (r.outcome == "accepted" and r.status not in {"success", "failed"})
            ]
            for record in pending:
                await _query_one(client, record)
                journal.save(record)
        print(f"Queried {len(pending)} rows that were not final.", flush=True)
        return _finish(
            report_path(path, args.report), sheet, journal, interrupted=False, extra={}
        )
    finally:
        journal.close()


async def _agree_with_ledger(
    client: VexoraClient, journal: Journal
) -> dict[str, Record]:
    """Bring rows a killed run left pending in line with the ledger.

    A row handed over when the run died has no outcome in the journal, but
    the ledger knows whether it was claimed: claimed and not settled (or
    settled unknown), it may have been paid, so it is unknown, never "not
    sent"; settled, the ledger has its outcome.
    """
    records = journal.records()
    for record in list(records.values()):
        if record.outcome != "pending":
            continue
        entry = await client.ledger.get(client.ledger_key(record.request))
        if entry is None:
            continue  # never claimed: nothing was sent
        if entry.state in {EntryState.ACCEPTED, EntryState.REJECTED}:
            _done_from_ledger(journal, records, record.request, entry)
            continue
        record.outcome = "unknown"
        record.error_code = "OutcomeUnknown"
        record.error_message = "the run sending it stopped before its answer"
        record.updated_at = now_iso()
        journal.save(record)
    return records


async def _query_one(client: VexoraClient, record: Record) -> None:
    """Ask the gateway about one row; never send anything."""
    request = record.request
    record.updated_at = now_iso()
    try:
        found = await client.get_payout(request.trade_no)
    except RequestRejected as exc:
        refused_credentials_if_sign(exc)
        if record.outcome == "unknown":
            record.error_code = exc.code
            record.error_message = (
                "the gateway does not know this trade_no (yet): `vexora payouts "
                "resolve` sends it again under the same trade_no"
            )
        return
    except VexoraError as exc:
        record.error_code, record.error_message = type(exc).__name__, exc.message
        return
    # The SDK's own rule for "is the payout found this request's?": the
    # amount ordered, else the amount, and the account fields it shows.
    comparison = compare_found(_WIRE.encode(request), found)
    if comparison.match is Match.DIFFERENT:
        record.outcome = "unknown"
        record.error_code = "TradeNoCollision"
        record.error_message = (
            f"the gateway holds this trade_no for another payout "
            f"({describe(comparison)}); find out whose"
        )
        return
    if comparison.match is Match.UNCHECKED and record.outcome != "accepted":
        # An answer with no amount cannot be told from another payout
        # under this trade_no (an accepted row's create answer was checked).
        record.error_code = "Unchecked"
        record.error_message = (
            "the gateway's answer carries no amount to check against this "
            "row; it stays unknown"
        )
        return
    record.outcome = "accepted"
    record.platform_trade_no = found.platform_trade_no or record.platform_trade_no
    record.status = found.status.kind.value
    record.error_code = record.error_message = None


def refused_credentials_if_sign(exc: RequestRejected) -> None:
    """Stop with status 4 when a query's refusal names the sign or merchant."""
    text = exc.msg.lower()
    if "sign" in text or "merchant" in text:
        refused_credentials(exc)


def run_resolve(args: argparse.Namespace) -> int:
    """``vexora payouts resolve FILE [TRADE_NO...]``: settle unknown rows."""
    return _on_the_journal(args, _resolve)


async def _resolve(
    path: Path, sheet: Sheet, creds: Credentials, args: argparse.Namespace
) -> int:
    journal = Journal(journal_path(path))
    out = sys.stderr if args.json else sys.stdout
    try:
        results = []
        async with (
            open_ledger(args.ledger, path) as ledger,
            make_client(creds, args, ledger) as client,
        ):
            records = await _agree_with_ledger(client, journal)
            chosen = _chosen(records, args.trade_no)
            for record in chosen:
                if record.outcome != "unknown":
                    # Settled already (or never sent: `send` sends it): a
                    # resolve would only answer from the ledger.
                    print(
                        f"{record.trade_no}: {record.outcome}, nothing to resolve",
                        file=out,
                        flush=True,
                    )
                    results.append(_record_json(record))
                    continue
                key = client.ledger_key(record.request)
                entry = await ledger.get(key)
                if (
                    EXCLUSIVE
                    and entry is not None
                    and entry.state is EntryState.IN_FLIGHT
                ):
                    await take_over(
                        ledger, key, entry
                    )  # a dead run's: we hold the lock
                outcome = await _resolve_one(client, record.request)
                record_outcome(journal, records, outcome)
                results.append(_record_json(records[record.trade_no]))
        if args.json:
            print(json.dumps(results, indent=2), flush=True)
        else:
            for item in results:
                print(
                    f"{item['trade_no']}: {item['outcome']}"
                    + (f" ({item['status']})" if item["status"] else "")
                    + (f": {item['error_message']}" if item["error_message"] else ""),
                    flush=True,
                )
        return _finish(
            report_path(path, args.report),
            sheet,
            journal,
            interrupted=False,
            extra={},
            out=out,
        )
    finally:
        journal.close()


def _chosen(records: dict[str, Record], trade_nos: list[str]) -> list[Record]:
    """Return the records to resolve: those named, or every unknown one."""
    if not trade_nos:
        return [r for r in records.values() if r.outcome == "unknown"]
    missing = [t for t in trade_nos if t not in records]
    if missing:
        err(f"error: not in the journal: {', '.join(missing)}")
        raise Stop(EXIT_USAGE)
    return [records[t] for t in trade_nos]


async def _resolve_one(client: VexoraClient, request: PayoutRequest) -> PayoutOutcome:
    """Resolve one request: a status query first, a resend only if unknown there."""
    try:
        result = await client.resolve_payout(request)
    except RequestRejected as exc:
        if not exc.confirmed:
            refused_credentials_if_sign(exc)
        kind = OutcomeKind.REJECTED if exc.confirmed else OutcomeKind.UNKNOWN
        return PayoutOutcome(request, kind, error=exc)
    except VexoraError as exc:
        kind = OutcomeKind.UNKNOWN if exc.may_have_executed else OutcomeKind.ERROR
        return PayoutOutcome(request, kind, error=exc)
    return PayoutOutcome(request, OutcomeKind.ACCEPTED, result=result)


def _record_json(record: Record) -> dict[str, Any]:
    return {
        "trade_no": record.trade_no,
        "outcome": record.outcome,
        "platform_trade_no": record.platform_trade_no,
        "status": record.status,
        "error_code": record.error_code,
        "error_message": record.error_message,
        "attempts": record.attempts,
    }


def run_status(args: argparse.Namespace) -> int:
    """``vexora payouts status TRADE_NO``."""
    try:
        creds = credentials(args)
        return asyncio.run(_status(creds, args))
    except Stop as stop:
        return stop.status


async def _status(creds: Credentials, args: argparse.Namespace) -> int:
    async with make_client(creds, args) as client:
        try:
            found = await client.get_payout(args.trade_no)
        except RequestRejected as exc:
            refused_credentials_if_sign(exc)
            err(
                f"{args.trade_no}: the gateway does not know it (code {exc.code}: "
                f"{exc.msg}); this query says nothing about whether it was paid "
                "if it was sent only moments ago"
            )
            return EXIT_ERROR
        except VexoraError as exc:
            raise gateway_failed("query the payout", exc) from None
    data = {
        "trade_no": found.trade_no,
        "status": found.status.kind.value,
        "status_code": str(found.status),
        "platform_trade_no": found.platform_trade_no,
        "amount": None if found.amount is None else str(found.amount),
        "message": found.message,
    }
    if args.json:
        print(json.dumps(data, indent=2), flush=True)
    else:
        for name, value in data.items():
            print(f"{name:<18}{'' if value is None else value}", flush=True)
    return EXIT_OK


def run_balance(args: argparse.Namespace) -> int:
    """``vexora balance``."""
    try:
        creds = credentials(args)
        return asyncio.run(_balance(creds, args))
    except Stop as stop:
        return stop.status


async def _balance(creds: Credentials, args: argparse.Namespace) -> int:
    async with make_client(creds, args) as client:
        try:
            balance = await client.get_balance()
        except VexoraError as exc:
            refused_credentials(exc)
            raise gateway_failed("read the balance", exc) from None
    data = {
        "available": str(balance.available_amount),
        "frozen": None if balance.freeze_amount is None else str(balance.freeze_amount),
        "unsettled": None
        if balance.unsettled_amount is None
        else str(balance.unsettled_amount),
        "gateway": host_of(creds.base_url),
        "merchant_no": creds.merchant_no,
    }
    if args.json:
        print(json.dumps(data, indent=2), flush=True)
    else:
        for name, value in data.items():
            if value is not None:
                print(f"{name:<12}{value}", flush=True)
    return EXIT_OK
