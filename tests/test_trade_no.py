"""Tests for new_trade_no: the docs' format, unique in one process."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime, timedelta, timezone

from vexora_async import new_trade_no
from vexora_async._validation import check_trade_no


FORMAT = re.compile(r"(\d{14})(\d{10})")


def test_format_is_utc_timestamp_plus_ten_digits() -> None:
    """A tradeNo is yyyyMMddHHmmss (UTC, now) followed by ten digits."""
    before = datetime.now(timezone.utc).replace(microsecond=0)
    trade_no = new_trade_no()
    after = datetime.now(timezone.utc)
    match = FORMAT.fullmatch(trade_no)
    assert match, trade_no
    stamp = datetime.strptime(match.group(1), "%Y%m%d%H%M%S").replace(
        tzinfo=timezone.utc
    )
    assert before - timedelta(seconds=1) <= stamp <= after


def test_prefix_is_prepended() -> None:
    """A prefix goes in front of the timestamp, unchanged."""
    trade_no = new_trade_no("PO-")
    assert trade_no.startswith("PO-")
    assert FORMAT.fullmatch(trade_no.removeprefix("PO-"))


def test_trade_no_passes_our_own_validation() -> None:
    """What the helper makes is always a valid tradeNo for a request."""
    trade_no = new_trade_no("VX")
    assert check_trade_no("trade_no", trade_no) == trade_no
    assert len(trade_no) == 26


def test_100_000_calls_are_unique() -> None:
    """100,000 tradeNos made in the same second or few are all distinct."""
    made = [new_trade_no() for _ in range(100_000)]
    assert len(set(made)) == len(made)


async def test_unique_under_asyncio_gather() -> None:
    """Concurrent tasks never receive the same tradeNo."""

    async def make() -> str:
        await asyncio.sleep(0)
        return new_trade_no()

    made = await asyncio.gather(*(make() for _ in range(10_000)))
    assert len(set(made)) == len(made)
