"""Merchant tradeNo generation, as the gateway's docs recommend."""

from __future__ import annotations

import itertools
import secrets
import time

from ._validation import check_trade_no
from .exceptions import InvalidRequestError


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

    :param prefix: Put in front of the time and digits. Default ``""``.
        Valid: printable ASCII without whitespace, at most 40 characters
        (a tradeNo has at most 64); else
        :class:`~vexora_async.InvalidRequestError`.
    """
    if not isinstance(prefix, str):
        raise InvalidRequestError(
            "prefix", f"must be a str, not {type(prefix).__name__}"
        )
    stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime())
    # next() on itertools.count is atomic under the GIL.
    trade_no = f"{prefix}{stamp}{next(_counter) % _SPACE:010d}"
    # A prefix that makes an invalid tradeNo fails here, not at the payout.
    check_trade_no("prefix", trade_no)
    return trade_no
