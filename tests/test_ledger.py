"""The ledger protocol's rules, run on every ledger: one suite, five stores.

Memory, SQLite and fakeredis run everywhere; the Redis and PostgreSQL
cases run on the real servers that ``.ci/services.sh`` starts (skipped
locally without them, failing in CI).
"""

from __future__ import annotations

import asyncio
import math
import time
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest
from vexora_async import Ledger, MemoryLedger, PostgresLedger, RedisLedger, SQLiteLedger
from vexora_async.ledgers import EntryState, LedgerEntry, may_take_over, new_token

from tests.servers import drop_table, postgres_pool, redis_url, unique


if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

#: Short enough to wait out, long enough that a claim is not expired at once.
LEASE = 0.3
STORES = ["memory", "sqlite", "fakeredis", "redis", "postgres"]


def entry(
    state: EntryState, fingerprint: str = "f", updated_at: float = 0.0, **more: Any
) -> LedgerEntry:
    """Return a ledger entry in *state*."""
    return LedgerEntry(
        state=state, fingerprint=fingerprint, updated_at=updated_at, **more
    )


async def open_ledger(kind: str, tmp_path: Path) -> tuple[Any, Any]:
    """Return a fresh ledger of *kind* and a coroutine function closing it."""
    if kind == "memory":
        return MemoryLedger(), None
    if kind == "sqlite":
        sqlite = SQLiteLedger(tmp_path / "ledger.db")
        return sqlite, sqlite.aclose
    if kind == "fakeredis":
        import fakeredis

        return RedisLedger(fakeredis.FakeAsyncRedis(), prefix=unique("t:")), None
    if kind == "redis":
        redis_ledger = RedisLedger.from_url(redis_url(), prefix=unique("vexora-test:"))
        return redis_ledger, redis_ledger.aclose
    pool = await postgres_pool()
    table = unique("ledger_")
    pg = PostgresLedger(pool, table=table)
    await pg.create_table()

    async def close() -> None:
        await drop_table(pool, table)
        await pool.close()

    return pg, close


@pytest.fixture(params=STORES)
async def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    """Each ledger in turn, empty."""
    store, close = await open_ledger(request.param, tmp_path)
    yield store
    if close is not None:
        await close()


async def settle_new(
    ledger: Ledger, key: str, state: EntryState, fingerprint: str = "f", **more: Any
) -> None:
    """Claim *key* and settle it in *state*."""
    claim = await ledger.claim(key, fingerprint, lease=LEASE, token=new_token())
    assert claim.granted
    assert claim.token is not None
    settled = entry(state, fingerprint, **more)
    assert await ledger.settle(key, settled, token=claim.token)


async def test_first_claim_is_granted_with_no_prior(ledger: Ledger) -> None:
    """A new tradeNo is granted, with a token, and becomes in flight."""
    claim = await ledger.claim("k", "f", lease=LEASE, token=new_token())

    assert claim.granted
    assert claim.prior is None
    assert claim.token
    assert claim.token not in repr(claim)  # tokens stay out of logs
    stored = await ledger.get("k")
    assert stored is not None
    assert (stored.state, stored.fingerprint) == (EntryState.IN_FLIGHT, "f")


async def test_second_claim_while_in_flight_is_refused_until_the_lease_ends(
    ledger: Ledger,
) -> None:
    """Only one claimant at a time, until the lease runs out."""
    first = await ledger.claim("k", "f", lease=LEASE, token=new_token())

    refused = await ledger.claim("k", "f", lease=LEASE, token=new_token())
    await asyncio.sleep(LEASE + 0.1)
    taken_over = await ledger.claim("k", "f", lease=LEASE, token=new_token())

    assert not refused.granted
    assert refused.token is None
    assert refused.prior is not None
    assert refused.prior.state is EntryState.IN_FLIGHT
    assert taken_over.granted
    assert taken_over.prior is not None
    assert taken_over.prior.state is EntryState.IN_FLIGHT
    assert taken_over.token not in {None, first.token}


@pytest.mark.parametrize(
    ("state", "fingerprint", "granted"),
    [
        (EntryState.UNKNOWN, "f", True),
        (EntryState.UNKNOWN, "other", False),
        (EntryState.ACCEPTED, "f", False),
        (EntryState.REJECTED, "f", False),
    ],
)
async def test_take_over_of_settled_entries(
    ledger: Ledger, state: EntryState, fingerprint: str, granted: bool
) -> None:
    """Unknown entries are taken over (same payload); settled ones never."""
    await settle_new(ledger, "k", state)

    claim = await ledger.claim("k", fingerprint, lease=LEASE, token=new_token())

    assert claim.granted is granted
    assert claim.prior is not None
    assert claim.prior.state is state


async def test_an_expired_claim_with_another_payload_is_not_taken_over(
    ledger: Ledger,
) -> None:
    """A dead worker's claim is only taken over for the same payload."""
    await ledger.claim("k", "f", lease=LEASE, token=new_token())
    await asyncio.sleep(LEASE + 0.1)

    claim = await ledger.claim("k", "other", lease=LEASE, token=new_token())

    assert not claim.granted


async def test_settle_records_the_outcome(ledger: Ledger) -> None:
    """An accepted entry comes back with its data, amounts as exact text."""
    data = {"tradeNo": "k", "amount": Decimal("3.0000")}
    await settle_new(ledger, "a", EntryState.ACCEPTED, data=data)
    await settle_new(ledger, "r", EntryState.REJECTED, code="8000", msg="no such")

    accepted = await ledger.get("a")
    rejected = await ledger.get("r")

    assert accepted is not None
    assert accepted.state is EntryState.ACCEPTED
    assert accepted.data in ({"tradeNo": "k", "amount": "3.0000"}, data)
    assert rejected is not None
    assert (rejected.state, rejected.code, rejected.msg) == (
        EntryState.REJECTED,
        "8000",
        "no such",
    )
    assert await ledger.get("missing") is None


async def test_release_forgets_the_claim(ledger: Ledger) -> None:
    """A claim whose request was never sent can be released and claimed anew."""
    claim = await ledger.claim("k", "f", lease=LEASE, token=new_token())
    assert claim.token is not None

    assert await ledger.release("k", token=claim.token)

    assert await ledger.get("k") is None
    assert (await ledger.claim("k", "other", lease=LEASE, token=new_token())).granted


async def test_a_claim_carries_the_token_its_caller_chose(ledger: Ledger) -> None:
    """The claimer picks the token before sending: the grant carries it."""
    token = new_token()

    claim = await ledger.claim("k", "f", lease=LEASE, token=token)

    assert claim.granted
    assert claim.token == token
    assert await ledger.settle("k", entry(EntryState.ACCEPTED), token=token)


async def test_releasing_a_takeover_of_an_unknown_leaves_it_unknown(
    ledger: Ledger,
) -> None:
    """Give back a claim over an unknown: the earlier attempt is not forgotten."""
    await settle_new(ledger, "k", EntryState.UNKNOWN)
    token = new_token()
    assert (await ledger.claim("k", "f", lease=LEASE, token=token)).granted

    assert await ledger.release("k", token=token)

    stored = await ledger.get("k")
    assert stored is not None
    assert (stored.state, stored.fingerprint) == (EntryState.UNKNOWN, "f")
    # And it is still claimable: the next call reconciles it.
    again = await ledger.claim("k", "f", lease=LEASE, token=new_token())
    assert again.granted
    assert again.prior is not None
    assert again.prior.state is EntryState.UNKNOWN


async def test_releasing_a_takeover_of_a_stale_claim_leaves_it_unknown(
    ledger: Ledger,
) -> None:
    """A dead worker's claim may have been sent: given back, it is unknown."""
    await ledger.claim("k", "f", lease=LEASE, token=new_token())
    await asyncio.sleep(LEASE + 0.1)
    token = new_token()
    taken = await ledger.claim("k", "f", lease=LEASE, token=token)
    assert taken.granted

    assert await ledger.release("k", token=token)

    stored = await ledger.get("k")
    assert stored is not None
    assert stored.state is EntryState.UNKNOWN


async def test_a_release_with_a_token_that_never_claimed_changes_nothing(
    ledger: Ledger,
) -> None:
    """A claim whose answer was lost may never have committed: harmless."""
    assert not await ledger.release("k", token=new_token())
    assert await ledger.get("k") is None
    owner = new_token()
    await ledger.claim("k", "f", lease=60, token=owner)

    assert not await ledger.release("k", token=new_token())

    stored = await ledger.get("k")
    assert stored is not None
    assert stored.state is EntryState.IN_FLIGHT
    assert await ledger.release("k", token=owner)  # the owner still can


async def test_a_claim_needs_a_token(ledger: Ledger) -> None:
    """An empty token would let anyone settle: refused before anything."""
    with pytest.raises(ValueError, match="token"):
        await ledger.claim("k", "f", lease=LEASE, token="")
    assert await ledger.get("k") is None


async def test_a_stalled_owner_cannot_settle_or_release_after_a_takeover(
    ledger: Ledger,
) -> None:
    """Fencing: the worker that lost its lease is refused; the new owner is not."""
    stalled = await ledger.claim("k", "f", lease=LEASE, token=new_token())
    await asyncio.sleep(LEASE + 0.1)
    owner = await ledger.claim("k", "f", lease=LEASE, token=new_token())
    assert stalled.token is not None
    assert owner.token is not None

    assert not await ledger.settle("k", entry(EntryState.UNKNOWN), token=stalled.token)
    assert not await ledger.release("k", token=stalled.token)
    still = await ledger.get("k")
    assert still is not None
    assert still.state is EntryState.IN_FLIGHT

    accepted = entry(EntryState.ACCEPTED, data={"tradeNo": "k"})
    assert await ledger.settle("k", accepted, token=owner.token)
    # Late, after the new owner settled: still fenced off.
    assert not await ledger.settle("k", entry(EntryState.UNKNOWN), token=stalled.token)
    assert not await ledger.release("k", token=stalled.token)
    final = await ledger.get("k")
    assert final is not None
    assert final.state is EntryState.ACCEPTED


async def test_a_token_settles_once(ledger: Ledger) -> None:
    """After its settle, a token owns nothing; unknown keys are fenced too."""
    claim = await ledger.claim("k", "f", lease=LEASE, token=new_token())
    assert claim.token is not None
    assert await ledger.settle("k", entry(EntryState.UNKNOWN), token=claim.token)

    assert not await ledger.settle("k", entry(EntryState.ACCEPTED), token=claim.token)
    assert not await ledger.release("k", token=claim.token)
    assert not await ledger.settle("nope", entry(EntryState.UNKNOWN), token="x")
    assert not await ledger.release("nope", token="x")
    assert not await ledger.release("k", token="")


async def test_only_outcomes_are_settled_and_leases_are_checked(
    ledger: Ledger,
) -> None:
    """IN_FLIGHT is not an outcome; a lease is a finite number >= 0."""
    claim = await ledger.claim("k", "f", lease=LEASE, token=new_token())
    assert claim.token is not None

    with pytest.raises(ValueError, match="IN_FLIGHT"):
        await ledger.settle("k", entry(EntryState.IN_FLIGHT), token=claim.token)
    for lease in (math.nan, math.inf, -1.0, True):
        with pytest.raises(ValueError, match="lease"):
            await ledger.claim("j", "f", lease=lease, token=new_token())


async def test_concurrent_claims_grant_one(ledger: Ledger) -> None:
    """Twenty claims of one tradeNo at once: exactly one is granted."""
    claims = await asyncio.gather(
        *(ledger.claim("k", "f", lease=60, token=new_token()) for _ in range(20))
    )

    assert sum(c.granted for c in claims) == 1


async def test_the_entry_time_is_the_store_clock(ledger: Ledger) -> None:
    """A claim's time is taken where it is recorded, near the current time."""
    loop_now = time.time()
    await ledger.claim("k", "f", lease=LEASE, token=new_token())

    stored = await ledger.get("k")

    assert stored is not None
    assert abs(stored.updated_at - loop_now) < 5


@pytest.mark.parametrize(
    ("state", "fingerprint", "age", "granted"),
    [
        (EntryState.UNKNOWN, "f", 0, True),
        (EntryState.UNKNOWN, "other", 0, False),
        (EntryState.ACCEPTED, "f", 10**6, False),
        (EntryState.REJECTED, "f", 10**6, False),
        (EntryState.IN_FLIGHT, "f", 5, False),
        (EntryState.IN_FLIGHT, "f", 50, True),
        (EntryState.IN_FLIGHT, "other", 50, False),
    ],
)
def test_take_over_rule(
    state: EntryState, fingerprint: str, age: float, granted: bool
) -> None:
    """Unknown and dead in-flight entries are taken over; settled ones never."""
    assert may_take_over(entry(state, fingerprint), "f", age, lease=10) is granted


async def test_memory_ledger_judges_leases_by_its_clock() -> None:
    """MemoryLedger's lease is its clock's, not the caller's."""
    now = [0.0]
    ledger = MemoryLedger(clock=lambda: now[0])
    await ledger.claim("k", "f", lease=10, token=new_token())

    refused = await ledger.claim("k", "f", lease=10, token=new_token())
    now[0] = 11.0
    taken_over = await ledger.claim("k", "f", lease=10, token=new_token())

    assert not refused.granted
    assert taken_over.granted


async def test_memory_ledger_is_bounded() -> None:
    """A long-running worker's ledger stays at max_entries."""
    ledger = MemoryLedger(max_entries=10)
    for i in range(50):
        await settle_new(ledger, f"k{i}", EntryState.ACCEPTED)

    assert len(ledger) == 10
    assert await ledger.get("k49") is not None
    assert await ledger.get("k0") is None


async def test_in_flight_entries_are_never_evicted() -> None:
    """Eviction skips claims in flight, even the oldest."""
    ledger = MemoryLedger(max_entries=3)
    await ledger.claim("busy", "f", lease=10, token=new_token())
    for i in range(10):
        await settle_new(ledger, f"k{i}", EntryState.ACCEPTED)

    busy = await ledger.get("busy")
    assert busy is not None
    assert busy.state is EntryState.IN_FLIGHT
    assert len(ledger) == 4  # three settled, and the one in flight


async def test_many_claims_in_flight_stay_cheap() -> None:
    """50,000 claims at once (a big gather) neither evict nor slow each other.

    Each claim must not walk the in-flight entries: this would take
    minutes if it did (50,000 x 50,000 steps), and takes well under a
    second when it does not.
    """
    ledger = MemoryLedger(max_entries=10)
    tokens = []
    for i in range(50_000):
        claim = await ledger.claim(f"k{i}", "f", lease=60, token=new_token())
        assert claim.granted
        tokens.append(claim.token or "")
    assert len(ledger) == 50_000
    for i, token in enumerate(tokens):
        await ledger.settle(f"k{i}", entry(EntryState.ACCEPTED), token=token)
    assert len(ledger) == 10
    assert {e.state for e in ledger.entries()} == {EntryState.ACCEPTED}


async def test_settling_moves_an_entry_out_of_flight() -> None:
    """A claimed key settles once: it is no longer in flight afterwards."""
    ledger = MemoryLedger()
    await settle_new(ledger, "k", EntryState.UNKNOWN)

    assert [e.state for e in ledger.entries()] == [EntryState.UNKNOWN]
    again = await ledger.claim("k", "f", lease=10, token=new_token())
    assert again.granted
    assert [e.state for e in ledger.entries()] == [EntryState.IN_FLIGHT]


def test_memory_ledger_satisfies_the_protocol() -> None:
    """MemoryLedger is usable wherever a Ledger is expected."""
    ledger: Ledger = MemoryLedger()
    assert ledger is not None
    with pytest.raises(ValueError, match="max_entries"):
        MemoryLedger(max_entries=0)
