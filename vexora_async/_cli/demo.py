"""``vexora demo``: 1,000 payouts against a local sandbox.

Starts the sandbox gateway and a callback receiver on loopback, sends the
payouts through :meth:`VexoraClient.create_payouts` with faults injected
into payout requests and status queries, lets the client's retry layer
retry and reconcile them, settles whatever is still unknown with
:meth:`VexoraClient.resolve_payout`, waits for the callbacks, verifies
their signatures and prints a summary. Needs the ``demo`` extra.

The demo does no reconciliation of its own: it only watches, through a
middleware, what the SDK did for each payout.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import time
from collections import Counter, defaultdict
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import attrs

from vexora_async._batch import OutcomeKind, PayoutOutcome
from vexora_async._client import VexoraClient
from vexora_async._models import BankCode, PayoutRequest, TransactionStatus
from vexora_async._operations import Operation
from vexora_async._retry import RetryPolicy
from vexora_async.exceptions import (
    ConnectError,
    HTTPStatusError,
    OutcomeUnknown,
    RequestRejected,
    VexoraError,
)

from ._command import EXIT_OK, EXIT_REFUSED, EXIT_USAGE, Command


#: The sandbox's rule (``vexora_async.testing._transactions``, kept equal
#: by a test; not imported, so that ``vexora --help`` loads no sandbox): a
#: payout to an account ending in this suffix ends failed (``00029``).
FAILED_SUFFIX = "0029"


if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

    from vexora_async._middleware import Call
    from vexora_async.testing import (
        CallbackRecorder,
        FakeGateway,
        Fault,
        ReceivedCallback,
    )


# On loopback, fewer connections mean less pool bookkeeping per request.
_CONCURRENCY = 10
_SETTLE_DELAY = 0.2
# The gateway's 2 s, 5 s, 10 s... retry schedule, a hundred times faster.
_TIME_SCALE = 0.01
_CALLBACK_WAIT = 30.0
#: The share of generated accounts given :data:`FAILED_SUFFIX`: failed
#: payouts, on purpose, so that the summary shows both final statuses.
_FAILING_SHARE = 0.03
_NAMES = ("Ko Min Thu", "Daw Aye Aye", "U Kyaw Zin", "Ma Hnin Wai", "မောင်မောင်")
#: The SDK's default retry policy with a loopback-sized backoff: the
#: sandbox answers in a millisecond, so waiting a quarter second between
#: attempts would only make the demo slow.
_RETRY = RetryPolicy(backoff_initial=0.005, backoff_max=0.05)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the demo's knobs; the help shows each one's default."""
    parser.formatter_class = argparse.ArgumentDefaultsHelpFormatter
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
            "fraction of payout requests and status queries that get an "
            "injected fault (dropped connection, 5xx, code 5000, garbage, 429, "
            "delay), and of callbacks the receiver refuses at first"
        ),
    )
    parser.add_argument(
        "--seed", type=int, default=2026, help="seed of the faults and the payouts"
    )


def _faults() -> tuple[Fault, ...]:
    """Return the default fault mix, plus requests lost before the gateway."""
    from vexora_async.testing import DEFAULT_FAULTS, Fault

    return (
        *DEFAULT_FAULTS,
        Fault.drop(executed=False),
        Fault.http_error(502, executed=False),
    )


#: What one exchange ended with, as the watcher records it.
_OK, _UNKNOWN, _NOT_TAKEN, _REFUSED, _FAILED = (
    "ok",
    "unknown",
    "not taken",
    "refused",
    "failed",
)


#: How a status query ended, for the summary: the rows add up to the total.
_QUERY_ENDS = {_OK: "found", _REFUSED: "not found"}


class _Watcher:
    """A middleware that records each exchange's end, per tradeNo.

    It runs inside the client's retry layer, so it sees every attempt and
    every reconciliation query; it changes nothing.
    """

    def __init__(self) -> None:
        self.exchanges: defaultdict[str, list[tuple[Operation, str]]] = defaultdict(
            list
        )
        #: Status queries, by how each ended: "found" (the gateway holds
        #: the payout), "not found" (code 8000) or "failed" (an injected
        #: fault; the SDK asks again while its deadline allows).
        self.queries: Counter[str] = Counter()

    async def __call__(
        self, call: Call, call_next: Callable[[Call], Awaitable[object]]
    ) -> object:
        """Pass *call* on; note how the exchange ended."""
        end = _FAILED
        try:
            result = await call_next(call)
        except OutcomeUnknown:
            end = _UNKNOWN
            raise
        except RequestRejected:
            end = _REFUSED
            raise
        except (ConnectError, HTTPStatusError):
            end = _NOT_TAKEN
            raise
        else:
            end = _OK
        finally:
            self.exchanges[call.trade_no or ""].append((call.operation, end))
            if call.operation is Operation.GET_PAYOUT:
                self.queries[_QUERY_ENDS.get(end, "failed")] += 1
        return result

    def how_accepted(self, trade_no: str) -> str:
        """Tell how an accepted payout got there: the summary's sub-rows."""
        exchanges = self.exchanges[trade_no]
        creates = [end for op, end in exchanges if op is Operation.CREATE_PAYOUT]
        if _UNKNOWN in creates:
            # Resent once any query did not find it, even when a later query
            # found the resent one (its answer, too, was lost): "found" is a
            # payout the gateway had made before the SDK sent it again.
            not_found = (Operation.GET_PAYOUT, _REFUSED) in exchanges
            last_op, _ = exchanges[-1]
            found = last_op is Operation.GET_PAYOUT and not not_found
            return "found" if found else "resent"
        if _NOT_TAKEN in creates:
            return "retried"
        return "first"


@attrs.define
class _Tally:
    """What the demo saw, for the summary."""

    kinds: Counter[OutcomeKind] = attrs.field(factory=Counter)
    accepted_how: Counter[str] = attrs.field(factory=Counter)
    unknown_after_batch: list[PayoutOutcome] = attrs.field(factory=list)
    #: Payouts to accounts ending in the sandbox's failing suffix.
    failing_on_purpose: set[str] = attrs.field(factory=set)
    resolved: int = 0
    still_unknown: set[str] = attrs.field(factory=set)
    executed: set[str] = attrs.field(factory=set)
    batch_seconds: float = 0.0
    total_seconds: float = 0.0


def run(args: argparse.Namespace) -> int:
    """Run the demo; return the exit status."""
    try:
        import uvicorn  # noqa: F401 - checked early for a clear message
        from rich.console import Console
    except ImportError:
        print("The demo needs its extra: pip install 'vexora-async[demo]'")
        return EXIT_USAGE
    if args.count < 1 or args.concurrency < 1 or not 0 <= args.fault_rate <= 1:
        print("error: --count and --concurrency must be >= 1, --fault-rate in [0, 1]")
        return EXIT_USAGE
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
    rng = random.Random(seed)
    for i in range(count):
        account = f"09{rng.randrange(10**9):09d}"
        if rng.random() < _FAILING_SHARE:
            account = account[: -len(FAILED_SUFFIX)] + FAILED_SUFFIX
        yield PayoutRequest(
            trade_no=f"DEMO{seed:04d}{i:08d}",
            amount=rng.randrange(10, 5000) * 100,
            bank_code=rng.choice((BankCode.KBZPAY, BankCode.WAVEPAY)),
            bank_number=account,
            name=rng.choice(_NAMES),
            notify_url=notify_url,
        )


async def _main(args: argparse.Namespace, console: Any) -> int:
    from vexora_async.testing import (
        CallbackRecorder,
        FakeGateway,
        SandboxConfig,
        serve_app,
        serve_sandbox,
    )
    from vexora_async.testing._recorder import ACCEPTED

    gateway = FakeGateway(
        SandboxConfig(settle_delay=_SETTLE_DELAY, time_scale=_TIME_SCALE)
    )
    if args.fault_rate:
        gateway.faults.at_rate(
            args.fault_rate,
            _faults(),
            seed=args.seed,
            operations=(Operation.CREATE_PAYOUT, Operation.GET_PAYOUT),
        )
    refuse = random.Random(args.seed + 1)

    def respond(callback: ReceivedCallback) -> tuple[int, bytes]:
        if not callback.verified:
            return 400, b"bad sign"
        if callback.delivery == 1 and refuse.random() < args.fault_rate:
            return 503, b"busy"
        return ACCEPTED

    config = gateway.config
    receiver = CallbackRecorder(config.app_secret, respond=respond)
    watcher = _Watcher()
    tally = _Tally()
    started = time.perf_counter()
    async with (
        serve_app(receiver) as receiver_url,
        serve_sandbox(gateway) as gateway_url,
        VexoraClient(
            config.merchant_no,
            config.app_secret,
            gateway_url,
            retry=_RETRY,
            middleware=[watcher],
        ) as client,
    ):
        # One sentence a line, each well under 80 columns: rich wraps a
        # longer one wherever the terminal ends, a URL cut from its label.
        console.print(
            f"[bold]Sandbox gateway:[/]   {gateway_url}\n"
            f"[bold]Callback receiver:[/] {receiver_url}\n"
            f"Sending {args.count:,} payouts, {args.concurrency} at a time, "
            f"{args.fault_rate:.0%} of requests faulty (seed {args.seed}).\n"
            f"About {_FAILING_SHARE:.0%} go to accounts ending in {FAILED_SUFFIX}: "
            "the sandbox fails those on purpose.",
            highlight=False,
        )
        requests = _requests(args.count, f"{receiver_url}/vexora/notify", args.seed)
        batch_started = time.perf_counter()
        await _send(client, requests, args, console, tally=tally, watcher=watcher)
        tally.batch_seconds = time.perf_counter() - batch_started
        await _resolve(client, tally)
        await _await_callbacks(receiver, tally, console)
        tally.total_seconds = time.perf_counter() - started
    _summary(console, args, gateway, receiver, tally=tally, watcher=watcher)
    if tally.still_unknown or gateway.stats.double_executions:
        return EXIT_REFUSED
    return EXIT_OK


async def _send(
    client: VexoraClient,
    requests: Iterator[PayoutRequest],
    args: argparse.Namespace,
    console: Any,
    *,
    tally: _Tally,
    watcher: _Watcher,
) -> None:
    """Run the batch with a progress bar; tally the outcomes."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

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
            if outcome.request.bank_number.endswith(FAILED_SUFFIX):
                tally.failing_on_purpose.add(outcome.trade_no)
            if outcome.kind is OutcomeKind.ACCEPTED:
                tally.executed.add(outcome.trade_no)
                tally.accepted_how[watcher.how_accepted(outcome.trade_no)] += 1
            elif outcome.kind is OutcomeKind.UNKNOWN:
                tally.unknown_after_batch.append(outcome)


async def _resolve(client: VexoraClient, tally: _Tally) -> None:
    """Settle what the batch left unknown, by the SDK, under the same tradeNo."""
    for outcome in tally.unknown_after_batch:
        settled = await _resolve_one(client, outcome.request)
        if settled is None:
            tally.still_unknown.add(outcome.trade_no)
            continue
        tally.resolved += 1
        if settled:
            tally.executed.add(outcome.trade_no)


async def _resolve_one(client: VexoraClient, request: PayoutRequest) -> bool | None:
    """Return whether the payout was executed, or None if still unknown."""
    try:
        await client.resolve_payout(request)
    except RequestRejected:
        return False  # the gateway refused it: not paid
    except VexoraError:
        return None
    return True


async def _await_callbacks(
    receiver: CallbackRecorder,
    tally: _Tally,
    console: Any,
) -> None:
    deadline = time.monotonic() + _CALLBACK_WAIT
    with console.status("waiting for callbacks..."):
        while not tally.executed <= receiver.verified_trade_nos:
            if time.monotonic() > deadline:
                return
            await asyncio.sleep(0.05)


def _summary(
    console: Any,
    args: argparse.Namespace,
    gateway: FakeGateway,
    receiver: CallbackRecorder,
    *,
    tally: _Tally,
    watcher: _Watcher,
) -> None:
    from rich.table import Table

    finals: dict[str, str | None] = {}
    for callback in receiver.received:
        if callback.verified and callback.trade_no:
            finals[callback.trade_no] = callback.status
    statuses = Counter(finals.values())
    failed = {tn for tn, status in finals.items() if status == TransactionStatus.FAILED}
    failed_on_purpose = len(failed & tally.failing_on_purpose)
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
    kinds, how = tally.kinds, tally.accepted_how
    reconciled = how["found"] + how["resent"]
    table = Table(title="vexora-async demo", show_header=False)
    table.add_column("what")
    table.add_column("count", justify="right")
    rows = [
        ("payouts sent", f"{args.count:,}"),
        ("faults injected", f"{stats.faults.total():,}"),
        ("accepted", f"{kinds[OutcomeKind.ACCEPTED]:,}"),
        ("  at the first attempt", f"{how['first']:,}"),
        ("  never reached, resent by the SDK", f"{how['retried']:,}"),
        ("  unknown → reconciled by the SDK", f"{reconciled:,}"),
        ("    found by a status query", f"{how['found']:,}"),
        ("    not found, resent (same tradeNo)", f"{how['resent']:,}"),
        ("refused by the gateway (8000)", f"{kinds[OutcomeKind.REJECTED]:,}"),
        ("not executed (error after retries)", f"{kinds[OutcomeKind.ERROR]:,}"),
        ("unknown after the batch", f"{len(tally.unknown_after_batch):,}"),
        ("  settled by resolve_payout", f"{tally.resolved:,}"),
        ("  still unknown", f"{len(tally.still_unknown):,}"),
        ("status queries sent by the SDK", f"{watcher.queries.total():,}"),
        ("  found the payout", f"{watcher.queries['found']:,}"),
        ("  did not find it (8000)", f"{watcher.queries['not found']:,}"),
        ("  failed (an injected fault)", f"{watcher.queries['failed']:,}"),
        ("final status, by callback", ""),
        ("  succeeded (0000)", f"{statuses['0000']:,}"),
        (
            f"  failed on purpose (account …{FAILED_SUFFIX})",
            f"{failed_on_purpose:,}",
        ),
        (
            "callbacks verified",
            f"{len(receiver.verified_trade_nos):,} of {len(tally.executed):,}",
        ),
        ("  deliveries retried by the gateway", f"{retried:,}"),
        ("  bad signatures", f"{len(receiver.rejected):,}"),
        ("double executions", f"{len(stats.double_executions):,}"),
        ("money accounted for", "yes" if accounted else "NO"),
        ("batch elapsed", f"{tally.batch_seconds:.2f} s"),
        ("payouts per second", f"{args.count / tally.batch_seconds:,.0f}"),
        ("total elapsed", f"{tally.total_seconds:.2f} s"),
    ]
    if len(failed) > failed_on_purpose:
        # Never expected: the sandbox fails only the accounts above.
        at = rows.index(("  succeeded (0000)", f"{statuses['0000']:,}")) + 2
        rows.insert(at, ("  failed otherwise", f"{len(failed) - failed_on_purpose:,}"))
    for row in rows:
        table.add_row(*row)
    console.print(table)
    # What a first look at the table gets wrong; one sentence a line.
    console.print(
        "Accepted means the gateway took the payout; its callback told how it "
        "ended.\n"
        f"The sandbox fails every payout to an account ending in {FAILED_SUFFIX}, "
        "on purpose.\n"
        "Status queries: one after each unknown outcome, again after a failed "
        "one.\n"
        "A resent payout can be unknown again, so one payout may take several "
        "queries.",
        highlight=False,
    )


command = Command(
    name="demo",
    help=(
        "Start the sandbox gateway and a callback receiver on loopback, send "
        "payouts through the batch API with some injected faults that the SDK "
        "retries and reconciles, wait for the callbacks, verify their "
        "signatures and print a summary. No credentials or network needed; "
        "needs the 'demo' extra (rich, uvicorn)."
    ),
    configure=add_arguments,
    run=run,
)
