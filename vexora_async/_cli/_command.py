"""What a subcommand is, and the exit statuses every command uses."""

from __future__ import annotations

import argparse
from collections.abc import Callable

import attrs


#: Exit statuses every command uses.
EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
#: Further statuses of the commands that pay (``vexora payouts ...``).
EXIT_ERROR = 1
EXIT_DECLINED = 3
EXIT_AUTH = 4
EXIT_UNKNOWN = 5
EXIT_REJECTED = 6
EXIT_INTERRUPTED = 130


@attrs.frozen
class Command:
    """One subcommand: its name, help, arguments and what it runs."""

    name: str
    help: str
    #: Adds the command's arguments to its subparser.
    configure: Callable[[argparse.ArgumentParser], None]
    #: Runs the command with the parsed arguments; returns the exit status.
    run: Callable[[argparse.Namespace], int]
    #: Shown after the arguments in ``--help`` (as written: line breaks kept).
    epilog: str | None = None
