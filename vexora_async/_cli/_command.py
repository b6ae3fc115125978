"""What a subcommand is, and the exit statuses every command uses."""

from __future__ import annotations

import argparse
from collections.abc import Callable

import attrs


#: Exit statuses every command uses.
EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2


@attrs.frozen
class Command:
    """One subcommand: its name, help, arguments and what it runs."""

    name: str
    help: str
    #: Adds the command's arguments to its subparser.
    configure: Callable[[argparse.ArgumentParser], None]
    #: Runs the command with the parsed arguments; returns the exit status.
    run: Callable[[argparse.Namespace], int]
