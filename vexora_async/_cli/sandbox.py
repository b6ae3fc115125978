"""``vexora sandbox``: serve the fake gateway on loopback."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

from vexora_async._version import __version__

from ._command import EXIT_OK, EXIT_REFUSED, EXIT_USAGE, Command


def _settle_delay(text: str) -> float | None:
    if text == "never":
        return None
    try:
        return float(text)
    except ValueError:
        msg = f"not a number of seconds or 'never': {text!r}"
        raise argparse.ArgumentTypeError(msg) from None


def _configure(parser: argparse.ArgumentParser) -> None:
    # The testing package is imported here, not at the top: the other
    # commands' --help stays fast.
    from vexora_async.testing._config import (
        DEFAULT_SETTLE_DELAY,
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
        type=_settle_delay,
        default=DEFAULT_SETTLE_DELAY,
        metavar="SECONDS",
        help=(
            "seconds before an accepted payout reaches its final status "
            f"(default {DEFAULT_SETTLE_DELAY}, as in SandboxConfig and the pytest "
            "fixtures; 'never': only when settled through the control endpoint)"
        ),
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
    parser.add_argument(
        "--accept-duplicates",
        action="store_true",
        help="execute a repeated tradeNo again instead of refusing it (code 8000), "
        "as a gateway without duplicate refusal would: try RetryPolicy("
        "resubmit=False) against it",
    )


def _stop_on_signals() -> asyncio.Event:
    """Return an event that SIGINT or SIGTERM sets.

    Handled on the loop rather than as KeyboardInterrupt: a process started
    in the background inherits SIGINT *ignored*, and a service manager
    stops with SIGTERM. Installed before the banner is printed, so that a
    signal sent as soon as it is read still stops the sandbox cleanly.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, stop.set)
    return stop


def banner(url: str, args: argparse.Namespace) -> str:
    """Return what a client needs to talk to the sandbox at *url*.

    The app secret is shown only when it is the public sandbox one; a
    secret given on the command line is not echoed.
    """
    from vexora_async.testing._config import SANDBOX_APP_SECRET
    from vexora_async.testing._control import CONTROL_PREFIX

    secret = (
        args.app_secret
        if args.app_secret == SANDBOX_APP_SECRET
        else "(as given to --app-secret)"
    )
    settle = (
        "only through the control endpoint"
        if args.settle_delay is None
        else f"{args.settle_delay:g} s after acceptance"
    )
    control = url + CONTROL_PREFIX
    return "\n".join(
        (
            f"Vexora sandbox serving at {url} (vexora-async {__version__})",
            f"  base_url     {url}",
            f"  merchant_no  {args.merchant_no}",
            f"  app_secret   {secret}",
            f"  settles      {settle}",
            f"  stats        GET  {control}stats",
            f"  payout       GET  {control}payouts/<tradeNo>",
            f"  settle now   POST {control}payouts/<tradeNo>/settle",
            f'  fault        POST {control}faults  {{"fault": "drop"}}',
            "Press Ctrl-C to stop.",
        )
    )


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
                reject_duplicates=not args.accept_duplicates,
            )
        )
        if args.fault_rate:
            gateway.faults.at_rate(args.fault_rate, seed=args.seed)
    except VexoraError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE

    async def serve() -> None:
        stop = _stop_on_signals()
        async with serve_sandbox(gateway, host=args.host, port=args.port) as url:
            print(banner(url, args), flush=True)
            await stop.wait()

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
        "until interrupted. It prints the base URL, merchant number and app "
        "secret a client needs, and the control and stats endpoints under "
        "/_sandbox/. Needs the 'sandbox' extra (uvicorn)."
    ),
    configure=_configure,
    run=_run,
)
