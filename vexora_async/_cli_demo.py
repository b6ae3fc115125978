"""``python -m vexora_async demo``: 1,000 payouts against a local sandbox."""

from __future__ import annotations

import argparse

from ._cli import Command


def _configure(parser: argparse.ArgumentParser) -> None:
    from ._demo import add_arguments  # noqa: PLC0415 - rich is an optional dependency

    # The help shows each knob's default.
    parser.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    add_arguments(parser)


def _run(args: argparse.Namespace) -> int:
    from ._demo import run  # noqa: PLC0415 - rich is an optional dependency

    return run(args)


command = Command(
    name="demo",
    help=(
        "Start the sandbox gateway and a callback receiver on loopback, send "
        "payouts through the batch API with some injected faults that the SDK "
        "retries and reconciles, wait for the callbacks, verify their "
        "signatures and print a summary. No credentials or network needed; "
        "needs the 'demo' extra (rich, uvicorn)."
    ),
    configure=_configure,
    run=_run,
)
