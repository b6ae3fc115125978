"""The Redis ledger's own rules, and the Redis notification store.

TTLs, scripts and ownership, on fakeredis and on the real server.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING, Any

import fakeredis
import pytest
import redis.asyncio
from vexora_async import (
    InvalidRequestError,
    NotificationStore,
    RedisLedger,
    RedisNotificationStore,
)
from vexora_async.ledgers import EntryState, LedgerEntry, _redis, new_token

from tests.servers import redis_url, unique


if TYPE_CHECKING:
    from collections.abc import AsyncIterator


@pytest.fixture(params=["fakeredis", "redis"])
async def client(request: pytest.FixtureRequest) -> AsyncIterator[redis.asyncio.Redis]:
    """A Redis client: fakeredis, then the real server."""
    if request.param == "fakeredis":
        fake = fakeredis.FakeAsyncRedis()
        yield fake
        await fake.aclose()
        return
    real = redis.asyncio.Redis.from_url(redis_url())
    yield real
    await real.aclose()


def settled(state: EntryState) -> LedgerEntry:
    """Return an outcome entry."""
    return LedgerEntry(state=state, fingerprint="f", updated_at=0.0)


async def test_settled_entries_expire_and_open_ones_never(
    client: redis.asyncio.Redis,
) -> None:
    """Accepted and rejected entries get the TTL; unknown and in-flight none."""
    prefix = unique("ttl:")
    ledger = RedisLedger(client, prefix=prefix, settled_ttl=dt.timedelta(days=2))
    for key, state in (
        ("a", EntryState.ACCEPTED),
        ("r", EntryState.REJECTED),
        ("u", EntryState.UNKNOWN),
    ):
        claim = await ledger.claim(key, "f", lease=60, token=new_token())
        assert await ledger.settle(key, settled(state), token=claim.token or "")
    await ledger.claim("i", "f", lease=60, token=new_token())

    ttls = {k: await client.ttl(prefix + k) for k in "arui"}

    assert 2 * 86400 - 5 <= ttls["a"] <= 2 * 86400
    assert 2 * 86400 - 5 <= ttls["r"] <= 2 * 86400
    assert (ttls["u"], ttls["i"]) == (-1, -1)


async def test_taking_over_an_unknown_entry_keeps_it_from_expiring(
    client: redis.asyncio.Redis,
) -> None:
    """A claim never inherits a TTL: an in-flight entry must not vanish."""
    prefix = unique("ttl:")
    ledger = RedisLedger(client, prefix=prefix)
    claim = await ledger.claim("k", "f", lease=60, token=new_token())
    await ledger.settle("k", settled(EntryState.UNKNOWN), token=claim.token or "")

    again = await ledger.claim("k", "f", lease=60, token=new_token())

    assert again.granted
    assert await client.ttl(prefix + "k") == -1


async def test_a_released_takeover_is_unknown_and_never_expires(
    client: redis.asyncio.Redis,
) -> None:
    """Giving back a claim over an unknown restores it without a TTL."""
    prefix = unique("ttl:")
    ledger = RedisLedger(client, prefix=prefix, settled_ttl=dt.timedelta(days=2))
    claim = await ledger.claim("k", "f", lease=60, token=new_token())
    await ledger.settle("k", settled(EntryState.UNKNOWN), token=claim.token or "")
    token = new_token()
    await ledger.claim("k", "f", lease=60, token=token)

    assert await ledger.release("k", token=token)

    entry = await ledger.get("k")
    assert entry is not None
    assert entry.state is EntryState.UNKNOWN
    assert await client.ttl(prefix + "k") == -1
    assert not await client.hexists(prefix + "k", "o")  # no owner left


async def test_a_claim_that_arrives_after_its_release_is_refused(
    client: redis.asyncio.Redis,
) -> None:
    """A claim run after its own release (its answer was lost) blocks nothing.

    After a ``DEBUG SLEEP`` Redis may run the release, sent on a fresh
    connection, before the claim still waiting on the old one.
    """
    prefix = unique("late:")
    ledger = RedisLedger(client, prefix=prefix)
    lost = new_token()

    assert not await ledger.release("k", token=lost)  # nothing to release yet
    assert await ledger.get("k") is None
    assert 0 < await client.ttl(prefix + "k") <= 7 * 24 * 3600
    late = await ledger.claim("k", "f", lease=60, token=lost)

    assert not late.granted
    assert late.prior is None
    assert await ledger.get("k") is None
    fresh = await ledger.claim("k", "f", lease=60, token=new_token())
    assert fresh.granted
    assert fresh.prior is None
    assert await client.ttl(prefix + "k") == -1  # an open claim never expires


async def test_a_late_claim_on_an_unknown_entry_leaves_it_unknown(
    client: redis.asyncio.Redis,
) -> None:
    """Released first, a claim over an unknown entry no longer takes it over."""
    prefix = unique("late:")
    ledger = RedisLedger(client, prefix=prefix)
    claim = await ledger.claim("k", "f", lease=60, token=new_token())
    await ledger.settle("k", settled(EntryState.UNKNOWN), token=claim.token or "")
    lost = new_token()

    await ledger.release("k", token=lost)
    late = await ledger.claim("k", "f", lease=60, token=lost)

    assert not late.granted
    entry = await ledger.get("k")
    assert entry is not None
    assert entry.state is EntryState.UNKNOWN
    assert (await ledger.claim("k", "f", lease=60, token=new_token())).granted


async def test_a_claim_run_twice_is_granted_twice_with_the_same_prior(
    client: redis.asyncio.Redis,
) -> None:
    """redis-py sends a timed-out command again: the second run is no refusal."""
    ledger = RedisLedger(client, prefix=unique("twice:"))
    fresh = new_token()
    assert (await ledger.claim("a", "f", lease=60, token=fresh)).granted
    again = await ledger.claim("a", "f", lease=60, token=fresh)
    assert again.granted
    assert again.prior is None

    first = await ledger.claim("b", "f", lease=60, token=new_token())
    await ledger.settle("b", settled(EntryState.UNKNOWN), token=first.token or "")
    takeover = new_token()
    assert (await ledger.claim("b", "f", lease=60, token=takeover)).granted
    again = await ledger.claim("b", "f", lease=60, token=takeover)
    assert again.granted
    assert again.prior is not None
    assert again.prior.state is EntryState.UNKNOWN
    assert await ledger.release("b", token=takeover)  # the takeover is undone
    entry = await ledger.get("b")
    assert entry is not None
    assert entry.state is EntryState.UNKNOWN


async def test_a_settled_token_never_claims_again(client: redis.asyncio.Redis) -> None:
    """A claim's command run late, after its owner settled, takes nothing over."""
    ledger = RedisLedger(client, prefix=unique("spent:"))
    token = new_token()
    await ledger.claim("k", "f", lease=60, token=token)
    assert await ledger.settle("k", settled(EntryState.UNKNOWN), token=token)

    late = await ledger.claim("k", "f", lease=60, token=token)

    assert not late.granted
    entry = await ledger.get("k")
    assert entry is not None
    assert entry.state is EntryState.UNKNOWN
    assert (await ledger.claim("k", "f", lease=60, token=new_token())).granted


def test_settled_entries_are_kept_longer_than_any_retry_window() -> None:
    """The default TTL: 90 days, past month- and quarter-end replays."""
    assert dt.timedelta(days=90) == _redis.DEFAULT_SETTLED_TTL
    ledger = RedisLedger(fakeredis.FakeAsyncRedis())
    assert ledger._ttl == 90 * 86400


async def test_no_ttl_keeps_settled_entries(client: redis.asyncio.Redis) -> None:
    """settled_ttl=None: nothing expires."""
    prefix = unique("ttl:")
    ledger = RedisLedger(client, prefix=prefix, settled_ttl=None)
    claim = await ledger.claim("k", "f", lease=60, token=new_token())
    await ledger.settle("k", settled(EntryState.ACCEPTED), token=claim.token or "")

    assert await client.ttl(prefix + "k") == -1


async def test_the_ledger_reads_a_client_decoding_responses() -> None:
    """A user's client with decode_responses=True works the same."""
    ledger = RedisLedger(fakeredis.FakeAsyncRedis(decode_responses=True))
    claim = await ledger.claim("k", "f", lease=60, token=new_token())
    data = {"tradeNo": "k"}
    entry = LedgerEntry(
        state=EntryState.ACCEPTED, fingerprint="f", updated_at=0, data=data
    )
    assert await ledger.settle("k", entry, token=claim.token or "")

    stored = await ledger.get("k")

    assert stored is not None
    assert stored.data == data
    assert not (await ledger.claim("k", "f", lease=60, token=new_token())).granted


def test_each_script_touches_only_its_one_key() -> None:
    """Cluster-safe: every key a script names is KEYS[1]."""
    for script in (_redis.CLAIM_SCRIPT, _redis.SETTLE_SCRIPT, _redis.RELEASE_SCRIPT):
        assert set(re.findall(r"KEYS\[(\d+)\]", script)) == {"1"}


async def test_from_url_owns_its_client_and_hides_the_url() -> None:
    """from_url's client is closed by aclose; repr never shows a password."""
    ledger = RedisLedger.from_url(
        "redis://:hunter2@127.0.0.1:1/0", prefix="p:", settled_ttl=None
    )
    assert "hunter2" not in repr(ledger)
    assert ledger._owned
    await ledger.aclose()
    user_owned = RedisLedger(fakeredis.FakeAsyncRedis())
    assert not user_owned._owned
    await user_owned.aclose()  # leaves the user's client alone
    for bad in (dt.timedelta(0), 3600, "90 days"):
        with pytest.raises(InvalidRequestError, match="settled_ttl") as caught:
            RedisLedger(fakeredis.FakeAsyncRedis(), settled_ttl=bad)  # type: ignore[arg-type]
        assert caught.value.field == "settled_ttl"


async def test_the_real_server_judges_leases_by_its_own_clock() -> None:
    """An entry's time is the server's TIME, whatever the worker's clock says."""
    client = redis.asyncio.Redis.from_url(redis_url())
    async with client:
        ledger = RedisLedger(client, prefix=unique("clock:"))
        await ledger.claim("k", "f", lease=60, token=new_token())
        seconds, micros = await client.time()
        stored = await ledger.get("k")

    assert stored is not None
    assert 0 <= seconds + micros / 1e6 - stored.updated_at < 1


# -- the notification store ----------------------------------------------------


async def test_notification_store_remembers_keys_for_its_ttl(
    client: redis.asyncio.Redis,
) -> None:
    """Handled keys are shared through Redis and expire after the TTL."""
    prefix = unique("n:")
    store = RedisNotificationStore(client, prefix=prefix, ttl=dt.timedelta(hours=1))
    other_replica = RedisNotificationStore(client, prefix=prefix)
    assert isinstance(store, NotificationStore)

    assert not await store.was_handled("payout:T1:0000")
    await store.mark_handled("payout:T1:0000")

    assert await other_replica.was_handled("payout:T1:0000")
    assert 3590 <= await client.ttl(prefix + "payout:T1:0000") <= 3600
    assert not await other_replica.was_handled("payout:T2:0000")


async def test_notification_store_from_url_and_checks() -> None:
    """from_url owns its client; repr hides the URL; a TTL is at least 1 s."""
    store = RedisNotificationStore.from_url("redis://:hunter2@127.0.0.1:1/0")
    assert "hunter2" not in repr(store)
    await store.aclose()
    await RedisNotificationStore(fakeredis.FakeAsyncRedis()).aclose()
    for bad in (dt.timedelta(0), 3600, None):
        with pytest.raises(InvalidRequestError, match="ttl") as caught:
            RedisNotificationStore(fakeredis.FakeAsyncRedis(), ttl=bad)  # type: ignore[arg-type]
        assert caught.value.field == "ttl"


async def test_receiver_replicas_share_deduplication() -> None:
    """Two receivers over one Redis: the second delivery reads as handled."""
    from vexora_async import NotificationReceiver

    from tests.helpers import CALLBACK_BODY, SECRET

    server = fakeredis.FakeServer()
    seen: list[bool] = []

    async def handler(notification: Any, *, already_handled: bool) -> None:
        seen.append(already_handled)

    replicas = [
        NotificationReceiver(
            SECRET,
            handler,
            store=RedisNotificationStore(fakeredis.FakeAsyncRedis(server=server)),
        )
        for _ in range(2)
    ]
    for replica in replicas:
        response = await replica.respond(CALLBACK_BODY)
        assert response.acknowledged

    assert seen == [False, True]
