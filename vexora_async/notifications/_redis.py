"""A callback receiver's store in Redis, shared by every receiver replica."""

from __future__ import annotations

import datetime as dt
from typing import Any

import redis.asyncio


class RedisNotificationStore:
    """A :class:`NotificationStore` in Redis (the ``redis`` extra).

    Callback deduplication then holds across receiver replicas and
    restarts. Keys are *prefix* + the notification's ``dedup_key``, and
    expire after *ttl* (default 7 days, far past the gateway's last
    retry, about 10 hours after the first delivery). *redis_client* is
    yours to close; :meth:`from_url` makes one that :meth:`aclose` closes.
    """

    def __init__(
        self,
        redis_client: redis.asyncio.Redis,
        *,
        prefix: str = "vexora:notification:",
        ttl: dt.timedelta = dt.timedelta(days=7),
    ) -> None:
        if ttl.total_seconds() < 1:
            msg = "ttl must be at least one second"
            raise ValueError(msg)
        self.redis = redis_client
        self.prefix = prefix
        self._ttl = int(ttl.total_seconds())
        self._owned = False

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = "vexora:notification:",
        ttl: dt.timedelta = dt.timedelta(days=7),
        **options: Any,
    ) -> RedisNotificationStore:
        """Connect to *url*; :meth:`aclose` closes the connection."""
        store = cls(
            redis.asyncio.Redis.from_url(url, **options), prefix=prefix, ttl=ttl
        )
        store._owned = True
        return store

    def __repr__(self) -> str:
        return f"RedisNotificationStore(prefix={self.prefix!r})"

    async def aclose(self) -> None:
        """Close the Redis client if :meth:`from_url` made it."""
        if self._owned:
            await self.redis.aclose()

    async def was_handled(self, key: str) -> bool:
        """Tell whether *key* was marked handled (and has not expired)."""
        return bool(await self.redis.exists(self.prefix + key))

    async def mark_handled(self, key: str) -> None:
        """Remember *key* for the store's TTL."""
        await self.redis.set(self.prefix + key, b"1", ex=self._ttl)
