"""A crash campaign: workers in separate processes, SIGKILLed at random.

The sandbox gateway runs with duplicate protection **off**, so only the
shared ledger stands between a redelivered job and a second payment. N
worker processes all try the same tradeNos, each in its own order; the
campaign kills workers with SIGKILL at random moments and restarts them.
Afterwards every tradeNo must have been executed exactly once and be
settled (the campaign resolves what is left unknown).

Run by ``tests/test_crash_campaign.py`` (short) and ``nox -s crash``
(longer)::

    python tests/crash_campaign.py --store redis --kills 40
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs


if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from vexora_async import Ledger, PayoutRequest, VexoraClient

#: The call deadline and claim lease of the workers: the lease at its floor
#: (deadline + 10 s), so a killed worker's claims block for ~10.5 s.
DEADLINE = 0.5
LEASE = DEADLINE + 10.0
MERCHANT = "1000000001"


def trade_no(index: int) -> str:
    """Return the campaign's *index*-th tradeNo."""
    return f"CRASH{index:09d}"


def ledger_key(trade_no: str) -> str:
    """Return the ledger key of a payout's tradeNo."""
    return f"{MERCHANT}:create_payout:{trade_no}"


def payout(index: int) -> PayoutRequest:
    """Return the campaign's *index*-th payout."""
    from vexora_async import BankCode, PayoutRequest

    return PayoutRequest(
        trade_no=trade_no(index),
        amount=100 + index,
        bank_code=BankCode.KBZPAY,
        bank_number=f"0979{index:07d}",
        name="Ko Min Thu",
        notify_url="http://127.0.0.1:9/notify",
    )


@contextlib.asynccontextmanager
async def open_ledger(store: str, address: str, name: str) -> AsyncIterator[Ledger]:
    """Open the *store* ledger at *address*; *name* is its prefix or table.

    ``memory`` is the control: a ledger per worker, shared by none.
    """
    if store == "memory":
        from vexora_async import MemoryLedger

        yield MemoryLedger()
        return
    if store == "redis":
        from vexora_async import RedisLedger

        async with RedisLedger.from_url(address, prefix=name) as ledger:
            yield ledger
        return
    import psycopg_pool
    from vexora_async import PostgresLedger

    async with psycopg_pool.AsyncConnectionPool(
        address, min_size=1, max_size=8, open=False
    ) as pool:
        await pool.wait(timeout=30)
        yield PostgresLedger(pool, table=name)


def make_client(gateway_url: str, ledger: Ledger) -> VexoraClient:
    """Return a worker's client: short deadline, lease at its floor."""
    from vexora_async import RetryPolicy, VexoraClient
    from vexora_async.testing import SANDBOX_APP_SECRET

    return VexoraClient(
        MERCHANT,
        SANDBOX_APP_SECRET,
        gateway_url,
        ledger=ledger,
        retry=RetryPolicy(backoff_initial=0.01, backoff_max=0.05, deadline=DEADLINE),
        claim_lease=LEASE,
        timeout=DEADLINE,
    )


# -- a worker process ----------------------------------------------------------


class Recording:
    """A ledger that logs each takeover of a dead worker's claim.

    ``T <key> <age>``: the claim taken over was *age* seconds old, which
    is how long the dead worker's payout stayed blocked.
    """

    def __init__(self, ledger: Ledger, log: Any) -> None:
        self._ledger = ledger
        self._log = log

    async def claim(
        self, key: str, fingerprint: str, *, lease: float, token: str
    ) -> Any:
        """Claim, and log a takeover of an expired claim."""
        from vexora_async.ledgers import EntryState

        claim = await self._ledger.claim(key, fingerprint, lease=lease, token=token)
        prior = claim.prior
        if claim.granted and prior is not None and prior.state is EntryState.IN_FLIGHT:
            self._log.write(f"T {key} {time.time() - prior.updated_at:.3f}\n")
        return claim

    async def settle(self, key: str, entry: Any, *, token: str) -> bool:
        """Delegate."""
        return await self._ledger.settle(key, entry, token=token)

    async def release(self, key: str, *, token: str) -> bool:
        """Delegate."""
        return await self._ledger.release(key, token=token)

    async def get(self, key: str) -> Any:
        """Delegate."""
        return await self._ledger.get(key)


async def work(args: argparse.Namespace) -> None:
    """Pay every tradeNo, in this worker's order, until each is settled here.

    Writes ``C <tradeNo>`` before and ``D <tradeNo>`` after each call to
    its log, so the campaign knows what a killed worker had in hand.
    """
    from vexora_async import (
        ConnectError,
        HTTPStatusError,
        LedgerError,
        OutcomeUnknown,
    )

    order = list(range(args.trade_nos))
    random.Random(args.seed).shuffle(order)
    semaphore = asyncio.Semaphore(args.concurrency)
    with Path(args.log).open("a", buffering=1) as log:  # noqa: ASYNC230 - a worker's own log
        async with open_ledger(args.store, args.address, args.name) as ledger:
            client = make_client(args.gateway, Recording(ledger, log))
            async with client:

                async def one(index: int) -> bool:
                    async with semaphore:
                        log.write(f"C {trade_no(index)}\n")
                        try:
                            await client.create_payout(payout(index))
                        except (
                            OutcomeUnknown,  # in flight elsewhere, or unknown
                            ConnectError,
                            HTTPStatusError,
                            LedgerError,
                        ):
                            return False
                        finally:
                            log.write(f"D {trade_no(index)}\n")
                        return True

                pending = order
                while pending:
                    done = await asyncio.gather(*(one(i) for i in pending))
                    pending = [i for i, ok in zip(pending, done, strict=True) if not ok]
                    if pending:
                        await asyncio.sleep(0.2)


# -- the campaign --------------------------------------------------------------


@attrs.define
class Figures:
    """What a campaign measured."""

    store: str
    trade_nos: int
    workers: int
    kills: int
    seconds: float
    executions: dict[str, int]
    lost: int
    left_unknown: int
    resolved_by_campaign: int
    #: For each tradeNo a killed worker had in hand: seconds from the kill
    #: until the tradeNo was settled by another worker.
    blocked: list[float]
    #: For each claim of a killed worker that another took over: its age
    #: then, i.e. how long that payout was blocked (at least the lease).
    takeovers: list[float]
    lease: float = LEASE

    @property
    def executed_exactly_once(self) -> int:
        """How many tradeNos were executed exactly once."""
        return sum(1 for n in self.executions.values() if n == 1)

    @property
    def max_executions(self) -> int:
        """The most executions of any one tradeNo."""
        return max(self.executions.values(), default=0)

    def summary(self) -> str:
        """Return the figures as a short report."""
        blocked = sorted(self.blocked)
        takeovers = sorted(self.takeovers)
        return (
            f"{self.store}: {self.trade_nos} tradeNos, {self.workers} worker "
            f"processes, {self.kills} SIGKILLs, {self.seconds:.1f} s\n"
            f"  executed exactly once: {self.executed_exactly_once}/"
            f"{self.trade_nos} (max executions per tradeNo: "
            f"{self.max_executions}); lost: {self.lost}; left unknown: "
            f"{self.left_unknown} (resolved by the campaign: "
            f"{self.resolved_by_campaign})\n"
            f"  in a killed worker's hands: {len(blocked)} tradeNos, settled "
            f"by others within {max(blocked, default=0):.1f} s of the kill\n"
            f"  claims of killed workers taken over: {len(takeovers)}, blocked "
            f"for {min(takeovers, default=0):.1f} to "
            f"{max(takeovers, default=0):.1f} s (claim_lease {self.lease:g} s)"
        )


def _worker_command(
    args: argparse.Namespace, gateway: str, log: Path, seed: int
) -> list[str]:
    return [
        sys.executable,
        __file__,
        "worker",
        "--store",
        args.store,
        "--address",
        args.address,
        "--name",
        args.name,
        "--gateway",
        gateway,
        "--trade-nos",
        str(args.trade_nos),
        "--seed",
        str(seed),
        "--log",
        str(log),
        "--concurrency",
        str(args.concurrency),
    ]


async def _working(procs: list[tuple[Any, Path]]) -> list[int]:
    """Wait until a worker is at work (has started paying); return them all.

    A loaded machine may take seconds to start one. Empty when every
    worker is done: nothing left to interrupt.
    """
    while True:
        running = [i for i, (proc, _) in enumerate(procs) if proc.returncode is None]
        working = [
            i for i in running if procs[i][1].exists() and procs[i][1].stat().st_size
        ]
        if working or not running:
            return working
        await asyncio.sleep(0.05)


def _takeovers(workdir: Path, store: str) -> list[float]:
    ages = []
    for log in workdir.glob(f"worker-{store}-*.log"):
        for line in log.read_text().splitlines():
            mark, *rest = line.split(" ")
            if mark == "T" and len(rest) == 2:  # a kill may cut the last line
                ages.append(float(rest[1]))
    return ages


def _in_hand(log: Path) -> set[str]:
    started: set[str] = set()
    if not log.exists():  # killed before it opened its log
        return started
    for line in log.read_text().splitlines():
        mark, _, tn = line.partition(" ")
        if mark == "C":
            started.add(tn)
        elif mark == "D":
            started.discard(tn)
    return started


async def campaign(args: argparse.Namespace, workdir: Path) -> Figures:  # noqa: C901
    """Run one campaign; return its figures."""
    from vexora_async import Operation
    from vexora_async.ledgers import EntryState
    from vexora_async.testing import (
        FakeGateway,
        Fault,
        SandboxConfig,
        serve_sandbox,
    )

    gateway = FakeGateway(
        SandboxConfig(reject_duplicates=False, settle_delay=None, callbacks=False)
    )
    # Slow answers and lost answers (executed, then no answer): kills land
    # mid-call, and unknown outcomes need reconciling.
    gateway.faults.at_rate(
        args.fault_rate,
        [Fault.delay(0.05), Fault.drop(), Fault.http_error(502)],
        seed=args.seed,
        operations=Operation.CREATE_PAYOUT,
    )
    rng = random.Random(args.seed)
    started = time.monotonic()
    kills: list[tuple[float, Path]] = []
    async with serve_sandbox(gateway) as url:
        if args.store == "postgres":
            async with open_ledger(args.store, args.address, args.name) as ledger:
                await ledger.create_table()  # type: ignore[attr-defined]

        generation = 0

        async def spawn(slot: int) -> tuple[asyncio.subprocess.Process, Path]:
            nonlocal generation
            generation += 1
            log = workdir / f"worker-{args.store}-{slot}-{generation}.log"
            # A worker's own log lines (unknown outcomes it will reconcile)
            # go beside its journal, not into the campaign's output.
            with log.with_suffix(".err").open("wb") as errors:
                proc = await asyncio.create_subprocess_exec(
                    *_worker_command(args, url, log, rng.randrange(2**32)),
                    stderr=errors,
                )
            return proc, log

        procs = [await spawn(slot) for slot in range(args.workers)]
        for _ in range(args.kills):
            await asyncio.sleep(rng.uniform(0.1, args.kill_interval))
            working = await _working(procs)
            if not working:
                break
            slot = rng.choice(working)
            proc, log = procs[slot]
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
            kills.append((time.time(), log))
            procs[slot] = await spawn(slot)
        for proc, _ in procs:
            code = await asyncio.wait_for(proc.wait(), timeout=args.timeout)
            if code != 0:
                msg = f"a worker failed with exit code {code}"
                raise RuntimeError(msg)

        # Settle what is left (none expected: the workers retried until done).
        resolved = 0
        async with open_ledger(args.store, args.address, args.name) as ledger:
            async with make_client(url, ledger) as client:
                for index in range(args.trade_nos):
                    entry = await ledger.get(ledger_key(trade_no(index)))
                    if entry is None or entry.state is not EntryState.ACCEPTED:
                        await client.resolve_payout(payout(index))
                        resolved += 1
            entries = {
                trade_no(i): await ledger.get(ledger_key(trade_no(i)))
                for i in range(args.trade_nos)
            }

    executions = {trade_no(i): 0 for i in range(args.trade_nos)}
    executions.update(gateway.stats.executions)
    blocked = []
    for killed_at, log in kills:
        for tn in _in_hand(log):
            entry = entries[tn]
            if entry is not None:
                blocked.append(max(0.0, entry.updated_at - killed_at))
    return Figures(
        store=args.store,
        trade_nos=args.trade_nos,
        workers=args.workers,
        kills=len(kills),
        seconds=time.monotonic() - started,
        executions=executions,
        lost=sum(1 for n in executions.values() if n == 0),
        left_unknown=sum(
            1
            for e in entries.values()
            if e is None or e.state is not EntryState.ACCEPTED
        ),
        resolved_by_campaign=resolved,
        blocked=blocked,
        takeovers=_takeovers(workdir, args.store),
    )


def parse(argv: list[str]) -> argparse.Namespace:
    """Parse the command line of the campaign or of one worker."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("role", nargs="?", choices=["campaign", "worker"])
    parser.add_argument(
        "--store", choices=["redis", "postgres", "memory"], action="append"
    )
    parser.add_argument("--address", help="the store's URL (default: from env)")
    parser.add_argument("--name", help="key prefix or table (default: random)")
    parser.add_argument("--gateway")
    parser.add_argument("--trade-nos", type=int, default=400)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--kills", type=int, default=12)
    parser.add_argument("--kill-interval", type=float, default=0.6)
    parser.add_argument("--fault-rate", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=1, help="seeds in a row")
    parser.add_argument("--log")
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--json", help="write the figures here as JSON")
    return parser.parse_args(argv)


def address_of(store: str) -> str:
    """Return the test server's address for *store* from the environment."""
    if store == "memory":
        return ""
    variable = {
        "redis": "VEXORA_TEST_REDIS_URL",
        "postgres": "VEXORA_TEST_POSTGRES_DSN",
    }[store]
    address = os.environ.get(variable)
    if not address:
        msg = f"${variable} is not set: run `source .ci/services.sh` first"
        raise SystemExit(msg)
    return address


async def run(args: argparse.Namespace, workdir: Path) -> list[Figures]:
    """Run one campaign per store in *args*."""
    results = []
    for store in args.store or ["redis", "postgres"]:
        one = argparse.Namespace(**vars(args))
        one.store = store
        one.address = args.address or address_of(store)
        one.name = args.name or (
            f"vexora-crash-{uuid.uuid4().hex[:8]}:"
            if store == "redis"
            else f"crash_{uuid.uuid4().hex[:8]}"
        )
        results.append(await campaign(one, workdir))
    return results


def main(argv: list[str]) -> int:
    """Run a worker or the campaign; print the campaign's figures."""
    args = parse(argv)
    if args.role == "worker":
        args.store = args.store[0]
        asyncio.run(work(args))
        return 0
    import tempfile

    results: list[Figures] = []
    first_seed = args.seed
    for round_ in range(args.rounds):
        args.seed = first_seed + round_
        with tempfile.TemporaryDirectory() as tmp:
            results += asyncio.run(run(args, Path(tmp)))
    ok = True
    for figures in results:
        print(figures.summary())  # noqa: T201 - a command-line report
        ok &= figures.max_executions == 1 and not figures.lost
        ok &= not figures.left_unknown
    if args.json:
        Path(args.json).write_text(
            json.dumps([attrs.asdict(f) for f in results], indent=2)
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
