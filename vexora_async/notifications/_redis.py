"""A callback receiver's store in Redis, shared by every receiver replica."""

from __future__ import annotations

import datetime as dt
from typing import Any

import redis.asyncio

from vexora_async.exceptions import InvalidRequestError


class RedisNotificationStore:
    """A :class:`NotificationStore` in Redis (the ``redis`` extra).

    Callback deduplication then holds across receiver replicas and
    restarts.

    :param redis_client: A ``redis.asyncio.Redis`` you own and close.
        Required. :meth:`from_url` makes one that :meth:`aclose` closes.
    :param prefix: Put before the notification's ``dedup_key`` to make
        each Redis key. Default ``"vexora:notification:"``.
    :param ttl: How long a handled key is remembered. Default 7 days, far
        past the gateway's last retry (its documented schedule ends about
        10 hours after the first delivery). Valid: at least one second,
        else ``ValueError``. Cost: one small key per notification handled
        within it.
    """

    def __init__(
        self,
        redis_client: redis.asyncio.Redis,
        *,
        prefix: str = "vexora:notification:",
        ttl: dt.timedelta = dt.timedelta(days=7),
    ) -> None:
        given: object = ttl  # whatever the caller passed, checked
        if not isinstance(given, dt.timedelta) or given.total_seconds() < 1:
            reason = "must be a timedelta of at least one second"
            raise InvalidRequestError("ttl", reason)
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
        """Connect to *url*; :meth:`aclose` closes the connection.

        :param url: The Redis URL (``redis://...``).
        :param prefix: As the constructor's.
        :param ttl: As the constructor's.
        :param options: Passed to ``redis.asyncio.Redis.from_url``.
        """
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
