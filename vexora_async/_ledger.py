"""The ledger: what the SDK knows about each tradeNo it has sent.

The idempotency layer *claims* a tradeNo before it sends anything and
*settles* it after. The protocol is small and async so that a shared,
durable store (Redis, SQLite, your own database) can implement it for many
workers on many machines; :class:`MemoryLedger` is the in-process default.

An implementation must make :meth:`Ledger.claim` atomic: two workers
claiming the same key at once must not both be granted it.
"""

from __future__ import annotations

import enum
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import attrs

from ._validation import check_callable, check_count


#: Far more than any process sends between restarts; about 0.7 KB each.
MAX_LEDGER_ENTRIES = 100_000_000


class EntryState(enum.Enum):
    """Where a tradeNo stands."""

    #: Claimed by a worker that is sending it now.
    IN_FLIGHT = "in_flight"
    #: Sent, but its outcome is unknown: the next call must reconcile.
    UNKNOWN = "unknown"
    #: The gateway accepted it; ``data`` is its answer.
    ACCEPTED = "accepted"
    #: The gateway refused it (code 8000, confirmed by a status query).
    REJECTED = "rejected"


@attrs.frozen(kw_only=True)
class LedgerEntry:
    """One tradeNo's record.

    *fingerprint* identifies the payload (amount, account, name, bank), so a
    reuse of the tradeNo with a different payload is caught. *data* is the
    gateway's ``data`` object for an accepted create; *code* and *msg* the
    refusal of a rejected one. *updated_at* is epoch seconds.
    """

    state: EntryState
    fingerprint: str
    updated_at: float
    data: Mapping[str, Any] | None = None
    code: str | None = None
    msg: str | None = None


@attrs.frozen
class Claim:
    """The answer to :meth:`Ledger.claim`.

    *granted*: the caller now owns the tradeNo (it is ``IN_FLIGHT``) and
    may send. *prior*: the entry that was there before, if any. Granted with
    a prior entry means the prior attempt's outcome was unknown (or its
    worker died): reconcile before sending. Not granted: *prior* says why
    (already accepted or rejected, in flight elsewhere, or a different
    payload).
    """

    granted: bool
    prior: LedgerEntry | None = None


class Ledger(Protocol):
    """Where tradeNo outcomes are recorded; implement it for a shared store."""

    async def claim(self, key: str, fingerprint: str, *, lease: float) -> Claim:
        """Atomically claim *key* for sending.

        Grant it when there is no entry, or when the entry has the same
        *fingerprint* and is ``UNKNOWN`` or an ``IN_FLIGHT`` older than
        *lease* seconds (its worker is presumed dead); the entry becomes
        ``IN_FLIGHT``. Otherwise change nothing and refuse.
        """

    async def settle(self, key: str, entry: LedgerEntry) -> None:
        """Record *key*'s outcome (``UNKNOWN``, ``ACCEPTED`` or ``REJECTED``)."""

    async def release(self, key: str) -> None:
        """Forget a claim whose request provably was never sent."""

    async def get(self, key: str) -> LedgerEntry | None:
        """Return *key*'s entry, if any."""


def may_take_over(
    entry: LedgerEntry, fingerprint: str, now: float, lease: float
) -> bool:
    """Apply the claim rule of :meth:`Ledger.claim` (for implementations)."""
    if entry.fingerprint != fingerprint:
        return False
    if entry.state is EntryState.UNKNOWN:
        return True
    return entry.state is EntryState.IN_FLIGHT and now - entry.updated_at > lease


class MemoryLedger:
    """The in-process ledger: bounded, so a long-running worker stays flat.

    Keeps at most *max_entries* settled entries (about 0.7 KB each, so the
    default is some 14 MB) and forgets the oldest first. Entries in flight
    are kept apart and never forgotten; there are only as many as calls
    running. Forgetting is safe: a forgotten tradeNo sent again is refused
    by the gateway as a duplicate, and the SDK's rejection check then finds
    the original by a status query.
    """

    def __init__(
        self,
        max_entries: int = 20_000,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        check_count("max_entries", max_entries, 1, MAX_LEDGER_ENTRIES)
        check_callable("clock", clock)
        self.max_entries = max_entries
        self._clock = clock
        # Two maps so that eviction never walks past in-flight entries: a
        # 50,000-call gather claims 50,000 keys before the first settles.
        self._in_flight: dict[str, LedgerEntry] = {}
        self._settled: OrderedDict[str, LedgerEntry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._in_flight) + len(self._settled)

    # No await inside: each method runs atomically on the event loop.
    async def claim(self, key: str, fingerprint: str, *, lease: float) -> Claim:
        """See :meth:`Ledger.claim`."""
        now = self._clock()
        prior = self._lookup(key)
        if prior is not None and not may_take_over(prior, fingerprint, now, lease):
            return Claim(granted=False, prior=prior)
        self._settled.pop(key, None)
        self._in_flight[key] = LedgerEntry(
            state=EntryState.IN_FLIGHT, fingerprint=fingerprint, updated_at=now
        )
        return Claim(granted=True, prior=prior)

    async def settle(self, key: str, entry: LedgerEntry) -> None:
        """See :meth:`Ledger.settle`."""
        self._in_flight.pop(key, None)
        if entry.state is EntryState.IN_FLIGHT:
            self._in_flight[key] = entry
            return
        self._settled[key] = entry
        self._settled.move_to_end(key)
        while len(self._settled) > self.max_entries:
            self._settled.popitem(last=False)

    async def release(self, key: str) -> None:
        """See :meth:`Ledger.release`."""
        self._in_flight.pop(key, None)
        self._settled.pop(key, None)

    async def get(self, key: str) -> LedgerEntry | None:
        """See :meth:`Ledger.get`."""
        return self._lookup(key)

    def entries(self) -> list[LedgerEntry]:
        """Return every entry held, in flight first (for tests and metrics)."""
        return [*self._in_flight.values(), *self._settled.values()]

    def _lookup(self, key: str) -> LedgerEntry | None:
        entry = self._in_flight.get(key)
        return entry if entry is not None else self._settled.get(key)
