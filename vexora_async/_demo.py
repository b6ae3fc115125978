"""``python -m vexora_async demo``: 1,000 payouts against a local sandbox.

Starts the sandbox gateway and a callback receiver on loopback, sends the
payouts through :meth:`VexoraClient.create_payouts` with faults injected,
resolves the unknown outcomes by status query, waits for the callbacks,
verifies their signatures and prints a summary. Needs the ``demo`` extra.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import attrs

from ._batch import OutcomeKind, PayoutOutcome
from ._client import VexoraClient
from ._models import BankCode, PayoutRequest
from ._operations import Operation
from .exceptions import RequestRejected, VexoraError


if TYPE_CHECKING:
    import argparse
    from collections.abc import Iterator

    from .testing import CallbackRecorder, FakeGateway, ReceivedCallback


# On loopback, fewer connections mean less pool bookkeeping per request.
_CONCURRENCY = 10
_SETTLE_DELAY = 0.2
# The gateway's 2 s, 5 s, 10 s... retry schedule, a hundred times faster.
_TIME_SCALE = 0.01
_CALLBACK_WAIT = 30.0
_RECONCILE_ROUNDS = 3
_FAILING_SHARE = 0.03
_NAMES = ("Ko Min Thu", "Daw Aye Aye", "U Kyaw Zin", "Ma Hnin Wai", "မောင်မောင်")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the demo's knobs."""
    parser.add_argument(
        "--count", type=int, default=1000, help="how many payouts to send"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=_CONCURRENCY,
        help=(
            "payouts in flight at once (the batch API's worker pool; on "
            "loopback the CPU, not the network, is the limit)"
        ),
    )
    parser.add_argument(
        "--fault-rate",
        type=float,
        default=0.05,
        help=(
            "fraction of payout requests that get an injected fault (dropped "
            "connection, 5xx, code 5000, garbage, 429, delay), and of "
            "callbacks the receiver refuses at first"
        ),
    )
    parser.add_argument(
        "--seed", type=int, default=2026, help="seed of the faults and the payouts"
    )


@attrs.define
class _Tally:
    """What the demo saw, for the summary."""

    kinds: Counter[OutcomeKind] = attrs.field(factory=Counter)
    reconciled_executed: int = 0
    resent_unknown: int = 0
    resent_errors: int = 0
    still_unknown: set[str] = attrs.field(factory=set)
    executed: set[str] = attrs.field(factory=set)
    batch_seconds: float = 0.0
    total_seconds: float = 0.0


def run(args: argparse.Namespace) -> int:
    """Run the demo; return the exit status."""
    try:
        import uvicorn  # noqa: F401, PLC0415 - checked early for a clear message
        from rich.console import Console  # noqa: PLC0415 - an optional dependency
    except ImportError:
        print(  # noqa: T201 - a CLI
            "The demo needs its extra: pip install 'vexora-async[demo]'"
        )
        return 2
    if args.count < 1 or args.concurrency < 1 or not 0 <= args.fault_rate <= 1:
        print(  # noqa: T201 - a CLI
            "error: --count and --concurrency must be >= 1, --fault-rate in [0, 1]"
        )
        return 2
    # The client warns about every unknown outcome; the summary reports them.
    sdk_logger = logging.getLogger("vexora_async")
    quiet = logging.NullHandler()
    propagate, sdk_logger.propagate = sdk_logger.propagate, False
    sdk_logger.addHandler(quiet)
    try:
        return asyncio.run(_main(args, Console()))
    finally:
        sdk_logger.removeHandler(quiet)
        sdk_logger.propagate = propagate


def _requests(count: int, notify_url: str, seed: int) -> Iterator[PayoutRequest]:
    rng = random.Random(seed)  # noqa: S311 - demo data, not crypto
    for i in range(count):
        account = f"09{rng.randrange(10**9):09d}"
        if rng.random() < _FAILING_SHARE:
            # The sandbox fails payouts to accounts ending in 0029.
            account = account[:-4] + "0029"
        yield PayoutRequest(
            trade_no=f"DEMO{seed:04d}{i:08d}",
            amount=rng.randrange(10, 5000) * 100,
            bank_code=rng.choice((BankCode.KBZPAY, BankCode.WAVEPAY)),
            bank_number=account,
            name=rng.choice(_NAMES),
            notify_url=notify_url,
        )


async def _main(args: argparse.Namespace, console: Any) -> int:  # noqa: ANN401 - rich.Console
    from .testing import (  # noqa: PLC0415 - the testing package is optional here
        CallbackRecorder,
        FakeGateway,
        SandboxConfig,
        serve_app,
        serve_sandbox,
    )
    from .testing._recorder import ACCEPTED  # noqa: PLC0415

    gateway = FakeGateway(
        SandboxConfig(settle_delay=_SETTLE_DELAY, time_scale=_TIME_SCALE)
    )
    if args.fault_rate:
        gateway.faults.at_rate(
            args.fault_rate, seed=args.seed, operations=Operation.CREATE_PAYOUT
        )
    refuse = random.Random(args.seed + 1)  # noqa: S311 - demo faults, not crypto

    def respond(callback: ReceivedCallback) -> tuple[int, bytes]:
        if not callback.verified:
            return 400, b"bad sign"
        if callback.delivery == 1 and refuse.random() < args.fault_rate:
            return 503, b"busy"
        return ACCEPTED

    config = gateway.config
    receiver = CallbackRecorder(config.app_secret, respond=respond)
    tally = _Tally()
    started = time.perf_counter()
    async with (
        serve_app(receiver) as receiver_url,
        serve_sandbox(gateway) as gateway_url,
        VexoraClient(config.merchant_no, config.app_secret, gateway_url) as client,
    ):
        console.print(
            f"[bold]Vexora sandbox[/] at {gateway_url}, callback receiver at "
            f"{receiver_url}\nSending {args.count:,} payouts, {args.concurrency} "
            f"at a time, {args.fault_rate:.0%} of requests faulty (seed {args.seed})"
        )
        requests = _requests(args.count, f"{receiver_url}/vexora/notify", args.seed)
        batch_started = time.perf_counter()
        unsettled = await _send(client, requests, args, console, tally)
        tally.batch_seconds = time.perf_counter() - batch_started
        await _reconcile(client, unsettled, tally)
        await _await_callbacks(receiver, tally, console)
        tally.total_seconds = time.perf_counter() - started
    _summary(console, args, gateway, receiver, tally)
    return 0 if not tally.still_unknown and not gateway.stats.double_executions else 1


async def _send(
    client: VexoraClient,
    requests: Iterator[PayoutRequest],
    args: argparse.Namespace,
    console: Any,  # noqa: ANN401 - rich.Console
    tally: _Tally,
) -> list[PayoutOutcome]:
    """Run the batch with a progress bar; return what needs a second look."""
    from rich.progress import (  # noqa: PLC0415 - an optional dependency
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    unsettled = []
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:>7.0f}/s"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("payouts", total=args.count, rate=0.0)
        started = time.perf_counter()
        async for outcome in client.create_payouts(
            requests,
            concurrency=args.concurrency,
            on_progress=lambda p: progress.update(
                task,
                completed=p.done,
                rate=p.done / max(time.perf_counter() - started, 1e-9),
            ),
        ):
            tally.kinds[outcome.kind] += 1
            if outcome.kind is OutcomeKind.ACCEPTED:
                tally.executed.add(outcome.trade_no)
            elif outcome.kind is not OutcomeKind.REJECTED:
                unsettled.append(outcome)
    return unsettled


async def _reconcile(
    client: VexoraClient, unsettled: list[PayoutOutcome], tally: _Tally
) -> None:
    """Resolve unknown outcomes by status query; resend what never happened.

    Resending under the *same* tradeNo is safe: the gateway refuses a
    duplicate, so a payout can never be made twice this way.
    """
    pending = {o.trade_no: o.request for o in unsettled}
    unknown = {o.trade_no for o in unsettled if o.kind is OutcomeKind.UNKNOWN}
    for _ in range(_RECONCILE_ROUNDS):
        for trade_no, request in list(pending.items()):
            try:
                await client.get_payout(trade_no)
            except RequestRejected:
                pass  # the gateway does not know it: it never happened
            except VexoraError:
                continue  # try again next round
            else:
                tally.reconciled_executed += 1
                tally.executed.add(trade_no)
                del pending[trade_no]
                continue
            try:
                await client.create_payout(request)
            except VexoraError:
                continue
            if trade_no in unknown:
                tally.resent_unknown += 1
            else:
                tally.resent_errors += 1
            tally.executed.add(trade_no)
            del pending[trade_no]
    tally.still_unknown = set(pending)


async def _await_callbacks(
    receiver: CallbackRecorder,
    tally: _Tally,
    console: Any,  # noqa: ANN401 - rich.Console
) -> None:
    deadline = time.monotonic() + _CALLBACK_WAIT
    with console.status("waiting for callbacks..."):
        while not tally.executed <= receiver.verified_trade_nos:
            if time.monotonic() > deadline:
                return
            await asyncio.sleep(0.05)


def _summary(
    console: Any,  # noqa: ANN401 - rich.Console
    args: argparse.Namespace,
    gateway: FakeGateway,
    receiver: CallbackRecorder,
    tally: _Tally,
) -> None:
    from rich.table import Table  # noqa: PLC0415 - an optional dependency

    finals: dict[str, str | None] = {}
    for callback in receiver.received:
        if callback.verified and callback.trade_no:
            finals[callback.trade_no] = callback.status
    statuses = Counter(finals.values())
    stats = gateway.stats
    retried = sum(1 for cb in receiver.received if cb.delivery > 1)
    balance = gateway.balance
    paid = sum(
        (t.amount for t in gateway.payouts.values() if t.status.is_success),
        Decimal(0),
    )
    accounted = (
        balance.available_amount + (balance.freeze_amount or 0) + paid
        == gateway.config.initial_balance
    )
    kinds = tally.kinds
    unknown = kinds[OutcomeKind.UNKNOWN]
    table = Table(title="vexora-async demo", show_header=False)
    table.add_column("what")
    table.add_column("count", justify="right")
    rows = [
        ("payouts sent", f"{args.count:,}"),
        ("accepted at once", f"{kinds[OutcomeKind.ACCEPTED]:,}"),
        ("refused by the gateway (8000)", f"{kinds[OutcomeKind.REJECTED]:,}"),
        ("not executed (429/503)", f"{kinds[OutcomeKind.ERROR]:,}"),
        ("  resent under the same tradeNo", f"{tally.resent_errors:,}"),
        ("unknown outcomes", f"{unknown:,}"),
        ("  reconciled: executed", f"{tally.reconciled_executed:,}"),
        ("  reconciled: never arrived, resent", f"{tally.resent_unknown:,}"),
        ("  still unknown", f"{len(tally.still_unknown):,}"),
        ("succeeded (callback 0000)", f"{statuses['0000']:,}"),
        ("failed (callback 00029)", f"{statuses['00029']:,}"),
        (
            "callbacks verified",
            f"{len(receiver.verified_trade_nos):,} of {len(tally.executed):,}",
        ),
        ("  deliveries retried by the gateway", f"{retried:,}"),
        ("  bad signatures", f"{len(receiver.rejected):,}"),
        ("faults injected", f"{stats.faults.total():,}"),
        ("double executions", f"{len(stats.double_executions):,}"),
        ("money accounted for", "yes" if accounted else "NO"),
        ("batch elapsed", f"{tally.batch_seconds:.2f} s"),
        ("payouts per second", f"{args.count / tally.batch_seconds:,.0f}"),
        ("total elapsed", f"{tally.total_seconds:.2f} s"),
    ]
    for row in rows:
        table.add_row(*row)
    console.print(table)
