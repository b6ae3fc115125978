"""A ledger in Redis (or Valkey), shared by workers on many machines.

Claim, settle and release are each one Lua script on one key, so each is
atomic on the server and safe on Redis Cluster (a script touches only the
slot of its key). Leases are judged by the server's clock (``TIME``), not
by each worker's. Accepted and rejected entries expire after
*settled_ttl*; ``UNKNOWN`` and ``IN_FLIGHT`` entries never expire: they
still need reconciling.

Each entry is a hash: ``s`` state, ``f`` fingerprint, ``t`` the server's
time of the last change (epoch seconds), ``o`` the owner's fencing token
while in flight, ``p`` set while in flight when the claim took an entry
over, and ``d`` (JSON), ``c``, ``m`` for the outcome. ``x:<token>`` marks
a spent token, whose claim is refused if it runs again (see
:data:`CLAIM_SCRIPT`).
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import redis.asyncio

from vexora_async.exceptions import InvalidRequestError

from ._protocol import (
    Claim,
    EntryState,
    LedgerEntry,
    check_lease,
    check_settled,
    check_token,
)


if TYPE_CHECKING:
    from collections.abc import Sequence

#: How long accepted and rejected entries are kept by default: longer than
#: any realistic retry window. A job queue retries within hours, a
#: dead-letter queue is replayed within days, and month-end (even
#: quarter-end) reconciliation reruns within weeks; a repeat past this is
#: no retry but a new mistake, which a gateway that refuses duplicates, or
#: a status query first, still catches.
DEFAULT_SETTLED_TTL = dt.timedelta(days=90)

#: How long a key holding only tokens released before their claims lives
#: (seconds): longer than any lease, since a late claim comes within one.
_RELEASED_TOKEN_TTL = 7 * 24 * 3600

_NOW = """
local t = redis.call('TIME')
local now = t[1] .. '.' .. string.format('%06d', tonumber(t[2]))
"""

#: Lua: delete the entry's fields but the spent tokens (``x:<token>``).
_CLEAR = """
local function clear(key)
  local fields = redis.call('HKEYS', key)
  for i = 1, #fields do
    if string.sub(fields[i], 1, 2) ~= 'x:' then redis.call('HDEL', key, fields[i]) end
  end
end
"""

#: KEYS[1] the entry; ARGV fingerprint, lease (s), the caller's new token.
#: Returns {granted (0/1), the prior entry as HGETALL pairs}.
#:
#: One token serves one claim, and its owner's settle or release spends it
#: (``x:<token>``). A claim's command can run twice, or late: redis-py sends
#: a command again after a socket timeout, and a command queued while Redis
#: slept (``DEBUG SLEEP``, a pause) runs when it wakes, perhaps after the
#: release its caller sent on another connection. So a claim finding the
#: entry in flight under its own token is granted again (with the same
#: prior), and a claim with a spent token is refused: neither may leave a
#: tradeNo blocked for a lease under a token nobody holds.
CLAIM_SCRIPT = (
    _NOW
    + _CLEAR
    + """
if redis.call('HEXISTS', KEYS[1], 'x:' .. ARGV[3]) == 1 then
  return {0, redis.call('HGETALL', KEYS[1])}
end
local prior = {}
local e = {}
if redis.call('HEXISTS', KEYS[1], 's') == 1 then
  local all = redis.call('HGETALL', KEYS[1])
  for i = 1, #all, 2 do
    if string.sub(all[i], 1, 2) ~= 'x:' then
      e[all[i]] = all[i + 1]
      prior[#prior + 1] = all[i]
      prior[#prior + 1] = all[i + 1]
    end
  end
end
if e['s'] == 'in_flight' and e['o'] == ARGV[3] then
  if e['p'] then return {1, {'s', 'unknown', 'f', e['f'], 't', e['t']}} end
  return {1, {}}
end
if #prior > 0 then
  local free = false
  if e['f'] == ARGV[1] then
    if e['s'] == 'unknown' then
      free = true
    elseif e['s'] == 'in_flight'
        and tonumber(now) - tonumber(e['t']) > tonumber(ARGV[2]) then
      free = true
    end
  end
  if not free then return {0, prior} end
end
clear(KEYS[1])
redis.call('PERSIST', KEYS[1])
redis.call('HSET', KEYS[1], 's', 'in_flight', 'f', ARGV[1], 't', now, 'o', ARGV[3])
if #prior > 0 then redis.call('HSET', KEYS[1], 'p', '1') end
return {1, prior}
"""
)

#: KEYS[1] the entry; ARGV token, TTL (s, 0: none), then field/value pairs,
#: the state first.
#: Returns 1 when recorded (now, or by an earlier run of the same settle), 0
#: when fenced off. Spends the token.
SETTLE_SCRIPT = (
    """
local cur = redis.call('HMGET', KEYS[1], 's', 'o')
if cur[1] ~= 'in_flight' or cur[2] ~= ARGV[1] then
  -- This settle ran already (sent again after its answer was lost)?
  local done = redis.call('HGET', KEYS[1], 'x:' .. ARGV[1])
  if done == 'settled:' .. ARGV[4] then return 1 end
  return 0
end
"""
    + _NOW
    + _CLEAR
    + """
clear(KEYS[1])
redis.call('HSET', KEYS[1], 't', now, 'x:' .. ARGV[1], 'settled:' .. ARGV[4],
  unpack(ARGV, 3))
if tonumber(ARGV[2]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return 1
"""
)

#: KEYS[1] the entry; ARGV token, how long (s) a key holding nothing but
#: spent tokens is kept. Returns 1 when released, 0 when fenced off (the
#: token is spent all the same: its claim, still to run, is refused). A
#: claim that took an entry over leaves it unknown (no TTL), not gone.
RELEASE_SCRIPT = (
    """
local cur = redis.call('HMGET', KEYS[1], 's', 'o', 'p', 'f')
if cur[1] ~= 'in_flight' or cur[2] ~= ARGV[1] then
  -- This release ran already (sent again after its answer was lost)?
  if redis.call('HGET', KEYS[1], 'x:' .. ARGV[1]) == 'released' then return 1 end
  redis.call('HSET', KEYS[1], 'x:' .. ARGV[1], 'fenced')
  if not cur[1] then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
  return 0
end
redis.call('HSET', KEYS[1], 'x:' .. ARGV[1], 'released')
"""
    + _NOW
    + _CLEAR
    + """
clear(KEYS[1])
if not cur[3] then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  return 1
end
redis.call('HSET', KEYS[1], 's', 'unknown', 'f', cur[4], 't', now)
return 1
"""
)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _entry(pairs: Sequence[bytes | str] | dict[Any, Any]) -> LedgerEntry | None:
    if isinstance(pairs, dict):
        fields = {_text(k): _text(v) for k, v in pairs.items()}
    else:
        texts = [_text(p) for p in pairs]
        fields = dict(zip(texts[::2], texts[1::2], strict=True))
    if "s" not in fields:  # nothing, or only spent tokens
        return None
    data = fields.get("d")
    return LedgerEntry(
        state=EntryState(fields["s"]),
        fingerprint=fields["f"],
        updated_at=float(fields["t"]),
        data=None if data is None else json.loads(data, parse_float=Decimal),
        code=fields.get("c"),
        msg=fields.get("m"),
    )


class RedisLedger:
    """A :class:`~vexora_async.Ledger` in Redis or Valkey (the ``redis`` extra).

    For workers on many machines. Each claim, settle and release is one
    Lua script, judged by the server's clock. Unknown and in-flight
    entries never expire: they still need reconciling. Run Redis with
    ``maxmemory-policy noeviction`` (see "Running many workers").

    :param redis_client: A ``redis.asyncio.Redis`` (or ``RedisCluster``)
        you own and close. Required. :meth:`from_url` makes one that this
        ledger owns and closes in :meth:`aclose`.
    :param prefix: Put before the SDK's key (merchant, operation, tradeNo)
        to make each Redis key. Default ``"vexora:ledger:"``. Give each
        application sharing a Redis its own.
    :param settled_ttl: How long accepted and rejected entries are kept.
        Default 90 days, longer than any realistic retry window; ``None``
        keeps them for good. Valid: at least one second (else
        ``ValueError``), or ``None``. A tradeNo repeated after it is sent
        again, and a gateway that refuses duplicates refuses it, and a
        status query finds the original. Cost: Redis memory for every
        payout settled within it.
    """

    def __init__(
        self,
        redis_client: redis.asyncio.Redis,
        *,
        prefix: str = "vexora:ledger:",
        settled_ttl: dt.timedelta | None = DEFAULT_SETTLED_TTL,
    ) -> None:
        ttl: object = settled_ttl  # whatever the caller passed, checked
        if ttl is not None and (
            not isinstance(ttl, dt.timedelta) or ttl.total_seconds() < 1
        ):
            reason = "must be a timedelta of at least one second, or None"
            raise InvalidRequestError("settled_ttl", reason)
        self.redis = redis_client
        self.prefix = prefix
        self._ttl = 0 if settled_ttl is None else int(settled_ttl.total_seconds())
        self._owned = False
        self._claim = redis_client.register_script(CLAIM_SCRIPT)
        self._settle = redis_client.register_script(SETTLE_SCRIPT)
        self._release = redis_client.register_script(RELEASE_SCRIPT)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = "vexora:ledger:",
        settled_ttl: dt.timedelta | None = DEFAULT_SETTLED_TTL,
        **options: Any,
    ) -> RedisLedger:
        """Connect to *url* (``redis://...``); :meth:`aclose` closes it.

        :param url: The Redis URL (``redis://``, ``rediss://`` or
            ``unix://``); never shown in this ledger's ``repr``.
        :param prefix: As the constructor's.
        :param settled_ttl: As the constructor's.
        :param options: Passed to ``redis.asyncio.Redis.from_url``.
        """
        ledger = cls(
            redis.asyncio.Redis.from_url(url, **options),
            prefix=prefix,
            settled_ttl=settled_ttl,
        )
        ledger._owned = True
        return ledger

    def __repr__(self) -> str:
        # Never the client's URL: it may hold a password.
        return f"RedisLedger(prefix={self.prefix!r})"

    async def __aenter__(self) -> RedisLedger:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the Redis client if :meth:`from_url` made it."""
        if self._owned:
            await self.redis.aclose()

    async def claim(
        self, key: str, fingerprint: str, *, lease: float, token: str
    ) -> Claim:
        """See :meth:`~vexora_async.Ledger.claim`; one script, server time."""
        check_lease(lease)
        check_token(token)
        granted, prior = await self._claim(
            keys=[self.prefix + key], args=[fingerprint, repr(float(lease)), token]
        )
        entry = _entry(prior)
        if int(granted):
            return Claim(granted=True, prior=entry, token=token)
        return Claim(granted=False, prior=entry)

    async def settle(self, key: str, entry: LedgerEntry, *, token: str) -> bool:
        """See :meth:`~vexora_async.Ledger.settle`; one script."""
        check_settled(entry)
        fields: list[str] = ["s", entry.state.value, "f", entry.fingerprint]
        if entry.data is not None:
            # Amounts are Decimals; keep their exact text.
            fields += ["d", json.dumps(entry.data, default=str)]
        if entry.code is not None:
            fields += ["c", entry.code]
        if entry.msg is not None:
            fields += ["m", entry.msg]
        ttl = 0 if entry.state is EntryState.UNKNOWN else self._ttl
        applied = await self._settle(
            keys=[self.prefix + key], args=[token, ttl, *fields]
        )
        return bool(int(applied))

    async def release(self, key: str, *, token: str) -> bool:
        """See :meth:`~vexora_async.Ledger.release`; one script."""
        released = await self._release(
            keys=[self.prefix + key], args=[token, _RELEASED_TOKEN_TTL]
        )
        return bool(int(released))

    async def get(self, key: str) -> LedgerEntry | None:
        """See :meth:`~vexora_async.Ledger.get`."""
        pairs = await self.redis.hgetall(self.prefix + key)
        return _entry(pairs)
