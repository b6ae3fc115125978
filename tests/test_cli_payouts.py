"""Unit tests of ``vexora payouts``: the file's checks, credentials, journal, help."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest
from vexora_async import PayoutStatus, TransactionStatus
from vexora_async._cli import main
from vexora_async._cli._credentials import CredentialsProblem, load_credentials
from vexora_async._cli._journal import Record, take_over
from vexora_async._cli._payouts import _query_one, exit_status
from vexora_async._cli._sheet import Sheet, read_sheet
from vexora_async.ledgers import EntryState, SQLiteLedger, new_token

from tests.helpers import make_payout


if TYPE_CHECKING:
    from pathlib import Path


HEADER = "trade_no,amount,bank_code,bank_number,name,notify_url"
URL = "https://merchant.example/n"


def sheet_of(tmp_path: Path, body: bytes | str, **options: Any) -> Sheet:
    """Read *body* as a file."""
    path = tmp_path / "sheet.csv"
    if isinstance(body, str):
        body = body.encode()
    path.write_bytes(body)
    return read_sheet(path, **options)


def test_a_bom_any_column_order_and_unknown_columns(tmp_path: Path) -> None:
    """Excel's BOM is dropped, columns go by name, extra columns are kept."""
    sheet = sheet_of(
        tmp_path,
        "\ufeffname,cost_centre,amount,trade_no,bank_number,bank_code\n"
        "Ma Hnin,CC-7,150000,T1,09123456789,WAVEPAY\n",
        notify_url=URL,
    )
    assert sheet.all_problems() == []
    (row,) = sheet.rows
    assert row.request is not None
    assert (row.request.amount, row.request.bank_code) == (Decimal(150000), "WAVEPAY")
    assert row.request.notify_url == URL
    assert row.cells["cost_centre"] == "CC-7"


@pytest.mark.parametrize(
    ("amount", "problem"),
    [
        ("1,000", "'1,000' is not an amount in whole kyat"),
        ("1e3", "'1e3' is not an amount in whole kyat"),
        ("-500", "'-500' is not an amount in whole kyat"),
        ("12.50", "must be a whole number of kyat"),
        ("50", "must be at least 100"),
        ("", "'' is not an amount in whole kyat"),
    ],
)
def test_amounts_a_spreadsheet_may_mangle_are_refused(
    tmp_path: Path, amount: str, problem: str
) -> None:
    """No separator, exponent or sign passes for an amount."""
    # Quoted, as a spreadsheet writes a cell holding a comma.
    sheet = sheet_of(tmp_path, f'{HEADER}\nT1,"{amount}",KBZPAY,0912,Ko,{URL}\n')
    (row,) = sheet.rows
    assert not row.valid
    assert [(p.line, p.column) for p in row.problems] == [(2, "amount")]
    assert problem in row.problems[0].message


def test_amount_with_zero_decimals_is_whole_kyat(tmp_path: Path) -> None:
    """``1500.00`` is 1500, as a spreadsheet writes money."""
    sheet = sheet_of(tmp_path, f"{HEADER}\nT1,1500.00,KBZPAY,0912,Ko,{URL}\n")
    assert sheet.rows[0].request is not None
    assert sheet.rows[0].request.amount == 1500


def test_every_mistake_of_a_row_shows(tmp_path: Path) -> None:
    """Three bad cells, three problems, each with its column."""
    sheet = sheet_of(tmp_path, f"{HEADER}\nbad trade,10,KPZPAY,0912,Ko,ftp://x\n")
    columns = sorted(p.column or "" for p in sheet.rows[0].problems)
    assert columns == ["amount", "bank_code", "notify_url", "trade_no"]


def test_no_notify_url_anywhere_is_an_error(tmp_path: Path) -> None:
    """Without the column or --notify-url, a row cannot be sent."""
    sheet = sheet_of(
        tmp_path, "trade_no,amount,bank_code,bank_number,name\nT1,100,KBZPAY,0912,Ko\n"
    )
    assert [str(p) for p in sheet.rows[0].problems] == [
        "line 2, column notify_url: error: empty, and no --notify-url given"
    ]


def test_header_problems(tmp_path: Path) -> None:
    """Missing, repeated and reserved columns are each named."""
    sheet = sheet_of(tmp_path, "trade_no,amount,amount,bank_code,name,outcome\n")
    assert not sheet.usable
    assert {(p.column, p.message) for p in sheet.problems} == {
        ("bank_number", "required column is missing"),
        ("amount", "column appears twice"),
        ("outcome", "this name is reserved for the report's own column"),
    }


def test_empty_file(tmp_path: Path) -> None:
    """An empty file is refused, not read as zero payouts."""
    assert not sheet_of(tmp_path, b"").usable


def test_max_row(tmp_path: Path) -> None:
    """--max-row refuses a row above it, on its amount column."""
    sheet = sheet_of(
        tmp_path,
        f"{HEADER}\nT1,5000,KBZPAY,0912,Ko,{URL}\nT2,5001,KBZPAY,0913,Ko,{URL}\n",
        max_row=Decimal(5000),
    )
    assert [row.valid for row in sheet.rows] == [True, False]


def test_same_payee_and_amount_twice_is_a_warning(tmp_path: Path) -> None:
    """Two rows paying one wallet the same amount: sent, but flagged."""
    sheet = sheet_of(
        tmp_path,
        f"{HEADER}\nT1,5000,KBZPAY,0912,Ko,{URL}\nT2,5000,KBZPAY,0912,Ko,{URL}\n",
    )
    assert all(row.valid for row in sheet.rows)
    assert [(w.line, w.warning) for w in sheet.warnings] == [(2, True), (3, True)]


def test_credentials_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The three variables are enough; the secret is wrapped."""
    monkeypatch.setenv("VEXORA_MERCHANT_NO", "1000000001")
    monkeypatch.setenv("VEXORA_APP_SECRET", "s3cret-value")
    monkeypatch.setenv("VEXORA_BASE_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("VEXORA_CONFIG", "/nonexistent/config.ini")
    creds = load_credentials()
    assert creds.app_secret.value == "s3cret-value"
    assert "s3cret-value" not in repr(creds)


def test_missing_credentials_name_the_variables(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Nothing set: the message says what to set, and where a file goes."""
    for name in ("VEXORA_MERCHANT_NO", "VEXORA_APP_SECRET", "VEXORA_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("VEXORA_CONFIG", raising=False)
    with pytest.raises(CredentialsProblem, match="set VEXORA_MERCHANT_NO, VEXORA_APP"):
        load_credentials()


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_a_config_file_others_can_read_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, mode: int
) -> None:
    """Group or others may read it: refused, and the secret is not quoted."""
    for name in ("VEXORA_MERCHANT_NO", "VEXORA_APP_SECRET", "VEXORA_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    config = tmp_path / "c.ini"
    config.write_text("[vexora]\nmerchant_no=1\napp_secret=topsecret\nbase_url=x\n")
    config.chmod(mode)
    with pytest.raises(CredentialsProblem, match="chmod 600") as info:
        load_credentials(str(config))
    assert "topsecret" not in str(info.value)


def test_a_broken_config_file_does_not_quote_its_lines(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A config file configparser cannot read: its lines are not quoted."""
    monkeypatch.delenv("VEXORA_APP_SECRET", raising=False)
    config = tmp_path / "c.ini"
    config.write_text("app_secret = topsecret\n")
    config.chmod(0o600)
    with pytest.raises(CredentialsProblem) as info:
        load_credentials(str(config))
    assert "topsecret" not in str(info.value)


async def test_take_over_turns_a_dead_runs_claim_into_unknown(tmp_path: Path) -> None:
    """An in-flight claim (lease not run out) becomes unknown at once, payload kept."""
    async with SQLiteLedger(tmp_path / "j.db") as ledger:
        claim = await ledger.claim("k", "print", lease=180.0, token=new_token())
        assert claim.granted
        entry = await ledger.get("k")
        assert entry is not None
        assert entry.state is EntryState.IN_FLIGHT
        started = time.monotonic()
        assert await take_over(ledger, "k", entry)
        assert time.monotonic() - started < 5
        after = await ledger.get("k")
        assert after is not None
        assert (after.state, after.fingerprint) == (EntryState.UNKNOWN, "print")
        # The next claim (the client's, with its usual lease) is granted at
        # once, with the unknown prior: the client reconciles first.
        again = await ledger.claim("k", "print", lease=180.0, token=new_token())
        assert again.granted
        assert again.prior is not None
        assert again.prior.state is EntryState.UNKNOWN


def _row(outcome: str, status: str = "") -> dict[str, str]:
    return {"outcome": outcome, "status": status}


@pytest.mark.parametrize(
    ("rows", "interrupted", "expected"),
    [
        ([_row("accepted", "processing")], False, 0),
        ([_row("accepted"), _row("invalid")], False, 0),
        ([_row("accepted"), _row("unknown"), _row("rejected")], False, 5),
        ([_row("accepted"), _row("rejected")], False, 6),
        ([_row("accepted", "failed")], False, 6),
        ([_row("accepted"), _row("not_sent")], False, 1),
        ([_row("accepted"), _row("unknown")], True, 130),
    ],
)
def test_exit_status(
    rows: list[dict[str, str]], interrupted: bool, expected: int
) -> None:
    """The report's rows decide the status; unknown outranks rejected."""
    assert exit_status(rows, interrupted=interrupted) == expected


def test_help_documents_the_exit_statuses(capsys: pytest.CaptureFixture[str]) -> None:
    """``vexora payouts send --help`` lists every status."""
    with pytest.raises(SystemExit):
        main(["payouts", "send", "--help"])
    out = capsys.readouterr().out
    for line in (
        "  0    every row is accepted",
        "  1    an error",
        "  2    usage error",
        "  3    declined at the confirmation",
        "  4    the gateway refused the credentials or the sign",
        "  5    some rows are still unknown",
        "  6    some rows were rejected",
        "  130  interrupted",
    ):
        assert line in out


def test_payouts_without_a_subcommand_shows_help(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``vexora payouts`` alone is a usage error with the list of subcommands."""
    assert main(["payouts"]) == 2
    out = capsys.readouterr().out
    for name in ("send", "reconcile", "resolve", "status"):
        assert name in out


def test_the_secret_is_never_an_option(capsys: pytest.CaptureFixture[str]) -> None:
    """No command that calls the gateway takes the secret as an argument."""
    for argv in (
        ["payouts", "send", "--help"],
        ["payouts", "status", "--help"],
        ["payouts", "resolve", "--help"],
        ["payouts", "reconcile", "--help"],
        ["balance", "--help"],
    ):
        with pytest.raises(SystemExit):
            main(argv)
        out = capsys.readouterr().out
        assert "--app-secret" not in out
        assert "--secret" not in out


class QueryOnly:
    """Stands in for the client in reconcile: its status query finds *found*."""

    def __init__(self, found: PayoutStatus) -> None:
        self.found = found

    async def get_payout(self, trade_no: str) -> PayoutStatus:
        """Return what the gateway holds."""
        assert trade_no == self.found.trade_no
        return self.found


@pytest.mark.parametrize(
    ("found", "outcome", "error_code"),
    [
        ({"amount": Decimal(100)}, "accepted", None),
        ({"order_amount": Decimal(100), "amount": Decimal(90)}, "accepted", None),
        ({"order_amount": Decimal(25000)}, "unknown", "TradeNoCollision"),
        ({}, "unknown", "Unchecked"),
    ],
    ids=["same", "ordered-same", "another-amount", "no-amount"],
)
async def test_reconcile_reports_a_found_payout_as_the_row_s_only_when_it_is(
    found: dict[str, Any], outcome: str, error_code: str | None
) -> None:
    """The amount ordered decides; an answer with none leaves an unknown unknown."""
    request = make_payout(amount=100)
    record = Record(request.trade_no, request, "unknown")
    status = PayoutStatus(
        trade_no=request.trade_no, status=TransactionStatus("0000"), **found
    )
    await _query_one(QueryOnly(status), record)  # type: ignore[arg-type]
    assert (record.outcome, record.error_code) == (outcome, error_code)
