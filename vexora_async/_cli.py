"""The command line: ``python -m vexora_async COMMAND [...]``.

Each command lives in its own module, named in :data:`COMMANDS`, which
exposes a :class:`Command` as ``command``. To add one, write
``vexora_async/_cli_<name>.py`` and add its module name here; commands are
imported only when the parser is built, so a command's own dependencies
stay out of ``import vexora_async``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs

from ._version import __version__


if TYPE_CHECKING:
    from collections.abc import Sequence


#: Exit statuses every command uses.
EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2

#: The modules that provide commands, in the order ``--help`` lists them.
COMMANDS: tuple[str, ...] = (
    "vexora_async._cli_demo",
    "vexora_async._cli_sandbox",
    "vexora_async._cli_verify",
)


@attrs.frozen
class Command:
    """One subcommand: its name, help, arguments and what it runs."""

    name: str
    help: str
    #: Adds the command's arguments to its subparser.
    configure: Callable[[argparse.ArgumentParser], None]
    #: Runs the command with the parsed arguments; returns the exit status.
    run: Callable[[argparse.Namespace], int]


def load_commands(modules: Sequence[str] = COMMANDS) -> list[Command]:
    """Import each command module and return its :class:`Command`."""
    commands = []
    for name in modules:
        command = importlib.import_module(name).command
        if not isinstance(command, Command):
            msg = f"{name}.command is not a Command"
            raise TypeError(msg)
        commands.append(command)
    return commands


def build_parser(commands: Sequence[Command]) -> argparse.ArgumentParser:
    """Build the top-level parser with one subparser per command."""
    parser = argparse.ArgumentParser(
        prog="python -m vexora_async",
        description="Tools for the Vexora payment gateway SDK.",
        # "--secret VALUE" must never pass for "--secret-env VALUE".
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=__version__)
    subparsers = parser.add_subparsers(title="commands", dest="command")
    for command in commands:
        sub = subparsers.add_parser(
            command.name,
            help=command.help,
            description=command.help,
            allow_abbrev=False,
        )
        command.configure(sub)
        sub.set_defaults(_run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (0 ok, 1 refused, 2 usage)."""
    parser = build_parser(load_commands())
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    run: Callable[[argparse.Namespace], int] | None = getattr(args, "_run", None)
    if run is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    return run(args)
