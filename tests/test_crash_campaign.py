"""The crash campaign, short: 4 worker processes, 400 tradeNos, SIGKILLs.

Real Redis and real PostgreSQL (``.ci/services.sh``); the sandbox gateway
with duplicate protection off. ``nox -s crash`` runs a longer campaign.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests import crash_campaign
from tests.servers import postgres_dsn, redis_url


if TYPE_CHECKING:
    from pathlib import Path


# Worker processes killed and restarted, their leases judged by the clock:
# run alone (noxfile: campaigns).
pytestmark = [pytest.mark.campaign, pytest.mark.subprocess]


@pytest.mark.parametrize("store", ["redis", "postgres"])
async def test_every_trade_no_is_executed_exactly_once(
    store: str, tmp_path: Path
) -> None:
    """Kill and restart workers at random: each tradeNo paid once, none lost."""
    address = redis_url() if store == "redis" else postgres_dsn()
    args = crash_campaign.parse(
        ["--store", store, "--address", address, "--kills", "10", "--seed", "11"]
    )

    [figures] = await crash_campaign.run(args, tmp_path)

    print(figures.summary())  # noqa: T201 - the figures, with -s
    # Kills land only on workers at work: all ten, unless every worker
    # finished first.
    assert figures.kills >= 5
    assert figures.executed_exactly_once == 400
    assert figures.max_executions == 1
    assert (figures.lost, figures.left_unknown) == (0, 0)
    assert figures.blocked  # the kills did interrupt payouts
    # A killed worker's claim blocks its tradeNo for the lease, never less;
    # then the next worker to come by takes it over (how soon depends on
    # the machine's load: a figure of the report, not a timed assertion).
    assert figures.takeovers
    assert min(figures.takeovers) >= figures.lease


async def test_without_a_shared_ledger_the_campaign_pays_twice(tmp_path: Path) -> None:
    """The control: a ledger per worker does not stop the duplicates."""
    args = crash_campaign.parse(
        ["--store", "memory", "--trade-nos", "100", "--kills", "0", "--workers", "2"]
    )

    [figures] = await crash_campaign.run(args, tmp_path)

    assert figures.max_executions > 1
