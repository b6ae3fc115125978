"""Where the real Redis and PostgreSQL servers of the integration tests are.

``.ci/services.sh`` starts both on loopback and exports their addresses.
Locally a test that needs one skips, saying how to start it; in CI (``CI``
set) a missing server fails the test instead: CI must never pass by
skipping the servers.
"""

from __future__ import annotations

import os
import uuid
from typing import TYPE_CHECKING, Any

import pytest


if TYPE_CHECKING:
    import psycopg_pool

REDIS_ENV = "VEXORA_TEST_REDIS_URL"
POSTGRES_ENV = "VEXORA_TEST_POSTGRES_DSN"
HOW = "start one with `source .ci/services.sh` (Debian: redis-server, postgresql)"


def _address(variable: str, what: str) -> str:
    value = os.environ.get(variable)
    if value:
        return value
    reason = f"needs a real {what} server in ${variable}: {HOW}"
    if os.environ.get("CI"):
        pytest.fail(f"CI: {reason}")
    pytest.skip(reason)


def redis_url() -> str:
    """Return the test Redis server's URL, or skip (fail in CI)."""
    return _address(REDIS_ENV, "Redis")


def postgres_dsn() -> str:
    """Return the test PostgreSQL server's DSN, or skip (fail in CI)."""
    return _address(POSTGRES_ENV, "PostgreSQL")


def unique(prefix: str) -> str:
    """Return *prefix* with a random suffix, so tests share no keys or tables."""
    return f"{prefix}{uuid.uuid4().hex[:12]}"


async def postgres_pool(max_size: int = 4) -> psycopg_pool.AsyncConnectionPool[Any]:
    """Return an open pool on the test server."""
    import psycopg_pool

    pool: psycopg_pool.AsyncConnectionPool[Any] = psycopg_pool.AsyncConnectionPool(
        postgres_dsn(), min_size=1, max_size=max_size, open=False
    )
    await pool.open(wait=True, timeout=10)
    return pool


async def drop_table(pool: psycopg_pool.AsyncConnectionPool[Any], table: str) -> None:
    """Drop a test's table."""
    from psycopg import sql

    async with pool.connection() as conn:
        await conn.execute(
            sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table))
        )
