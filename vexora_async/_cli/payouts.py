"""``vexora payouts``: pay a spreadsheet, and look payouts up.

``send FILE.csv`` checks every row, shows a summary, asks for
confirmation and sends through the SDK's batch API with a durable journal
beside the file; ``reconcile``, ``resolve`` and ``status`` find out what
became of payouts. The work is in :mod:`._payouts`; this module is the
command line.
"""

from __future__ import annotations

import argparse
import textwrap

from ._command import Command
from ._credentials import CONFIG_HELP
from .balance import add_client_options


EXIT_STATUSES = """\
exit status:
  0    every row is accepted (or was already, by an earlier run); with
       --skip-invalid, every valid row
  1    an error: another run holds the journal, the gateway could not be
       read, the total is over the balance or --max-total, or some rows
       could not be sent (a rerun sends them)
  2    usage error, missing credentials, or an invalid file (nothing was
       sent)
  3    declined at the confirmation (nothing was sent)
  4    the gateway refused the credentials or the sign
  5    some rows are still unknown: run the same command again (it asks the
       gateway before any resend), or `vexora payouts reconcile`
  6    some rows were rejected, or their payout failed
  130  interrupted (Ctrl-C): the rows in flight were finished and the report
       written; run the same command again to continue"""


def _epilog(*paragraphs: str) -> str:
    return "\n\n".join(
        [*(textwrap.fill(p, width=78) for p in paragraphs), EXIT_STATUSES]
    )


CREDENTIALS = CONFIG_HELP[0].upper() + CONFIG_HELP[1:] + "."

SEND_HELP = "pay every row of a CSV file, once, with a report"
SEND_DESCRIPTION = (
    "Pay every row of FILE.csv (columns trade_no, amount, bank_code, "
    "bank_number, name; optional remark and notify_url; any others are "
    "copied to the report). Every row is checked first: nothing is sent "
    "while one is invalid. A summary with the total and the balance follows, "
    "and on a terminal you retype the total to go on. Each outcome is "
    "recorded in a journal beside the file (FILE.csv.vexora.db), so running "
    "the same command again, after a crash or Ctrl-C, continues where it "
    "stopped: rows already accepted are never sent again, and rows whose "
    "outcome is unknown are looked up at the gateway before any resend. The "
    "report FILE.report.csv has one line per input row."
)


def _send_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE.csv", help="the payouts, UTF-8 CSV")
    parser.add_argument(
        "--yes", action="store_true", help="do not ask: send after the summary"
    )
    parser.add_argument("--dry-run", action="store_true", help="stop after the summary")
    parser.add_argument(
        "--skip-invalid",
        action="store_true",
        help="send the valid rows; the invalid ones are listed and reported",
    )
    parser.add_argument(
        "--max-total", metavar="KYAT", help="refuse a run whose total is above this"
    )
    parser.add_argument(
        "--max-row", metavar="KYAT", help="refuse any row whose amount is above this"
    )
    parser.add_argument(
        "--notify-url",
        metavar="URL",
        help="the callback URL of rows whose notify_url column is empty or absent",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=20,
        metavar="N",
        help="payouts in flight at once (default 20)",
    )
    _journal_options(parser)


def _journal_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ledger",
        metavar="URL",
        help="keep the SDK's ledger in Redis (redis://...) or PostgreSQL "
        "(postgresql://...) instead of the journal file; give every run of this "
        "file the same URL",
    )
    parser.add_argument(
        "--report",
        metavar="PATH",
        help="where to write the report (default FILE.report.csv; its JSON "
        "summary goes beside it)",
    )
    add_client_options(parser)


def _configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(title="commands", dest="payouts_command")
    send = sub.add_parser(
        "send",
        help=SEND_HELP,
        description=textwrap.fill(SEND_DESCRIPTION, width=78),
        epilog=_epilog(CREDENTIALS),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    _send_options(send)
    send.set_defaults(_payouts="send")

    reconcile = sub.add_parser(
        "reconcile",
        help="query every row not final yet and rewrite the report",
        description=textwrap.fill(
            "Query the gateway about every row of FILE.csv whose outcome is "
            "unknown or whose payout is still processing, and rewrite the "
            "report. It never sends a payout. A payout found processing stays "
            "accepted, with its status.",
            width=78,
        ),
        epilog=_epilog(CREDENTIALS),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    reconcile.add_argument("file", metavar="FILE.csv")
    _journal_options(reconcile)
    reconcile.set_defaults(_payouts="reconcile")

    resolve = sub.add_parser(
        "resolve",
        help="settle rows left unknown: query, then resend under the same trade_no",
        description=textwrap.fill(
            "Settle the rows of FILE.csv whose outcome is unknown (or the "
            "TRADE_NOs given), with the requests recorded in its journal: a "
            "status query first, and only if the gateway does not know the "
            "trade_no, the same request again under the same trade_no.",
            width=78,
        ),
        epilog=_epilog(CREDENTIALS),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    resolve.add_argument("file", metavar="FILE.csv")
    resolve.add_argument("trade_no", nargs="*", metavar="TRADE_NO")
    resolve.add_argument("--json", action="store_true", help="print JSON")
    _journal_options(resolve)
    resolve.set_defaults(_payouts="resolve")

    status = sub.add_parser(
        "status",
        help="query one payout by its trade_no",
        description="Query one payout at the gateway by its trade_no.",
        epilog=textwrap.fill(CREDENTIALS, width=78)
        + "\n\nExit status: 0 found, 1 not found or not readable, 2 usage or "
        "missing credentials, 4 the gateway refused the credentials or the sign.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    status.add_argument("trade_no", metavar="TRADE_NO")
    status.add_argument("--json", action="store_true", help="print JSON")
    add_client_options(status)
    status.set_defaults(_payouts="status")
    parser.set_defaults(_payouts_parser=parser)


def _run(args: argparse.Namespace) -> int:
    from . import _payouts

    name = getattr(args, "_payouts", None)
    if name is None:
        args._payouts_parser.print_help()  # noqa: SLF001
        return 2
    run = {
        "send": _payouts.run_send,
        "reconcile": _payouts.run_reconcile,
        "resolve": _payouts.run_resolve,
        "status": _payouts.run_status,
    }[name]
    return run(args)


command = Command(
    name="payouts",
    help="pay a spreadsheet of payouts (send), and find out what became of them",
    configure=_configure,
    run=_run,
    epilog=EXIT_STATUSES,
)
