"""Merchant tradeNo generation, as the gateway's docs recommend."""

from __future__ import annotations

import itertools
import secrets
import time


_SPACE = 10**10
# One random start per process, then a counter: unique within the process
# by construction (no birthday collisions under a 10,000-call gather), and
# unlikely to collide across processes.
_counter = itertools.count(secrets.randbelow(_SPACE))


def new_trade_no(prefix: str = "") -> str:
    """Return a fresh tradeNo: ``yyyyMMddHHmmss`` (UTC) plus ten digits.

    Unique among all calls in one process. Store it with your payout
    *before* you send it: after a crash or an unknown outcome you must
    resend or query under the same tradeNo, never a new one. Prefer a
    tradeNo derived from your own payout id when you have one.
    """
    stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime())
    # next() on itertools.count is atomic under the GIL.
    return f"{prefix}{stamp}{next(_counter) % _SPACE:010d}"
