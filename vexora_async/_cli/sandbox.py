"""``python -m vexora_async sandbox``: serve the fake gateway on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from typing import TYPE_CHECKING

from ._command import EXIT_OK, EXIT_REFUSED, EXIT_USAGE, Command


if TYPE_CHECKING:
    import argparse


def _configure(parser: argparse.ArgumentParser) -> None:
    from vexora_async.testing._config import (
        SANDBOX_APP_SECRET,
        SANDBOX_MERCHANT_NO,
    )

    parser.add_argument("--host", default="127.0.0.1", help="loopback address")
    parser.add_argument(
        "--port", type=int, default=8090, help="port (0: any free one; default 8090)"
    )
    parser.add_argument("--merchant-no", default=SANDBOX_MERCHANT_NO)
    parser.add_argument(
        "--app-secret",
        default=SANDBOX_APP_SECRET,
        help="the secret requests are signed with (default: the public sandbox one)",
    )
    parser.add_argument(
        "--settle-delay",
        type=float,
        default=2.0,
        help="seconds before a payout reaches its final status (default 2)",
    )
    parser.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="multiplies the callback retry schedule (default 1: real time)",
    )
    parser.add_argument(
        "--fault-rate",
        type=float,
        default=0.0,
        help="fraction of requests that get a random fault (default 0)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the fault RNG")


async def _until_stopped() -> None:
    """Wait for SIGINT or SIGTERM.

    Handled on the loop rather than as KeyboardInterrupt: a process started
    in the background inherits SIGINT *ignored*, and a service manager
    stops with SIGTERM.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, stop.set)
    await stop.wait()


def _run(args: argparse.Namespace) -> int:
    from vexora_async.exceptions import VexoraError
    from vexora_async.testing import FakeGateway, SandboxConfig, serve_sandbox

    try:
        gateway = FakeGateway(
            SandboxConfig(
                merchant_no=args.merchant_no,
                app_secret=args.app_secret,
                settle_delay=args.settle_delay,
                time_scale=args.time_scale,
            )
        )
        if args.fault_rate:
            gateway.faults.at_rate(args.fault_rate, seed=args.seed)
    except VexoraError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE

    async def serve() -> None:
        async with serve_sandbox(gateway, host=args.host, port=args.port) as url:
            print(f"Vexora sandbox serving at {url}")
            print(f"  merchant_no = {args.merchant_no}")
            print("  app_secret  = (as given to --app-secret)")
            print("Press Ctrl-C to stop.", flush=True)
            await _until_stopped()

    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve())
    except VexoraError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    return EXIT_OK


command = Command(
    name="sandbox",
    help=(
        "Serve the sandbox gateway (vexora_async.testing) on a loopback address "
        "until interrupted. Point a client at the printed base URL with the "
        "printed merchant number and app secret. Needs the 'sandbox' extra "
        "(uvicorn)."
    ),
    configure=_configure,
    run=_run,
)
