"""Tests for the SQLite ledger: durable across restarts, atomic across processes."""

from __future__ import annotations

import asyncio
import multiprocessing
import sqlite3
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from vexora_async import RetryPolicy, SQLiteLedger, VexoraClient
from vexora_async.ledgers import EntryState, LedgerEntry, new_token

from tests.helpers import (
    BASE_URL,
    MERCHANT_NO,
    SECRET,
    envelope,
    make_payout,
    payout_data,
)


if TYPE_CHECKING:
    from pathlib import Path

    import respx


PAYOUT = "/v1/vexora/disbursements"
QUERY = "/v1/vexora/queryPayOutResult"
KEY = f"{MERCHANT_NO}:create_payout:VX20260331004567"


async def test_entries_survive_reopening(tmp_path: Path) -> None:
    """What one ledger settles, a new one on the same file reads back."""
    path = tmp_path / "ledger.sqlite3"
    async with SQLiteLedger(path) as ledger:
        claim = await ledger.claim("k", "f", lease=60, token=new_token())
        assert claim.granted
        assert claim.token is not None
        assert await ledger.settle(
            "k",
            LedgerEntry(
                state=EntryState.ACCEPTED,
                fingerprint="f",
                updated_at=1.0,
                data={"tradeNo": "k", "amount": Decimal("3.0000")},
            ),
            token=claim.token,
        )

    async with SQLiteLedger(path) as reopened:
        entry = await reopened.get("k")

    assert entry is not None
    assert entry.state is EntryState.ACCEPTED
    assert entry.data is not None
    # Amounts come back as their exact text, which the converter reads.
    assert entry.data == {"tradeNo": "k", "amount": "3.0000"}


async def test_release_and_prune(tmp_path: Path) -> None:
    """Released claims vanish; prune drops old settled entries but not unknowns."""
    now = [1000.0]
    async with SQLiteLedger(tmp_path / "l.db", clock=lambda: now[0]) as ledger:
        gone = await ledger.claim("gone", "f", lease=60, token=new_token())
        await ledger.release("gone", token=gone.token or "")
        now[0] = 10.0
        for key, state in (("old", EntryState.ACCEPTED), ("open", EntryState.UNKNOWN)):
            claim = await ledger.claim(key, "f", lease=60, token=new_token())
            await ledger.settle(
                key,
                LedgerEntry(state=state, fingerprint="f", updated_at=10.0),
                token=claim.token or "",
            )
        now[0] = 1000.0

        removed = await ledger.prune(older_than=100)

        assert removed == 1
        assert await ledger.get("gone") is None
        assert await ledger.get("old") is None
        assert await ledger.get("open") is not None


def _claim_many(path: str, keys: list[str], results: Any) -> None:
    async def run() -> list[str]:
        async with SQLiteLedger(path) as ledger:
            return [
                k
                for k in keys
                if (await ledger.claim(k, "f", lease=60, token=new_token())).granted
            ]

    results.put(asyncio.run(run()))


@pytest.mark.subprocess
def test_claims_are_atomic_across_processes(tmp_path: Path) -> None:
    """Two processes racing for the same 200 tradeNos: each is granted once."""
    path = str(tmp_path / "shared.db")
    keys = [f"k{i}" for i in range(200)]
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    workers = [
        ctx.Process(target=_claim_many, args=(path, keys, results)) for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    granted = [results.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)

    assert sorted(granted[0] + granted[1]) == sorted(keys)


async def test_a_ledger_file_from_before_tokens_is_upgraded(tmp_path: Path) -> None:
    """A file made before fencing tokens gains the column and keeps its rows."""
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE vexora_ledger (key TEXT PRIMARY KEY, state TEXT NOT NULL, "
            "fingerprint TEXT NOT NULL, updated_at REAL NOT NULL, data TEXT, "
            "code TEXT, msg TEXT)"
        )
        db.execute(
            "INSERT INTO vexora_ledger VALUES "
            "('k', 'unknown', 'f', 1, NULL, NULL, NULL)"
        )
    db.close()

    async with SQLiteLedger(path) as ledger:
        claim = await ledger.claim("k", "f", lease=60, token=new_token())
        assert claim.token is not None
        # The takeover is remembered in the new column: giving it back
        # leaves the earlier attempt unknown.
        assert await ledger.release("k", token=claim.token)
        after = await ledger.get("k")

    assert claim.granted
    assert claim.prior is not None
    assert claim.prior.state is EntryState.UNKNOWN
    assert after is not None
    assert after.state is EntryState.UNKNOWN


async def test_a_restarted_worker_reconciles_instead_of_paying_again(
    tmp_path: Path, router: respx.MockRouter
) -> None:
    """Crash mid-payout, restart: the same tradeNo is queried, not resent."""
    path = tmp_path / "ledger.db"
    started = asyncio.Event()

    async def hang(request: httpx.Request) -> httpx.Response:
        started.set()
        await asyncio.sleep(3600)
        raise AssertionError  # pragma: no cover - cancelled before

    post = router.post(PAYOUT).mock(side_effect=hang)
    query = router.post(QUERY).mock(
        return_value=httpx.Response(200, json=envelope(payout_data(status="0000")))
    )
    policy = RetryPolicy(backoff_initial=0.001, deadline=5)

    async def worker() -> Any:
        http = httpx.AsyncClient(transport=httpx.MockTransport(router.async_handler))
        async with (
            http,
            SQLiteLedger(path) as ledger,
            VexoraClient(
                MERCHANT_NO,
                SECRET,
                BASE_URL,
                http_client=http,
                ledger=ledger,
                retry=policy,
            ) as client,
        ):
            return await client.create_payout(make_payout())

    first = asyncio.create_task(worker())
    await started.wait()
    first.cancel()  # the process "crashes" mid-flight
    await asyncio.gather(first, return_exceptions=True)

    result = await worker()  # the process restarts with the same request

    assert result.status.is_success
    assert (post.call_count, query.call_count) == (0, 1)
