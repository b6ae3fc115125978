"""The sharded pool under the SDK's default client, on real loopback sockets."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import httpx
import pytest
from vexora_async import VexoraClient
from vexora_async._transports._pool import SHARD_SIZE, ShardedTransport

from tests.helpers import MERCHANT_NO, SECRET, make_payout
from tests.loopback_gateway import LoopbackGateway, loopback_gateway, refused_port


if TYPE_CHECKING:
    from collections.abc import AsyncIterator


@pytest.fixture
async def gateway() -> AsyncIterator[LoopbackGateway]:
    """A loopback gateway answering ``0000``."""
    async with loopback_gateway() as server:
        yield server


@pytest.mark.parametrize(
    ("max_connections", "shard_size", "sizes"),
    [(1, 8, [1]), (8, 8, [8]), (9, 8, [5, 4]), (20, 8, [7, 7, 6]), (3, 1, [1, 1, 1])],
)
def test_shards_add_up_to_the_limit(
    max_connections: int, shard_size: int, sizes: list[int]
) -> None:
    """The shards hold max_connections in all, none more than the shard size."""
    transport = ShardedTransport(max_connections=max_connections, shard_size=shard_size)
    assert transport._sizes == sizes
    assert transport.free_connections == max_connections


def test_default_shards_hold_one_connection() -> None:
    """By default every shard is one connection (httpcore's walk is free)."""
    transport = ShardedTransport(max_connections=100)
    assert transport._sizes == [SHARD_SIZE] * 100
    assert SHARD_SIZE == 1


async def test_default_client_uses_the_sharded_pool() -> None:
    """The client the SDK creates sends through the sharded pool."""
    async with VexoraClient(MERCHANT_NO, SECRET, "http://127.0.0.1:9/x") as client:
        assert isinstance(client.http_client._transport, ShardedTransport)


async def test_busy_batch_stays_within_the_limit(gateway: LoopbackGateway) -> None:
    """500 concurrent payouts use at most max_connections sockets, all shards."""
    async with VexoraClient(
        MERCHANT_NO, SECRET, gateway.base_url, max_connections=20
    ) as client:
        results = await asyncio.gather(
            *(
                client.create_payout(make_payout(trade_no=f"VXPOOL{i:04d}"))
                for i in range(500)
            )
        )
        transport = client.http_client._transport
        assert isinstance(transport, ShardedTransport)
        assert transport.free_connections == 20
        per_shard = [len(shard._pool.connections) for shard in transport._shards]
    assert len(results) == 500
    assert gateway.max_open_connections <= 20
    # Work was spread: every shard opened connections.
    assert all(count > 0 for count in per_shard)


async def test_failed_request_gives_its_slot_back() -> None:
    """A request that fails to connect frees its slot for the next one."""
    transport = ShardedTransport(max_connections=2)
    async with httpx.AsyncClient(transport=transport) as http:
        for _ in range(5):
            with pytest.raises(httpx.ConnectError):
                await http.post(f"http://127.0.0.1:{refused_port()}/", content=b"{}")
        assert transport.free_connections == 2


async def test_streamed_response_holds_its_slot_until_closed(
    gateway: LoopbackGateway,
) -> None:
    """A slot is taken while a response is open, and freed when it closes."""
    transport = ShardedTransport(max_connections=3, shard_size=2)
    async with httpx.AsyncClient(transport=transport) as http:
        request = http.build_request("POST", gateway.base_url, content=b"{}")
        response = await http.send(request, stream=True)
        assert transport.free_connections == 2
        await response.aread()
        await response.aclose()
        await response.aclose()  # closing twice frees once
        assert transport.free_connections == 3


async def test_requests_beyond_the_limit_queue_in_httpx(
    gateway: LoopbackGateway,
) -> None:
    """Used around the SDK's limiter, extra requests wait for a connection."""
    transport = ShardedTransport(max_connections=2)
    async with httpx.AsyncClient(transport=transport) as http:
        responses = await asyncio.gather(
            *(http.post(gateway.base_url, content=b"{}") for _ in range(10))
        )
        assert transport.free_connections == 2
    assert [r.status_code for r in responses] == [200] * 10
    assert gateway.max_open_connections <= 2
