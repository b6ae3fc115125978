"""Tests for ``python -m vexora_async verify``: in-process and as a process."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from vexora_async._cli import EXIT_OK, EXIT_REFUSED, EXIT_USAGE, main

from tests.helpers import CALLBACK_BODY, CALLBACK_SIGN, SECRET, callback


ROOT = Path(__file__).resolve().parent.parent
CANONICAL = (
    "amount=100message=SUCCESSplatFormTradeNo=vx8f3k29d0qplm7x2status=0000"
    "successTime=2026-03-31 18:34:31timestamp=1774953271000tradeNo=VX20260331004567"
)


@pytest.fixture(autouse=True)
def secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Put the test secret where the command looks for it."""
    monkeypatch.setenv("VEXORA_APP_SECRET", SECRET)


def saved(tmp_path: Path, body: bytes) -> str:
    """Save *body* as a callback file and return its path."""
    path = tmp_path / "callback.json"
    path.write_bytes(body)
    return str(path)


def lines(out: str) -> dict[str, str]:
    """Read the command's 'label: value' lines into a dict."""
    result = {}
    for line in out.splitlines():
        label, sep, value = line.partition(":")
        if sep and not line.startswith(" "):
            result[label] = value.strip()
    return result


def test_valid_body(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The vector verifies: status 0, canonical string and equal signs shown."""
    assert main(["verify", saved(tmp_path, CALLBACK_BODY)]) == EXIT_OK
    out = lines(capsys.readouterr().out)
    assert json.loads(out["canonical string"]) == CANONICAL
    assert out["expected sign"] == CALLBACK_SIGN
    assert json.loads(out["received sign"]) == CALLBACK_SIGN
    assert out["verdict"].startswith("VALID payout tradeNo=VX20260331004567")
    assert "status=0000 (success) amount=100" in out["verdict"]


def test_tampered_body(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A changed amount: status 1, and the two signs side by side differ."""
    body = CALLBACK_BODY.replace(b'"amount":"100"', b'"amount":"1000"')
    assert main(["verify", saved(tmp_path, body)]) == EXIT_REFUSED
    out = lines(capsys.readouterr().out)
    assert "amount=1000" in out["canonical string"]
    assert json.loads(out["received sign"]) == CALLBACK_SIGN
    assert out["expected sign"] != CALLBACK_SIGN
    assert out["verdict"].startswith("REFUSED (SignatureError)")


def test_uppercase_sign_is_explained(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An uppercase sign is named as the problem."""
    body = CALLBACK_BODY.replace(CALLBACK_SIGN.encode(), CALLBACK_SIGN.upper().encode())
    assert main(["verify", saved(tmp_path, body)]) == EXIT_REFUSED
    assert "lowercase" in lines(capsys.readouterr().out)["verdict"]


def test_unsigned_fields_are_listed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Empty and nested fields are shown as left out of the sign."""
    body = callback({"remark": "", "extra": {"a": 1}, "list": [1]})
    assert main(["verify", saved(tmp_path, body)]) == EXIT_OK
    out = lines(capsys.readouterr().out)
    assert out["not signed"] == "remark (empty), extra (object), list (array)"


def test_missing_sign(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A body without sign shows the expected one and says none was received."""
    body = json.dumps({**json.loads(CALLBACK_BODY), "sign": None}).encode()
    assert main(["verify", saved(tmp_path, body)]) == EXIT_REFUSED
    out = lines(capsys.readouterr().out)
    assert out["received sign"] == "(none)"
    assert out["expected sign"] == CALLBACK_SIGN
    assert "no sign" in out["verdict"]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"not json", "MalformedNotification"),
        (b"[]", "MalformedNotification"),
        (b"\xff", "MalformedNotification"),
        (b" " * 70000, "NotificationTooLarge"),
    ],
)
def test_unreadable_bodies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], body: bytes, error: str
) -> None:
    """Bodies with no fields to sign are refused with status 1 and the reason."""
    assert main(["verify", saved(tmp_path, body)]) == EXIT_REFUSED
    out = lines(capsys.readouterr().out)
    assert "canonical string" not in out
    assert out["verdict"].startswith(f"REFUSED ({error})")


def test_valid_sign_but_missing_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A correctly signed body without an amount: signs agree, verdict refused."""
    assert main(["verify", saved(tmp_path, callback(drop=("amount",)))]) == 1
    out = lines(capsys.readouterr().out)
    assert out["expected sign"] == json.loads(out["received sign"])
    assert "MalformedNotification" in out["verdict"]


def test_kind_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--kind deposit reads the body as a deposit."""
    assert main(["verify", "--kind", "deposit", saved(tmp_path, CALLBACK_BODY)]) == 0
    assert lines(capsys.readouterr().out)["verdict"].startswith("VALID deposit")


def test_stdin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """'-' reads the body from standard input, as bytes."""
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(CALLBACK_BODY)))
    assert main(["verify", "-"]) == EXIT_OK
    assert lines(capsys.readouterr().out)["verdict"].startswith("VALID")


def test_missing_secret_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without the environment variable: status 2, a hint, nothing verified."""
    monkeypatch.delenv("VEXORA_APP_SECRET")
    assert main(["verify", saved(tmp_path, CALLBACK_BODY)]) == EXIT_USAGE
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "set VEXORA_APP_SECRET" in captured.err


def test_undecodable_secret_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A variable holding bytes that are not UTF-8: status 2, no traceback."""
    # How Python hands over an environment value it could not decode.
    monkeypatch.setenv("VEXORA_APP_SECRET", "s3cr\udcffet")
    assert main(["verify", saved(tmp_path, CALLBACK_BODY)]) == EXIT_USAGE
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "VEXORA_APP_SECRET does not hold a usable app secret" in captured.err
    assert "s3cr" not in captured.err


def test_secret_env_names_another_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--secret-env reads the secret from a variable of your choosing."""
    monkeypatch.delenv("VEXORA_APP_SECRET")
    monkeypatch.setenv("SHOP_VEXORA_SECRET", SECRET)
    path = saved(tmp_path, CALLBACK_BODY)
    assert main(["verify", "--secret-env", "SHOP_VEXORA_SECRET", path]) == EXIT_OK
    assert lines(capsys.readouterr().out)["verdict"].startswith("VALID")


def test_secret_is_never_an_argument(tmp_path: Path) -> None:
    """There is no option that takes the secret, not even by abbreviation."""
    with pytest.raises(SystemExit) as info:
        main(["verify", "--secret", SECRET, saved(tmp_path, CALLBACK_BODY)])
    assert info.value.code == EXIT_USAGE


def test_a_secret_typed_as_the_variable_name_is_not_echoed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Passing the secret to --secret-env by mistake does not print it."""
    path = saved(tmp_path, CALLBACK_BODY)
    assert main(["verify", "--secret-env", "app-secret-0001", path]) == EXIT_USAGE
    captured = capsys.readouterr()
    assert SECRET not in captured.out + captured.err
    assert "--secret-env" in captured.err


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An unreadable file is a usage error (status 2)."""
    assert main(["verify", str(tmp_path / "nope.json")]) == EXIT_USAGE
    assert "cannot read" in capsys.readouterr().err


def test_secret_is_never_printed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Neither a valid nor a refused body prints the secret."""
    main(["verify", saved(tmp_path, CALLBACK_BODY)])
    main(["verify", saved(tmp_path, b"{}")])
    captured = capsys.readouterr()
    assert SECRET not in captured.out + captured.err


def _python_m(
    *args: str, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "VEXORA_APP_SECRET": SECRET}
    return subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "vexora_async", *args],
        input=stdin,
        capture_output=True,
        env=env,
        cwd=ROOT,
        check=False,
        timeout=60,
    )


@pytest.mark.subprocess
def test_as_a_process(tmp_path: Path) -> None:
    """Python -m vexora_async verify works as a real command, file and stdin."""
    done = _python_m("verify", saved(tmp_path, CALLBACK_BODY))
    assert done.returncode == EXIT_OK, done.stderr
    assert b"VALID payout" in done.stdout
    tampered = CALLBACK_BODY.replace(b"SUCCESS", b"FAILED")
    done = _python_m("verify", "-", stdin=tampered)
    assert done.returncode == EXIT_REFUSED
    assert b"REFUSED (SignatureError)" in done.stdout
