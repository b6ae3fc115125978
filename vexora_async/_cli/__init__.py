"""The command line: ``vexora COMMAND [...]`` or ``python -m vexora_async COMMAND``.

Each command is a module of this package that defines a :class:`Command`
named ``command``; :data:`COMMANDS` lists them in the order ``--help``
shows them. To add one, write ``vexora_async/_cli/<name>.py`` and add its
``command`` to :data:`COMMANDS`. A command imports its optional
dependencies (rich, uvicorn) inside the functions that need them, so that
``--help`` and the other commands work without them.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from vexora_async._version import __version__

from . import balance, demo, payouts, sandbox, verify
from ._command import EXIT_OK, EXIT_REFUSED, EXIT_USAGE, Command


if TYPE_CHECKING:
    from collections.abc import Callable, Sequence


__all__ = [
    "COMMANDS",
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_USAGE",
    "Command",
    "build_parser",
    "main",
]

#: The commands, in the order ``--help`` lists them.
COMMANDS: tuple[Command, ...] = (
    balance.command,
    demo.command,
    payouts.command,
    sandbox.command,
    verify.command,
)


def build_parser(
    commands: Sequence[Command] = COMMANDS, *, prog: str | None = None
) -> argparse.ArgumentParser:
    """Build the top-level parser with one subparser per command."""
    parser = argparse.ArgumentParser(
        prog=prog,
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
            epilog=command.epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter
            if command.epilog
            else argparse.HelpFormatter,
            allow_abbrev=False,
        )
        command.configure(sub)
        sub.set_defaults(_run=command.run)
    return parser


def main(argv: Sequence[str] | None = None, *, prog: str | None = None) -> int:
    """Run the command line; return the exit status (0 ok, 1 refused, 2 usage).

    *prog* is the name ``--help`` shows (default: ``vexora``, the console
    script; ``python -m vexora_async`` passes its own).
    """
    parser = build_parser(prog=prog or "vexora")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    run: Callable[[argparse.Namespace], int] | None = getattr(args, "_run", None)
    if run is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    return run(args)
