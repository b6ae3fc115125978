"""The ledger protocol: what the SDK knows about each tradeNo it has sent.

The idempotency layer *claims* a tradeNo before it sends anything and
*settles* (or *releases*) it after. A granted claim carries a fencing
token: ``settle`` and ``release`` apply only while the stored owner is
still that token, so a worker that stalled past its lease (a GC pause, a
starved event loop, a paused VM) cannot overwrite or drop the claim of the
worker that took the tradeNo over meanwhile.

The *caller* chooses the fencing token (:func:`new_token`) and sends it
with the claim. A claimer whose answer was lost (a timeout, a dropped
connection, a cancellation: the claim may or may not have committed) still
holds the token, and gives the claim back with :meth:`Ledger.release`:
fenced, so it changes nothing if the claim never committed; and a claim
that took an entry over reverts to ``UNKNOWN``, never forgetting an
earlier attempt. Without that, a claim committed under a token nobody
holds would block its tradeNo for a whole lease.

An implementation must make :meth:`Ledger.claim`, :meth:`Ledger.settle`
and :meth:`Ledger.release` each atomic, and should judge a lease by one
clock for every worker: the store's own where it has one. How long it
keeps settled entries is its own (see "Running many workers"); it must
keep ``UNKNOWN`` and ``IN_FLIGHT`` ones until they are settled.
"""

from __future__ import annotations

import enum
import secrets
from collections.abc import Mapping
from typing import Any, Protocol

import attrs


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


#: The states :meth:`Ledger.settle` records.
SETTLED_STATES = frozenset(
    {EntryState.UNKNOWN, EntryState.ACCEPTED, EntryState.REJECTED}
)


@attrs.frozen(kw_only=True)
class LedgerEntry:
    """One tradeNo's record.

    *fingerprint* identifies the payload (amount, account, name, bank), so a
    reuse of the tradeNo with a different payload is caught. *data* is the
    gateway's ``data`` object for an accepted create; *code* and *msg* the
    refusal of a rejected one. *updated_at* is epoch seconds (a shared
    store records its own clock's time, not the worker's).
    """

    state: EntryState
    fingerprint: str
    updated_at: float
    data: Mapping[str, Any] | None = None
    code: str | None = None
    msg: str | None = None


@attrs.frozen
class Claim:
    """The answer to :meth:`~vexora_async.Ledger.claim`.

    *granted*: the caller now owns the tradeNo (it is ``IN_FLIGHT``) and
    may send; *token* is its fencing token (the one the caller chose), to
    pass to :meth:`~vexora_async.Ledger.settle` or
    :meth:`~vexora_async.Ledger.release`. *prior*: the entry that was there
    before, if any. Granted with a prior entry means
    the prior attempt's outcome was unknown (or its worker died):
    reconcile before sending. Not granted: *prior* says why (already
    accepted or rejected, in flight elsewhere, or a different payload).
    """

    granted: bool
    prior: LedgerEntry | None = None
    token: str | None = attrs.field(default=None, repr=False)


class Ledger(Protocol):
    """Where tradeNo outcomes are recorded; implement it for a shared store."""

    async def claim(
        self, key: str, fingerprint: str, *, lease: float, token: str
    ) -> Claim:
        """Atomically claim *key* for sending, under the caller's *token*.

        Grant it when there is no entry, or when the entry has the same
        *fingerprint* and is ``UNKNOWN`` or an ``IN_FLIGHT`` older than
        *lease* seconds by the store's clock (its worker is presumed
        dead); the entry becomes ``IN_FLIGHT`` owned by *token* (a fresh
        :func:`~vexora_async.ledgers.new_token`, chosen before the claim is
        sent), which the grant carries. Remember whether the grant took an
        entry over: :meth:`release` needs it. Otherwise change nothing and
        refuse.
        """

    async def settle(self, key: str, entry: LedgerEntry, *, token: str) -> bool:
        """Record *key*'s outcome (``UNKNOWN``, ``ACCEPTED`` or ``REJECTED``).

        Only while *key* is ``IN_FLIGHT`` under *token*; return ``False``
        (and change nothing) when the caller was fenced off: its claim was
        taken over or is gone.
        """

    async def release(self, key: str, *, token: str) -> bool:
        """Give back a claim under which provably nothing was sent.

        Only while *key* is ``IN_FLIGHT`` under *token*; return ``False``
        (and change nothing) when fenced off, as :meth:`settle` does. A
        claim granted on no entry is forgotten; one that took an entry
        over (``UNKNOWN``, or a stale ``IN_FLIGHT``) becomes ``UNKNOWN``
        again, with its fingerprint: the earlier attempt may have been
        sent. So a caller that never read the claim's answer may release
        with the token it chose: whatever the claim did, or if it never
        committed, nothing is forgotten and nothing stays blocked. A store
        where that claim may still run *after* the release (a request queued
        on a connection whose answer timed out) must remember the released
        token and refuse its claim when it comes, as the Redis ledger does.
        """

    async def get(self, key: str) -> LedgerEntry | None:
        """Return *key*'s entry, if any."""


def may_take_over(
    entry: LedgerEntry, fingerprint: str, now: float, lease: float
) -> bool:
    """Apply the claim rule of :meth:`~vexora_async.Ledger.claim`, for ledgers."""
    if entry.fingerprint != fingerprint:
        return False
    if entry.state is EntryState.UNKNOWN:
        return True
    return entry.state is EntryState.IN_FLIGHT and now - entry.updated_at > lease


def new_token() -> str:
    """Return a fresh fencing token (128 random bits, hex)."""
    return secrets.token_hex(16)


def check_token(token: object) -> None:
    """Refuse a fencing token that is not a non-empty string."""
    if type(token) is not str or not token:
        msg = "token must be a non-empty string (see new_token())"
        raise ValueError(msg)


def check_settled(entry: LedgerEntry) -> None:
    """Refuse to settle *entry* in a state that is not an outcome."""
    if entry.state not in SETTLED_STATES:
        msg = f"settle records an outcome, not {entry.state.name}"
        raise ValueError(msg)


_INFINITY = float("inf")


def check_lease(lease: object) -> None:
    """Refuse a lease that is not a finite number of seconds >= 0."""
    if type(lease) is float and 0 <= lease < _INFINITY:
        return  # the client's own, on every call
    if (
        isinstance(lease, bool)
        or not isinstance(lease, (int, float))
        or not 0 <= lease < float("inf")
    ):
        msg = "lease must be a finite number of seconds >= 0"
        raise ValueError(msg)
