"""Shared by the withdrawals example's tests: a schema of its own, the service.

The example (docs/examples/withdrawals/) is imported as the package
``withdrawals``, as ``python -m withdrawals`` would from its directory.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from tests.servers import postgres_dsn, unique


if TYPE_CHECKING:
    from collections.abc import AsyncIterator

EXAMPLE = Path(__file__).resolve().parent.parent / "docs" / "examples" / "withdrawals"
if str(EXAMPLE) not in sys.path:
    sys.path.insert(0, str(EXAMPLE))

# After its directory is on the path; the tests import the service from here.
from withdrawals import reconciler, sender  # noqa: E402
from withdrawals.api import create_app  # noqa: E402
from withdrawals.db import migrate  # noqa: E402
from withdrawals.settings import Settings  # noqa: E402
from withdrawals.telemetry import make_client  # noqa: E402


__all__ = [
    "Settings",
    "create_app",
    "make_client",
    "migrate",
    "reconciler",
    "sender",
    "service_database",
    "states",
]


@contextlib.asynccontextmanager
async def service_database() -> AsyncIterator[tuple[str, str]]:
    """Yield ``(url, application_name)`` of a fresh, migrated schema; drop it after.

    The server is shared with other tests: each gets a schema (on the
    connections' search_path) and an application name of its own, so a
    test that kills "its" connections kills no one else's.
    """
    schema = unique("wd_")
    dsn = postgres_dsn()
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    url = make_conninfo(
        dsn, options=f"-c search_path={schema}", application_name=schema
    )
    try:
        async with await psycopg.AsyncConnection.connect(url) as conn:
            await migrate(conn)
        yield url, schema
    finally:
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            await conn.execute(
                sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema))
            )


async def states(url: str) -> dict[str, tuple[str, Any]]:
    """Return each withdrawal's ``(state, failure_code)`` by tradeNo."""
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cursor = await conn.execute(
            "SELECT trade_no, state, failure_code FROM withdrawals"
        )
        return {row[0]: (row[1], row[2]) for row in await cursor.fetchall()}
