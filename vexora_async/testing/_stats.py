"""Counters a test asserts on: requests, executions, faults, callbacks."""

from __future__ import annotations

from collections import Counter

import attrs

from ._faults import FaultKind


def _counter() -> Counter[str]:
    return Counter()


@attrs.define
class SandboxStats:
    """What the sandbox saw and did, since it started or was reset.

    Every field is a :class:`collections.Counter`. *requests* is keyed by
    the call's path (``/v1/vexora/disbursements``; an unknown path under
    itself); *executions* counts the payouts carried out per ``tradeNo``
    (money frozen), *deposit_executions* the same for pay-ins;
    *duplicates* counts creates refused as a repeated ``tradeNo``;
    *rejections* counts code-8000 answers by reason (``"sign"``,
    ``"timestamp"``, ``"merchant"``, ``"malformed"``, ``"invalid"``,
    ``"duplicate"``, ``"not_found"``, ``"balance"``); *faults* counts the
    injected faults by :class:`FaultKind`; *callback_attempts* and
    *callbacks_delivered* count callback POSTs and ``OK`` answers per
    ``tradeNo``; *callbacks_exhausted* counts notifications given up after
    the last retry.
    """

    requests: Counter[str] = attrs.field(factory=_counter)
    executions: Counter[str] = attrs.field(factory=_counter)
    deposit_executions: Counter[str] = attrs.field(factory=_counter)
    duplicates: Counter[str] = attrs.field(factory=_counter)
    rejections: Counter[str] = attrs.field(factory=_counter)
    faults: Counter[FaultKind] = attrs.field(factory=Counter)
    callback_attempts: Counter[str] = attrs.field(factory=_counter)
    callbacks_delivered: Counter[str] = attrs.field(factory=_counter)
    callbacks_exhausted: Counter[str] = attrs.field(factory=_counter)

    @property
    def max_executions(self) -> int:
        """The most times any one payout ``tradeNo`` was executed (0 if none)."""
        return max(self.executions.values(), default=0)

    @property
    def double_executions(self) -> list[str]:
        """The payout ``tradeNo`` values executed more than once: must be empty."""
        return sorted(tn for tn, n in self.executions.items() if n > 1)

    @property
    def total_callback_attempts(self) -> int:
        """Callback POSTs attempted, all transactions together."""
        return self.callback_attempts.total()

    @property
    def total_callbacks_delivered(self) -> int:
        """Callbacks answered ``OK``, all transactions together."""
        return self.callbacks_delivered.total()
