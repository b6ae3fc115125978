"""The PostgreSQL ledger's own rules, on the real server.

Claims inside the caller's transaction, the shipped table, pruning.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from psycopg import sql
from vexora_async import PostgresLedger, VexoraClient
from vexora_async.ledgers import EntryState, LedgerEntry
from vexora_async.ledgers._protocol import new_token

from tests.helpers import (
    BASE_URL,
    MERCHANT_NO,
    SECRET,
    envelope,
    make_payout,
    payout_data,
)
from tests.servers import drop_table, postgres_pool, unique


if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    import psycopg_pool

SHIPPED = (
    Path(__file__).parent.parent / "vexora_async" / "ledgers" / "postgres_ledger.sql"
)


@pytest.fixture
async def pool() -> AsyncIterator[psycopg_pool.AsyncConnectionPool[Any]]:
    """An open pool on the test server."""
    opened = await postgres_pool()
    yield opened
    await opened.close()


@pytest.fixture
async def ledger(
    pool: psycopg_pool.AsyncConnectionPool[Any],
) -> AsyncIterator[PostgresLedger]:
    """A ledger on a table of its own."""
    table = unique("ledger_")
    made = PostgresLedger(pool, table=table)
    await made.create_table()
    yield made
    await drop_table(pool, table)


def gateway(posts: list[httpx.Request]) -> Any:
    """Return a handler that accepts payouts and counts them."""

    async def handle(request: httpx.Request) -> httpx.Response:
        posts.append(request)
        return httpx.Response(200, json=envelope(payout_data()))

    return handle


def client_for(ledger: PostgresLedger, posts: list[httpx.Request]) -> VexoraClient:
    """Return a client over *ledger* whose payouts go to a counting gateway."""
    http = httpx.AsyncClient(transport=httpx.MockTransport(gateway(posts)))
    return VexoraClient(MERCHANT_NO, SECRET, BASE_URL, http_client=http, ledger=ledger)


async def make_payouts_table(pool: psycopg_pool.AsyncConnectionPool[Any]) -> str:
    """Create the merchant's own payouts table; return its name."""
    table = unique("payouts_")
    async with pool.connection() as conn:
        await conn.execute(
            sql.SQL("CREATE TABLE {} (id int PRIMARY KEY, trade_no text)").format(
                sql.Identifier(table)
            )
        )
    return table


async def test_claim_in_the_callers_transaction_commits_with_it(
    pool: psycopg_pool.AsyncConnectionPool[Any], ledger: PostgresLedger
) -> None:
    """The payout row and the claim commit together; the payout is sent once."""
    posts: list[httpx.Request] = []
    payouts = await make_payouts_table(pool)
    request = make_payout()
    client = client_for(ledger, posts)
    async with client.http_client, client:
        async with pool.connection() as conn, conn.transaction():
            await conn.execute(
                sql.SQL("INSERT INTO {} VALUES (1, %s)").format(
                    sql.Identifier(payouts)
                ),
                (request.trade_no,),
            )
            claim = await ledger.claim_payout(conn, client, request)
        assert claim.granted
        key = f"{MERCHANT_NO}:create_payout:{request.trade_no}"
        entry = await ledger.get(key)
        assert entry is not None
        assert entry.state is EntryState.IN_FLIGHT

        result = await client.create_payout(request)  # takes the claim over
        again = await client.create_payout(request)  # answered by the ledger

    assert result == again
    assert len(posts) == 1
    await drop_table(pool, payouts)


class Boom(Exception):
    """The caller's transaction fails after the claim."""


async def claim_and_fail(
    conn: Any, ledger: PostgresLedger, client: VexoraClient
) -> bool:
    """Claim in a transaction that then rolls back; return whether granted."""
    granted = False
    try:
        async with conn.transaction():
            granted = (await ledger.claim_payout(conn, client, make_payout())).granted
            raise Boom  # noqa: TRY301 - the point: fail inside the transaction
    except Boom:
        pass
    return granted


async def test_a_rolled_back_claim_leaves_nothing(
    pool: psycopg_pool.AsyncConnectionPool[Any], ledger: PostgresLedger
) -> None:
    """Roll back the transaction: no claim, and the payout is sent normally."""
    posts: list[httpx.Request] = []
    request = make_payout()
    client = client_for(ledger, posts)
    async with client.http_client, client:
        async with pool.connection() as conn:
            granted = await claim_and_fail(conn, ledger, client)
        assert granted
        key = f"{MERCHANT_NO}:create_payout:{request.trade_no}"
        assert await ledger.get(key) is None

        await client.create_payout(request)

    assert len(posts) == 1


async def test_claim_payout_refuses_a_settled_trade_no_and_another_ledger(
    pool: psycopg_pool.AsyncConnectionPool[Any], ledger: PostgresLedger
) -> None:
    """A tradeNo already paid is not granted; the client must use this ledger."""
    posts: list[httpx.Request] = []
    request = make_payout()
    client = client_for(ledger, posts)
    async with client.http_client, client:
        await client.create_payout(request)
        async with pool.connection() as conn:
            claim = await ledger.claim_payout(conn, client, request)
        stranger = VexoraClient(MERCHANT_NO, SECRET, BASE_URL)
        async with stranger, pool.connection() as conn:
            with pytest.raises(ValueError, match="does not use this ledger"):
                await ledger.claim_payout(conn, stranger, request)

    assert not claim.granted
    assert claim.prior is not None
    assert claim.prior.state is EntryState.ACCEPTED


async def test_the_table_is_the_shipped_sql_and_creating_it_twice_is_fine(
    pool: psycopg_pool.AsyncConnectionPool[Any],
) -> None:
    """create_table runs postgres_ledger.sql (for the default name); idempotent."""
    assert PostgresLedger(pool).schema() == SHIPPED.read_text()
    table = unique("ledger_")
    ledger = PostgresLedger(pool, table=f"public.{table}")
    await ledger.create_table()
    await ledger.create_table()
    assert "PostgresLedger(table='public." in repr(ledger)
    await drop_table(pool, table)


async def test_prune_drops_old_settled_entries_only(ledger: PostgresLedger) -> None:
    """Pruning keeps unknown and in-flight entries, whatever their age."""
    for key, state in (("a", EntryState.ACCEPTED), ("u", EntryState.UNKNOWN)):
        token = new_token()
        await ledger.claim(key, "f", lease=60, token=token)
        entry = LedgerEntry(state=state, fingerprint="f", updated_at=0)
        await ledger.settle(key, entry, token=token)
    await ledger.claim("i", "f", lease=60, token=new_token())

    assert await ledger.prune(dt.timedelta(days=1)) == 0
    assert await ledger.prune(dt.timedelta(0)) == 1
    assert await ledger.get("a") is None
    assert await ledger.get("u") is not None
    assert await ledger.get("i") is not None


async def test_the_server_judges_leases_by_its_own_clock(
    pool: psycopg_pool.AsyncConnectionPool[Any], ledger: PostgresLedger
) -> None:
    """An entry's time is the server's now()."""
    await ledger.claim("k", "f", lease=60, token=new_token())
    async with pool.connection() as conn:
        cursor = await conn.execute("SELECT extract(epoch FROM now())")
        row = await cursor.fetchone()
    stored = await ledger.get("k")

    assert row is not None
    assert stored is not None
    assert 0 <= float(row[0]) - stored.updated_at < 1


async def test_a_claim_sent_again_under_its_token_is_granted_again(
    ledger: PostgresLedger,
) -> None:
    """The same token finds its own claim: granted, with the same prior.

    What a claim sent again finds when its first commit landed but the
    answer was lost; another token is refused (the claim is in flight).
    """
    first = new_token()
    await ledger.claim("k", "f", lease=60, token=first)
    unknown = LedgerEntry(state=EntryState.UNKNOWN, fingerprint="f", updated_at=0)
    assert await ledger.settle("k", unknown, token=first)
    token = new_token()

    taken = await ledger.claim("k", "f", lease=60, token=token)
    again = await ledger.claim("k", "f", lease=60, token=token)
    other = await ledger.claim("k", "f", lease=60, token=new_token())
    fresh = await ledger.claim("new", "f", lease=60, token=first)
    fresh_again = await ledger.claim("new", "f", lease=60, token=first)

    assert (taken.granted, again.granted, other.granted) == (True, True, False)
    assert again.token == token
    assert again.prior is not None
    assert again.prior.state is EntryState.UNKNOWN
    assert taken.prior == again.prior
    assert (fresh.granted, fresh.prior, fresh_again.granted) == (True, None, True)
    assert fresh_again.prior is None


async def test_release_forgets_a_new_claim_and_keeps_a_takeover_unknown(
    ledger: PostgresLedger,
) -> None:
    """Released, a claim on no entry is gone; a takeover is unknown again."""
    first, second, third = new_token(), new_token(), new_token()
    await ledger.claim("k", "f", lease=60, token=first)
    unknown = LedgerEntry(state=EntryState.UNKNOWN, fingerprint="f", updated_at=0)
    await ledger.settle("k", unknown, token=first)
    await ledger.claim("k", "f", lease=60, token=second)
    await ledger.claim("new", "f", lease=60, token=third)

    assert not await ledger.release("k", token=first)  # fenced: not its claim
    assert await ledger.release("k", token=second)
    assert not await ledger.release("k", token=second)  # once
    assert await ledger.release("new", token=third)
    entry = await ledger.get("k")
    assert entry is not None
    assert (entry.state, entry.fingerprint) == (EntryState.UNKNOWN, "f")
    assert await ledger.get("new") is None


async def test_tokens_are_checked(ledger: PostgresLedger) -> None:
    """A claim needs a token: a non-empty string the caller chose."""
    for token in ("", None, 7):
        with pytest.raises(ValueError, match="token"):
            await ledger.claim("k", "f", lease=60, token=token)  # type: ignore[arg-type]
    assert await ledger.get("k") is None
