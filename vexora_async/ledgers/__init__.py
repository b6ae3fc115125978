"""Ledgers: where the SDK records each tradeNo it claims, sends and settles.

One protocol (:class:`Ledger`, with fencing tokens that the claimer
chooses: :func:`new_token`) and four stores:

- :class:`MemoryLedger`: this process (the default);
- :class:`SQLiteLedger`: the processes of one machine (standard library);
- :class:`RedisLedger`: many machines (the ``redis`` extra);
- :class:`PostgresLedger`: many machines, and claims inside your own
  PostgreSQL transaction (the ``postgres`` extra).

The Redis and PostgreSQL ledgers import their drivers only when first
used, so ``import vexora_async`` works without either installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vexora_async._extras import lazy_names

from ._memory import MemoryLedger
from ._protocol import (
    Claim,
    EntryState,
    Ledger,
    LedgerEntry,
    may_take_over,
    new_token,
)
from ._sqlite import SQLiteLedger


if TYPE_CHECKING:
    from ._postgres import PostgresLedger
    from ._redis import RedisLedger


__all__ = [
    "Claim",
    "EntryState",
    "Ledger",
    "LedgerEntry",
    "MemoryLedger",
    "PostgresLedger",
    "RedisLedger",
    "SQLiteLedger",
    "may_take_over",
    "new_token",
]

#: The names behind an extra: name -> (module, extra).
LAZY = {
    "PostgresLedger": ("vexora_async.ledgers._postgres", "postgres"),
    "RedisLedger": ("vexora_async.ledgers._redis", "redis"),
}


__getattr__ = lazy_names(__name__, LAZY)
