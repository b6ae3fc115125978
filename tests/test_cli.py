"""Tests for the command-line frame: the command list, help and dispatch."""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING

import pytest
from vexora_async import __version__
from vexora_async._cli import (
    COMMANDS,
    EXIT_USAGE,
    Command,
    build_parser,
    main,
)


if TYPE_CHECKING:
    import argparse


def test_every_command_is_listed() -> None:
    """balance, demo, payouts, sandbox and verify are the commands, in that order."""
    assert [c.name for c in COMMANDS] == [
        "balance",
        "demo",
        "payouts",
        "sandbox",
        "verify",
    ]


def test_no_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    """Without a command, the help goes to stderr and the status is 2."""
    assert main([]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "usage: vexora" in err
    for name in ("balance", "demo", "payouts", "sandbox", "verify"):
        assert name in err


def test_prog_names_the_invocation(capsys: pytest.CaptureFixture[str]) -> None:
    """``python -m vexora_async`` shows itself in the usage line."""
    assert main([], prog="python -m vexora_async") == EXIT_USAGE
    assert "usage: python -m vexora_async" in capsys.readouterr().err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    """--version prints the package version."""
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == __version__


def test_unknown_command_is_a_usage_error() -> None:
    """An unknown command exits with status 2, as argparse does."""
    with pytest.raises(SystemExit) as info:
        main(["frobnicate"])
    assert info.value.code == EXIT_USAGE


def test_a_new_command_plugs_in() -> None:
    """A Command is all a new subcommand needs."""
    seen: list[str] = []

    def configure(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("word")

    def run(args: argparse.Namespace) -> int:
        seen.append(args.word)
        return 7

    echo = Command(name="echo", help="repeat a word", configure=configure, run=run)
    parser = build_parser([*COMMANDS, echo])
    args = parser.parse_args(["echo", "hello"])
    assert args._run(args) == 7
    assert seen == ["hello"]


@pytest.mark.subprocess
def test_python_dash_m_runs_the_command_line() -> None:
    """``python -m vexora_async --help`` lists the commands and exits 0."""
    completed = subprocess.run(
        [sys.executable, "-m", "vexora_async", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert "usage: python -m vexora_async" in completed.stdout
    assert "sandbox" in completed.stdout


@pytest.mark.subprocess
def test_help_needs_no_optional_dependency() -> None:
    """The parser and ``--help`` work without rich and uvicorn."""
    code = (
        "import sys; sys.modules.update(rich=None, uvicorn=None); "
        "from vexora_async._cli import build_parser; "
        "print(build_parser().format_help().count('sandbox'))"
    )
    completed = subprocess.run(  # noqa: S603 - our own interpreter and arguments
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert int(completed.stdout) >= 1
