"""``vexora balance``: the merchant's balance at the gateway."""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING

from ._command import Command
from ._credentials import CONFIG_HELP


if TYPE_CHECKING:
    import argparse


def add_client_options(parser: argparse.ArgumentParser) -> None:
    """Add the options every command that calls the gateway takes."""
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="the config file holding the credentials (see below)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="each HTTP attempt's limit (default 30)",
    )
    parser.add_argument(
        "--deadline",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="each call's limit, retries and status queries included (default 60)",
    )


def _configure(parser: argparse.ArgumentParser) -> None:
    add_client_options(parser)
    parser.add_argument("--json", action="store_true", help="print JSON")


def _run(args: argparse.Namespace) -> int:
    from ._payouts import run_balance

    return run_balance(args)


command = Command(
    name="balance",
    help="show the merchant's balance at the gateway",
    configure=_configure,
    run=_run,
    epilog=textwrap.fill(CONFIG_HELP[0].upper() + CONFIG_HELP[1:] + ".", width=78)
    + "\n\nExit status: 0 ok, 1 the gateway could not be read, 2 usage or missing "
    "credentials,\n4 the gateway refused the credentials or the sign.",
)
