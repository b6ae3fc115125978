"""Tests for the command-line frame: the registry, help and dispatch."""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING

import pytest
from vexora_async import __version__
from vexora_async._cli import (
    COMMANDS,
    EXIT_USAGE,
    Command,
    build_parser,
    load_commands,
    main,
)


if TYPE_CHECKING:
    import argparse


def test_verify_is_registered() -> None:
    """The registry lists the verify command, and it loads."""
    assert "vexora_async._cli_verify" in COMMANDS
    assert "verify" in [c.name for c in load_commands()]


def test_no_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    """Without a command, the help goes to stderr and the status is 2."""
    assert main([]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "usage: python -m vexora_async" in err
    assert "verify" in err


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


def test_a_new_command_plugs_in(monkeypatch: pytest.MonkeyPatch) -> None:
    """A module exposing a Command is all a new subcommand needs."""
    seen: list[str] = []

    def configure(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("word")

    def run(args: argparse.Namespace) -> int:
        seen.append(args.word)
        return 7

    module = types.ModuleType("fake_command")
    module.command = Command(  # type: ignore[attr-defined]  # a module built in the test
        name="echo", help="repeat a word", configure=configure, run=run
    )
    monkeypatch.setitem(sys.modules, "fake_command", module)
    parser = build_parser(load_commands(["fake_command"]))
    args = parser.parse_args(["echo", "hello"])
    assert args._run(args) == 7
    assert seen == ["hello"]


def test_a_module_without_a_command_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A registry entry that is not a Command fails loudly."""
    module = types.ModuleType("not_a_command")
    module.command = "verify"  # type: ignore[attr-defined]  # a module built in the test
    monkeypatch.setitem(sys.modules, "not_a_command", module)
    with pytest.raises(TypeError, match="not a Command"):
        load_commands(["not_a_command"])
