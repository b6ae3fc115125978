"""The boundary campaign: money where the SDK meets proxies and ledger stores.

Real parts, all on loopback: the sandbox gateway served by uvicorn, a
:class:`~tests.boundary.proxy.FaultyProxy` in front of it, and the
ledger's store: memory (a worker restarted with a fresh ledger), a Redis
of the campaign's own (paused, slept past the client's socket timeout,
flushed, killed and restarted) or the PostgreSQL test server (its table
locked, its backends terminated, its settled entries pruned). Two
workers (clients) pay a few hundred tradeNos, each call under a deadline;
a tradeNo whose call failed is asked again once, as a worker retries a
job, and some settled ones are asked again after the ledger forgot them,
as a redelivered job is.

Then the campaign quiesces and judges by what the gateway executed (the
sandbox's counts, and the proxy's log of the gateway's true answers):

* no tradeNo executed twice;
* no call that said "not executed" (``may_have_executed`` is false) whose
  request the gateway executed;
* every result returned is a payout executed exactly once, for the amount
  asked;
* every call ended by its deadline plus :data:`DEADLINE_MARGIN`;
* no tradeNo blocked by a claim nobody holds: once nothing is in flight,
  asking again never gets "another worker is sending";
* nothing but the SDK's own errors escaped a call.

The gateway and the proxy run in a thread of their own, so that the
clients' event loop, whose calls are timed, carries only the clients.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import gc
import json
import os
import random
import threading
import time
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
from vexora_async import (
    BankCode,
    ConflictingRequestError,
    Ledger,
    OutcomeUnknown,
    PayoutOutcomeUnknown,
    PayoutRequest,
    PayoutResult,
    RequestRejected,
    RetryPolicy,
    VexoraClient,
    VexoraError,
)
from vexora_async._outcomes import Executed, verdict
from vexora_async.testing import (
    SANDBOX_APP_SECRET,
    SANDBOX_MERCHANT_NO,
    FakeGateway,
    SandboxConfig,
    serve_sandbox,
)

from tests.boundary.proxy import FaultyProxy, Forwarded


if TYPE_CHECKING:
    from collections.abc import Mapping
    from decimal import Decimal

#: Each call's deadline, in seconds (``create_payout(..., deadline=...)``).
DEADLINE = 2.0
#: How late past its deadline a call may end: the SDK's documented margin
#: for a call's last steps (closing a connection, a ledger write).
DEADLINE_MARGIN = 1.0
PAYOUTS = 300
#: First calls start spread over this many seconds, while the stores fail.
SPREAD = 5.0
#: Calls a worker makes at once (docs/workers.md: at most max_connections).
WORKER_CONCURRENCY = 64
#: TradeNos asked again after each event that makes a ledger forget.
RE_ASKS = 12
#: TradeNos whose first call starts just after each event.
BURST = 16
SEED = 18
#: Seconds after which calls still running are cut off and judged late:
#: a hung call must not hang the suite (a normal run takes ~15 s).
WORKLOAD_CAP = 60.0
CHECK_CAP = 20.0
#: Where the figures go as JSON, if set (one key per configuration).
REPORT_ENV = "VEXORA_CAMPAIGN_REPORT"
ANOTHER_WORKER = "another worker is sending"

REFUSES = "refuses duplicates"
ACCEPTS = "accepts duplicates"


@attrs.frozen
class Setup:
    """One configuration: how the gateway treats duplicates, which store."""

    mode: str
    store: str

    def __str__(self) -> str:
        return f"{self.store}, gateway {self.mode}"

    @property
    def gateway_config(self) -> SandboxConfig:
        """The sandbox's settings: callbacks off, payouts settle on their own."""
        return SandboxConfig(reject_duplicates=self.mode == REFUSES, callbacks=False)

    @property
    def policy(self) -> RetryPolicy:
        """The policy a user picks for this gateway (see "Gateway assumptions")."""
        return RetryPolicy() if self.mode == REFUSES else RetryPolicy(resubmit=False)


@attrs.frozen
class Chaos:
    """Something done to the ledger's store *at* seconds into the run."""

    at: float
    kind: str
    act: Callable[[Run], Awaitable[object]]
    #: The ledger forgets: some settled tradeNos are asked again after it.
    forgets: bool = False


@attrs.define
class Stage:
    """The store's side of a configuration: a ledger per worker, its chaos."""

    ledgers: list[Ledger]
    events: list[Chaos]


@attrs.define
class Worker:
    """A worker: its ledger and the client it pays through."""

    ledger: Ledger
    client: VexoraClient


@attrs.define
class Record:
    """One call and how it ended."""

    trade_no: str
    #: first; then retry (create) or resolve; re-ask (a redelivered job,
    #: after the ledger forgot); check (resolve, after the run)
    kind: str
    worker: int
    started: float
    ended: float = 0.0
    #: The same moments on the wall clock (epoch ms), which signs requests.
    started_ms: int = attrs.field(factory=lambda: time.time_ns() // 1_000_000)
    ended_ms: int = 0
    result: PayoutResult | None = None
    error: BaseException | None = None

    @property
    def elapsed(self) -> float:
        """Seconds the call took."""
        return self.ended - self.started

    @property
    def says_not_executed(self) -> bool:
        """The error states that the gateway did not execute this create."""
        if self.error is None:
            return False
        stated = getattr(self.error, "may_have_executed", None)
        if isinstance(stated, bool):
            return not stated
        # Until the public property exists: the rule it will publish.
        return verdict(self.error) is Executed.NO

    @property
    def outcome(self) -> str:
        """How the call ended, for the figures."""
        if self.error is not None:
            return type(self.error).__name__
        return "result" if self.result is not None else "unfinished (cut off)"


def make_client(url: str, ledger: Ledger, policy: RetryPolicy) -> VexoraClient:
    """Return a worker's client: the defaults a user has, *policy*, *ledger*."""
    return VexoraClient(
        SANDBOX_MERCHANT_NO,
        SANDBOX_APP_SECRET,
        url,
        retry=policy,
        ledger=ledger,
        instrument=False,
    )


def payout(index: int) -> PayoutRequest:
    """Return the campaign's *index*-th payout; it settles as a success."""
    return PayoutRequest(
        trade_no=f"BOUNDARY{index:06d}",
        amount=1000 + index,
        bank_code=BankCode.KBZPAY,
        bank_number=f"0979{index:06d}1",
        name="Ko Min Thu",
        notify_url="http://127.0.0.1:9/notify",
    )


class Backstage:
    """The gateway and the proxy in front of it, served from their own thread."""

    def __init__(self, gateway: FakeGateway, proxy: FaultyProxy) -> None:
        self.gateway = gateway
        self.proxy = proxy
        self.url = ""
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=asyncio.run, args=(self._serve(),), name="boundary", daemon=True
        )

    def start(self) -> str:
        """Serve both; return the proxy's base URL (what clients are given)."""
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None or not self.url:
            self.stop()
            msg = "the gateway and proxy did not start"
            raise RuntimeError(msg) from self._error
        return self.url

    def stop(self) -> None:
        """Stop serving and wait for the thread."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended
                loop.call_soon_threadsafe(stop.set)
        self._thread.join(30)

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            async with (
                serve_sandbox(self.gateway) as upstream,
                self.proxy.serving(upstream) as url,
            ):
                self.url = url
                self._ready.set()
                await self._stop.wait()
        except BaseException as exc:
            self._error = exc
            raise
        finally:
            self._ready.set()

    async def quiesce(self) -> None:
        """Wait until the proxy has had nothing in hand for a moment."""
        idle = 0
        while idle < 5:  # 5 polls: 50 ms of calm
            idle = idle + 1 if self.proxy.in_flight == 0 else 0
            await asyncio.sleep(0.01)


@attrs.define
class Run:
    """A campaign under way: the workers, every call so far, the chaos done."""

    setup: Setup
    url: str
    workers: list[Worker]
    requests: list[PayoutRequest]
    t0: float
    rng: random.Random
    records: list[Record] = attrs.Factory(list)
    chaos: collections.Counter[str] = attrs.Factory(collections.Counter)
    chaos_errors: list[str] = attrs.Factory(list)
    done: set[int] = attrs.Factory(set)
    tasks: list[asyncio.Task[Any]] = attrs.Factory(list)
    locks: dict[int, asyncio.Lock] = attrs.Factory(dict)
    slots: list[asyncio.Semaphore] = attrs.Factory(list)

    def __attrs_post_init__(self) -> None:
        self.slots = [asyncio.Semaphore(WORKER_CONCURRENCY) for _ in self.workers]

    async def ask(self, index: int, kind: str, worker: int) -> Record:
        """Make one call for a tradeNo, after any other call of it has ended.

        *kind* ``resolve`` and ``check`` call ``resolve_payout``; the
        others ``create_payout``. The call is timed from when the worker
        has a free slot for it.
        """
        request = self.requests[index]
        lock = self.locks.setdefault(index, asyncio.Lock())
        async with lock, self.slots[worker]:
            client = self.workers[worker].client  # the worker of the moment
            record = Record(request.trade_no, kind, worker, _now())
            self.records.append(record)
            try:
                if kind in {"resolve", "check"}:
                    call = client.resolve_payout(request, deadline=DEADLINE)
                else:
                    call = client.create_payout(request, deadline=DEADLINE)
                record.result = await call
            except Exception as exc:  # noqa: BLE001 - judged by the figures
                record.error = exc
            finally:
                record.ended = _now()
                record.ended_ms = time.time_ns() // 1_000_000
            return record

    async def lifecycle(self, index: int, start: float, pause: float) -> None:
        """Pay one tradeNo as a job following "Running many workers" does.

        After "nothing was sent" the job is retried; after an unknown
        outcome the payout is resolved later; a refusal is final.
        """
        await _sleep_until(self.t0 + start)
        first = await self.ask(index, "first", index % 2)
        then = _next_step(first.error)
        if then is not None:
            await asyncio.sleep(pause)
            await self.ask(index, then, index % 2)
        self.done.add(index)

    async def unleash(self, event: Chaos) -> None:
        """Do *event* at its time; after a forgetting one, ask some again."""
        await _sleep_until(self.t0 + event.at)
        try:
            await event.act(self)
        except Exception as exc:  # noqa: BLE001 - a figure, not a crash
            self.chaos_errors.append(f"{event.kind}: {exc!r}")
        self.chaos[event.kind] += 1
        if not event.forgets:
            return
        # Redelivered jobs: settled tradeNos asked again by the other
        # worker, now that the ledger has forgotten them.
        settled = sorted(self.done)
        for index in self.rng.sample(settled, min(RE_ASKS, len(settled))):
            self.done.discard(index)  # not picked twice
            self.spawn(self._re_ask(index, self.rng.uniform(0.1, 1.0)))

    async def _re_ask(self, index: int, delay: float) -> None:
        await asyncio.sleep(delay)
        await self.ask(index, "re-ask", (index + 1) % 2)

    def spawn(self, work: Awaitable[None]) -> None:
        """Run *work* as part of the campaign (awaited before judging)."""
        self.tasks.append(asyncio.ensure_future(work))


def _next_step(error: BaseException | None) -> str | None:
    """What a job does after its call ended with *error* (docs/workers.md)."""
    if error is None or isinstance(error, (RequestRejected, ConflictingRequestError)):
        return None
    if isinstance(error, OutcomeUnknown):
        return "resolve"
    return "retry"


def _now() -> float:
    return time.monotonic()


async def _sleep_until(moment: float) -> None:
    await asyncio.sleep(max(0.0, moment - _now()))


@attrs.define
class Figures:
    """What a campaign measured, and every tradeNo that broke a rule."""

    name: str
    payouts: int
    seconds: float
    calls: dict[str, int]
    outcomes: dict[str, int]
    proxy_faults: dict[str, int]
    store_chaos: dict[str, int]
    chaos_errors: list[str]
    executed: int
    never_executed: int
    max_overrun: float
    check_outcomes: dict[str, int]
    #: The invariants: tradeNo -> what happened. Each must be empty.
    executed_twice: dict[str, int]
    false_not_executed: dict[str, str]
    wrong_results: dict[str, str]
    late: dict[str, str]
    blocked: dict[str, str]
    foreign_errors: dict[str, str]
    #: The campaign's own check: every execution the gateway counted was
    #: seen by the proxy (else "executed by that call" cannot be judged).
    proxy_log_mismatch: dict[str, str]
    #: Connections the SDK left open (ResourceWarning: sockname -> peer).
    unclosed: list[str] = attrs.Factory(list)

    def violations(self) -> list[str]:
        """Return one line per broken rule, naming the tradeNos."""
        rules: dict[str, Mapping[str, object]] = {
            "executed twice at the gateway": self.executed_twice,
            "reported 'not executed' but executed by that call": (
                self.false_not_executed
            ),
            "returned a result that is not the payout executed once": (
                self.wrong_results
            ),
            f"ended later than deadline + {DEADLINE_MARGIN:g} s": self.late,
            "blocked by a claim nobody holds": self.blocked,
            "raised an error not of the SDK": self.foreign_errors,
        }
        broken = [
            f"{len(bad)} tradeNo(s) {rule}: "
            + "; ".join(f"{tn} ({why})" for tn, why in sorted(bad.items())[:20])
            + (" ..." if len(bad) > 20 else "")  # a screenful
            for rule, bad in rules.items()
            if bad
        ]
        # A socket the SDK left for the garbage collector to close: none
        # allowed (it moves no money, but a worker leaking them runs out).
        if self.unclosed:
            broken.append(
                f"{len(self.unclosed)} connection(s) left open: "
                + "; ".join(self.unclosed[:5])
            )
        return broken

    def summary(self) -> str:
        """Return the figures as one screen of text."""

        def counts(mapping: dict[str, int]) -> str:
            return ", ".join(f"{k} {v}" for k, v in sorted(mapping.items())) or "-"

        chaos = counts(self.store_chaos)
        if self.chaos_errors:
            chaos += f" (errors: {self.chaos_errors})"
        calls = sum(self.calls.values())
        overrun = f"{self.max_overrun:+.2f} s"
        again = counts(self.check_outcomes)
        lines = [
            f"boundary campaign [{self.name}]: {self.payouts} payouts, {calls} calls",
            f"  seconds: {self.seconds:.1f}",
            f"  calls: {counts(self.calls)}",
            f"  outcomes: {counts(self.outcomes)}",
            f"  proxy faults: {counts(self.proxy_faults)}",
            f"  store chaos: {chaos}",
            f"  executed: {self.executed} tradeNos; never: {self.never_executed}",
            f"  executed twice: {len(self.executed_twice)}",
            f"  false 'not executed': {len(self.false_not_executed)}",
            f"  wrong results: {len(self.wrong_results)}",
            f"  max overrun of the {DEADLINE:g} s deadline: {overrun}",
            f"  past deadline + {DEADLINE_MARGIN:g} s: {len(self.late)}",
            f"  blocked by a claim nobody holds: {len(self.blocked)}",
            f"  after the run, asking again: {again}",
            f"  errors not of the SDK: {len(self.foreign_errors)}",
            f"  connections left open: {len(self.unclosed)}",
        ]
        return "\n".join(lines)


async def run_campaign(
    setup: Setup,
    stage: Stage,
    seed: int = SEED,
    *,
    faults: bool = True,
    payouts: int = PAYOUTS,
    spread: float = SPREAD,
) -> Figures:
    """Run *setup*'s campaign on *stage*; return its figures.

    ``faults=False`` is the control: the proxy forwards everything. The
    first calls start over *spread* seconds.
    """
    requests = [payout(i) for i in range(payouts)]
    gateway = FakeGateway(setup.gateway_config)
    proxy = FaultyProxy(seed, [r.trade_no for r in requests])
    proxy.faulty = faults
    backstage = Backstage(gateway, proxy)
    # A connection the SDK leaves open shows as a ResourceWarning when it
    # is collected: a figure here, not an error in some later test.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        backstage.start()
        try:
            figures = await _campaign(
                setup, stage, requests, backstage, random.Random(seed), spread
            )
        finally:
            backstage.stop()
        gc.collect()
    figures.unclosed = [
        _unclosed(w.message, w.source) for w in caught if w.category is ResourceWarning
    ]
    return figures


def _unclosed(message: Warning | str, source: Any) -> str:
    extra = getattr(source, "get_extra_info", None)
    if extra is None:
        return str(message)[:120]
    protocol = getattr(source, "get_protocol", lambda: None)()
    owner = f"{type(protocol).__module__}.{type(protocol).__qualname__}"
    return f"{extra('sockname')} -> {extra('peername')} ({owner})"


async def _campaign(  # noqa: PLR0917 - private, one caller
    setup: Setup,
    stage: Stage,
    requests: list[PayoutRequest],
    backstage: Backstage,
    rng: random.Random,
    spread: float,
) -> Figures:
    workers = [
        Worker(ledger, make_client(backstage.url, ledger, setup.policy))
        for ledger in stage.ledgers
    ]
    run = Run(setup, backstage.url, workers, requests, _now() + 0.2, rng)
    starts = [rng.uniform(0, spread) for _ in requests]
    # A burst of first calls just after each event, so that each one lands
    # on calls in flight whatever the timing of the machine.
    unburst = list(range(len(requests)))
    rng.shuffle(unburst)
    for event in stage.events:
        for _ in range(min(BURST, len(unburst))):
            starts[unburst.pop()] = event.at + rng.uniform(0.05, 0.3)
    for index, start in enumerate(starts):
        run.spawn(run.lifecycle(index, start, rng.uniform(0.1, 0.5)))
    for event in stage.events:
        run.spawn(run.unleash(event))
    await _finish(run.tasks, run.t0 + WORKLOAD_CAP)
    for worker in run.workers:
        await worker.client.aclose()
    await backstage.quiesce()

    # Nothing is in flight now: a tradeNo whose last call failed must be
    # free to ask again (resolve_payout, which queries first).
    backstage.proxy.faulty = False
    checks = await _ask_again(run)
    await backstage.quiesce()
    executions = collections.Counter(backstage.gateway.stats.executions)
    return _judge(run, backstage.proxy.forwarded(), executions, checks)


async def _finish(tasks: list[asyncio.Task[Any]], cap: float) -> None:
    """Wait for *tasks* (and those they add) until *cap*; cancel the rest."""
    while pending := [t for t in tasks if not t.done()]:
        if _now() >= cap:
            for task in pending:
                task.cancel()  # its record stays unfinished: judged late
            await asyncio.gather(*pending, return_exceptions=True)
            return
        await asyncio.wait(pending, timeout=cap - _now())
    await asyncio.gather(*tasks)  # re-raise what the campaign itself broke


async def _ask_again(run: Run) -> list[Record]:
    """Ask every tradeNo again with resolve_payout, as a redelivered job would.

    Nothing is in flight: whatever the ledger holds, no answer may be
    "another worker is sending".
    """
    last: dict[str, Record] = {}
    for record in run.records:
        last[record.trade_no] = record
    # Fresh clients, as a worker started after the run has: same ledgers.
    run.workers = [
        Worker(w.ledger, make_client(run.url, w.ledger, run.setup.policy))
        for w in run.workers
    ]
    first = len(run.records)
    tasks = [
        asyncio.ensure_future(run.ask(i, "check", last[r.trade_no].worker))
        for i, r in enumerate(run.requests)
    ]
    try:
        await _finish(tasks, _now() + CHECK_CAP)
    finally:
        for worker in run.workers:
            await worker.client.aclose()
    checks = run.records[first:]
    del run.records[first:]
    return checks


def _judge(
    run: Run,
    forwarded: list[Forwarded],
    executions: collections.Counter[str],
    checks: list[Record],
) -> Figures:
    amounts = {r.trade_no: r.amount for r in run.requests}
    executed_at: dict[str, list[int]] = collections.defaultdict(list)
    for f in forwarded:
        if f.executed:
            executed_at[f.trade_no].append(f.signed_at)
    false_not_executed = {}
    wrong_results = {}
    late = {}
    foreign = {}
    for record in [*run.records, *checks]:
        tn = record.trade_no
        if record.elapsed > DEADLINE + DEADLINE_MARGIN:
            late[tn] = f"{record.kind} call took {record.elapsed:.2f} s"
        error = record.error
        if error is not None and not isinstance(error, VexoraError):
            foreign[tn] = repr(error)[:120]
        if record.says_not_executed:
            # Calls of one tradeNo never overlap: an attempt signed during
            # this call is this call's.
            during = [
                t for t in executed_at[tn] if record.started_ms <= t <= record.ended_ms
            ]
            if during:
                false_not_executed[tn] = (
                    f"{record.kind} call raised {type(error).__name__}: "
                    f"{str(error)[:100]}"
                )
        result = record.result
        if result is not None:
            problem = _wrong(result, tn, amounts[tn], executions[tn])
            if problem:
                wrong_results[tn] = f"{record.kind} call: {problem}"
    blocked = {
        r.trade_no: str(r.error)[:100]
        for r in checks
        if isinstance(r.error, PayoutOutcomeUnknown) and ANOTHER_WORKER in str(r.error)
    }
    overruns = [r.elapsed - DEADLINE for r in [*run.records, *checks]]
    return Figures(
        name=str(run.setup),
        payouts=len(run.requests),
        seconds=_now() - run.t0,
        calls=dict(collections.Counter(r.kind for r in [*run.records, *checks])),
        outcomes=dict(collections.Counter(r.outcome for r in run.records)),
        proxy_faults=dict(_proxy_faults(forwarded)),
        store_chaos=dict(run.chaos),
        chaos_errors=run.chaos_errors,
        executed=sum(1 for r in run.requests if executions[r.trade_no]),
        never_executed=sum(1 for r in run.requests if not executions[r.trade_no]),
        max_overrun=max(overruns, default=0.0),
        check_outcomes=dict(collections.Counter(r.outcome for r in checks)),
        executed_twice={tn: n for tn, n in sorted(executions.items()) if n > 1},
        false_not_executed=false_not_executed,
        wrong_results=wrong_results,
        late=late,
        blocked=blocked,
        foreign_errors=foreign,
        proxy_log_mismatch={
            tn: f"gateway {n}, proxy saw {len(executed_at[tn])}"
            for tn, n in sorted(executions.items())
            if n != len(executed_at[tn])
        },
    )


def _proxy_faults(forwarded: list[Forwarded]) -> collections.Counter[str]:
    return collections.Counter(f.fault for f in forwarded)


def _wrong(result: PayoutResult, trade_no: str, amount: Decimal, times: int) -> str:
    if result.trade_no != trade_no:
        return f"result for tradeNo {result.trade_no}"
    if result.amount != amount:
        return f"result carries amount {result.amount}, asked {amount}"
    if times != 1:
        return f"executed {times} times at the gateway"
    return ""


def write_report(figures: Figures, path: str | None = None) -> None:
    """Add *figures* to the JSON report named by ``$VEXORA_CAMPAIGN_REPORT``."""
    target = path or os.environ.get(REPORT_ENV)
    if not target:
        return
    import fcntl

    file = Path(target)
    # Campaigns may run in parallel (pytest-xdist): one writer at a time.
    with file.with_suffix(".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        report: dict[str, Any] = {}
        if file.exists() and file.stat().st_size:
            report = json.loads(file.read_text())
        report[figures.name] = attrs.asdict(figures)
        report[figures.name]["written_at"] = dt.datetime.now(
            dt.timezone.utc
        ).isoformat()
        file.write_text(json.dumps(report, indent=2, sort_keys=True))
