"""Shared fixtures: a client wired to a respx router, the sandbox and its clients.

The helpers that tests import by name are in :mod:`tests.helpers`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import respx
from vexora_async import VexoraClient
from vexora_async.testing import (
    SANDBOX_APP_SECRET,
    SANDBOX_MERCHANT_NO,
    FakeGateway,
    SandboxApp,
    SandboxConfig,
    serve_sandbox,
)

from tests.helpers import (
    BASE_URL,
    FAST_RETRY,
    FIXED_MS,
    ONE_EXCHANGE,
    ClientPair,
    in_process_client,
    loopback_client,
    mock_client,
)


if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    """Yield a respx router for the gateway; every request must match a route."""
    with respx.mock(base_url=BASE_URL, assert_all_called=False) as mock:
        yield mock


@pytest.fixture
async def client(router: respx.MockRouter) -> AsyncIterator[VexoraClient]:
    """Yield a client whose HTTP goes to *router*, with a fixed clock."""
    async with mock_client(router.async_handler, clock=lambda: FIXED_MS) as vexora:
        yield vexora


# -- the sandbox gateway (vexora_async.testing) -----------------------------
# The package's pytest plugin offers the same fixtures to users; these are
# defined here so that the suite does not depend on the plugin's entry point
# being installed (and does not register it twice once it is).


@pytest.fixture
def gateway() -> FakeGateway:
    """Return a sandbox gateway that settles only when told to."""
    return FakeGateway(SandboxConfig(settle_delay=None, time_scale=0.001))


@pytest.fixture
async def sandbox(gateway: FakeGateway) -> AsyncIterator[SandboxApp]:
    """Yield the gateway's ASGI app, started."""
    async with SandboxApp(gateway) as app:
        yield app


@pytest.fixture
async def sandbox_client(sandbox: SandboxApp) -> AsyncIterator[VexoraClient]:
    """Yield a client talking to the sandbox in process."""
    async with in_process_client(sandbox) as vexora:
        yield vexora


@pytest.fixture
async def socket_url(sandbox: SandboxApp) -> AsyncIterator[str]:
    """Serve the sandbox on a free loopback port; yield its base URL."""
    async with serve_sandbox(sandbox) as url:
        yield url


@pytest.fixture
async def socket_client(socket_url: str) -> AsyncIterator[VexoraClient]:
    """Yield a client (default layers, fast backoff) to the sandbox over loopback."""
    async with VexoraClient(
        SANDBOX_MERCHANT_NO, SANDBOX_APP_SECRET, socket_url, retry=FAST_RETRY
    ) as c:
        yield c


@pytest.fixture(params=["in-process", "socket"])
async def any_client(
    request: pytest.FixtureRequest, sandbox: SandboxApp
) -> AsyncIterator[VexoraClient]:
    """Yield a sandbox client in process, then one over a loopback socket.

    Both have the default layers with fast backoff (:data:`FAST_RETRY`).
    """
    opener = in_process_client if request.param == "in-process" else loopback_client
    async with opener(sandbox) as vexora:
        yield vexora


@pytest.fixture(params=["in-process", "socket"])
async def client_pair(
    request: pytest.FixtureRequest, sandbox: SandboxApp
) -> AsyncIterator[ClientPair]:
    """Yield a :class:`ClientPair` in process, then over a loopback socket.

    ``one_exchange`` uses :data:`ONE_EXCHANGE` (each fault shows raw);
    ``default`` the default layers with :data:`FAST_RETRY`'s backoff.
    """
    if request.param == "in-process":
        async with (
            in_process_client(sandbox, ONE_EXCHANGE) as raw,
            in_process_client(sandbox) as default,
        ):
            yield ClientPair(raw, default)
        return
    async with (
        serve_sandbox(sandbox) as url,
        VexoraClient(
            SANDBOX_MERCHANT_NO, SANDBOX_APP_SECRET, url, retry=ONE_EXCHANGE
        ) as raw,
        VexoraClient(
            SANDBOX_MERCHANT_NO, SANDBOX_APP_SECRET, url, retry=FAST_RETRY
        ) as default,
    ):
        yield ClientPair(raw, default)
