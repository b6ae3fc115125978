"""The in-process ledger, bounded so that a long-running worker stays flat."""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import TYPE_CHECKING

from vexora_async._validation import check_callable, check_count

from ._protocol import (
    Claim,
    EntryState,
    LedgerEntry,
    check_lease,
    check_settled,
    check_token,
    may_take_over,
)


if TYPE_CHECKING:
    from collections.abc import Callable


#: Far more than any process sends between restarts; about 0.7 KB each.
MAX_LEDGER_ENTRIES = 100_000_000


class MemoryLedger:
    """The in-process ledger: bounded, so a long-running worker stays flat.

    Keeps settled entries for the life of the process only, and at most
    *max_entries* of them (about 0.7 KB each, so the default is some
    14 MB): past that it forgets the oldest first. Entries in flight are
    kept apart and never forgotten; there are only as many as calls
    running. A restart forgets everything: a forgotten tradeNo sent again
    is refused by a gateway that refuses duplicates, and the SDK's
    rejection check then finds the original by a status query. Share a
    durable ledger between processes (see "Running many workers").

    :param max_entries: The most settled entries kept; past it the oldest
        are forgotten first. Default ``20000``. Valid: an ``int`` from 1 to
        100,000,000, else :class:`~vexora_async.InvalidRequestError`. Cost:
        about 0.7 KB of memory each (some 14 MB for the default).
    :param clock: Returns epoch seconds; judges claim leases. Default
        ``time.time``. Valid: a callable.
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
        # An in-flight entry is kept with its owner's fencing token and
        # whether its claim took an entry over (release makes it unknown).
        self._in_flight: dict[str, tuple[LedgerEntry, str, bool]] = {}
        self._settled: OrderedDict[str, LedgerEntry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._in_flight) + len(self._settled)

    # No await inside: each method runs atomically on the event loop, and
    # is done by the time the idempotency layer would wait for it (3.12+).
    async def claim(
        self, key: str, fingerprint: str, *, lease: float, token: str
    ) -> Claim:
        """See :meth:`~vexora_async.Ledger.claim`."""
        check_lease(lease)
        check_token(token)
        now = self._clock()
        prior = self._lookup(key)
        if prior is not None and not may_take_over(prior, fingerprint, now, lease):
            return Claim(granted=False, prior=prior)
        self._settled.pop(key, None)
        self._in_flight[key] = (
            LedgerEntry(
                state=EntryState.IN_FLIGHT, fingerprint=fingerprint, updated_at=now
            ),
            token,
            prior is not None,
        )
        return Claim(granted=True, prior=prior, token=token)

    async def settle(self, key: str, entry: LedgerEntry, *, token: str) -> bool:
        """See :meth:`~vexora_async.Ledger.settle`."""
        check_settled(entry)
        if not self._owns(key, token):
            return False
        del self._in_flight[key]
        self._keep(key, entry)
        return True

    async def release(self, key: str, *, token: str) -> bool:
        """See :meth:`~vexora_async.Ledger.release`."""
        if not self._owns(key, token):
            return False
        held, _, took_over = self._in_flight.pop(key)
        if took_over:  # an earlier attempt may have been sent: unknown again
            self._keep(
                key,
                LedgerEntry(
                    state=EntryState.UNKNOWN,
                    fingerprint=held.fingerprint,
                    updated_at=self._clock(),
                ),
            )
        return True

    async def get(self, key: str) -> LedgerEntry | None:
        """See :meth:`~vexora_async.Ledger.get`."""
        return self._lookup(key)

    def entries(self) -> list[LedgerEntry]:
        """Return every entry held, in flight first (for tests and metrics)."""
        return [
            *(held[0] for held in self._in_flight.values()),
            *self._settled.values(),
        ]

    def _keep(self, key: str, entry: LedgerEntry) -> None:
        self._settled[key] = entry
        while len(self._settled) > self.max_entries:
            self._settled.popitem(last=False)

    def _owns(self, key: str, token: str) -> bool:
        held = self._in_flight.get(key)
        return held is not None and held[1] == token

    def _lookup(self, key: str) -> LedgerEntry | None:
        held = self._in_flight.get(key)
        return held[0] if held is not None else self._settled.get(key)
