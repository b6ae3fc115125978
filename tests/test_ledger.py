"""Tests for the ledger protocol's rules and the in-memory ledger."""

from __future__ import annotations

import pytest
from vexora_async import EntryState, Ledger, LedgerEntry, MemoryLedger
from vexora_async._ledger import may_take_over


def entry(
    state: EntryState, fingerprint: str = "f", updated_at: float = 0.0
) -> LedgerEntry:
    """Return a ledger entry in *state*."""
    return LedgerEntry(state=state, fingerprint=fingerprint, updated_at=updated_at)


async def test_first_claim_is_granted_with_no_prior() -> None:
    """A new tradeNo is granted and becomes in flight."""
    ledger = MemoryLedger(clock=lambda: 5.0)

    claim = await ledger.claim("k", "f", lease=10)

    assert claim.granted
    assert claim.prior is None
    stored = await ledger.get("k")
    assert stored is not None
    assert (stored.state, stored.updated_at) == (EntryState.IN_FLIGHT, 5.0)


async def test_second_claim_while_in_flight_is_refused() -> None:
    """Only one claimant at a time, until the lease runs out."""
    now = [0.0]
    ledger = MemoryLedger(clock=lambda: now[0])
    await ledger.claim("k", "f", lease=10)

    refused = await ledger.claim("k", "f", lease=10)
    now[0] = 11.0
    taken_over = await ledger.claim("k", "f", lease=10)

    assert not refused.granted
    assert refused.prior is not None
    assert refused.prior.state is EntryState.IN_FLIGHT
    assert taken_over.granted
    assert taken_over.prior is not None


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


async def test_release_forgets_the_claim() -> None:
    """A claim whose request was never sent can be released and claimed anew."""
    ledger = MemoryLedger()
    await ledger.claim("k", "f", lease=10)

    await ledger.release("k")

    assert await ledger.get("k") is None
    assert (await ledger.claim("k", "other", lease=10)).granted


async def test_memory_ledger_is_bounded() -> None:
    """A long-running worker's ledger stays at max_entries."""
    ledger = MemoryLedger(max_entries=10)
    for i in range(50):
        await ledger.settle(f"k{i}", entry(EntryState.ACCEPTED))

    assert len(ledger) == 10
    assert await ledger.get("k49") is not None
    assert await ledger.get("k0") is None


async def test_in_flight_entries_are_never_evicted() -> None:
    """Eviction skips claims in flight, even the oldest."""
    ledger = MemoryLedger(max_entries=3)
    await ledger.claim("busy", "f", lease=10)
    for i in range(10):
        await ledger.settle(f"k{i}", entry(EntryState.ACCEPTED))

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
    for i in range(50_000):
        assert (await ledger.claim(f"k{i}", "f", lease=60)).granted
    assert len(ledger) == 50_000
    for i in range(50_000):
        await ledger.settle(f"k{i}", entry(EntryState.ACCEPTED))
    assert len(ledger) == 10
    assert {e.state for e in ledger.entries()} == {EntryState.ACCEPTED}


async def test_settling_moves_an_entry_out_of_flight() -> None:
    """A claimed key settles once: it is no longer in flight afterwards."""
    ledger = MemoryLedger()
    await ledger.claim("k", "f", lease=10)
    await ledger.settle("k", entry(EntryState.UNKNOWN))

    assert [e.state for e in ledger.entries()] == [EntryState.UNKNOWN]
    again = await ledger.claim("k", "f", lease=10)
    assert again.granted
    assert [e.state for e in ledger.entries()] == [EntryState.IN_FLIGHT]


def test_memory_ledger_satisfies_the_protocol() -> None:
    """MemoryLedger is usable wherever a Ledger is expected."""
    ledger: Ledger = MemoryLedger()
    assert ledger is not None
    with pytest.raises(ValueError, match="max_entries"):
        MemoryLedger(max_entries=0)
