"""Pytest fixtures: a sandbox gateway and a client wired to it.

Registered as the ``vexora_async`` plugin (entry point ``pytest11``), so
installing vexora-async makes these fixtures available to any test suite:

``vexora_sandbox_config``
    The :class:`~vexora_async.testing.SandboxConfig` (override it in your
    ``conftest.py``). Payouts settle as ``SandboxConfig`` and ``vexora
    sandbox`` settle them: :data:`~vexora_async.testing.DEFAULT_SETTLE_DELAY`
    after acceptance, or at once when a test calls
    ``vexora_gateway.settle(trade_no)``. Callback retries run a thousand
    times faster than the gateway's.
``vexora_callback_app``
    An ASGI app that receives callbacks in process, or ``None`` (default)
    to POST them over loopback. Override it with your own receiver.
``vexora_retry_policy``
    The clients' :class:`~vexora_async.RetryPolicy`: the SDK's defaults
    (retries, reconciliation of unknown outcomes, confirmed rejections)
    with near-zero backoff, so a test sees what production does, quickly.
    Override it to see each fault raw, one exchange per call:
    ``RetryPolicy(max_retries=0, reconcile=False, verify_rejections=False)``.
``vexora_gateway``
    A fresh :class:`~vexora_async.testing.FakeGateway` per test.
``vexora_sandbox``
    Its :class:`~vexora_async.testing.SandboxApp`, started.
``vexora_client``
    A :class:`~vexora_async.VexoraClient` with ``vexora_retry_policy``
    talking to the sandbox in process (``httpx.ASGITransport``).
``vexora_sandbox_url``
    The sandbox served on a loopback socket (skipped without uvicorn).
``vexora_socket_client``
    A client with ``vexora_retry_policy`` talking to ``vexora_sandbox_url``
    over that socket.

Async fixtures need an async test runner: pytest-asyncio (used when
installed; the ``testing`` extra brings it) or anyio's pytest plugin. The
fixtures are pytest-asyncio fixtures, so they work in its strict and auto
modes alike.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from vexora_async._client import VexoraClient
from vexora_async._retry import RetryPolicy

from ._app import SandboxApp
from ._config import SandboxConfig
from ._gateway import FakeGateway
from ._server import serve_sandbox


if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from ._app import ASGIApp

try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - depends on the user's test runner
    _async_fixture: Callable[..., Any] = pytest.fixture
else:
    _async_fixture = pytest_asyncio.fixture


#: The base URL of the in-process client: any loopback URL works, and the
#: sandbox accepts any path prefix (like the per-country base URLs).
IN_PROCESS_URL = "http://127.0.0.1/sandbox"
#: The SDK's default retry policy, but for the backoff between attempts:
#: a millisecond or so instead of a quarter second and more.
FAST_BACKOFF = RetryPolicy(backoff_initial=0.001, backoff_max=0.01)


@pytest.fixture
def vexora_sandbox_config() -> SandboxConfig:
    """Return the sandbox's configuration; override this fixture to change it."""
    return SandboxConfig(time_scale=0.001)


@pytest.fixture
def vexora_retry_policy() -> RetryPolicy:
    """Return the clients' retry policy; override this fixture to change it."""
    return FAST_BACKOFF


@pytest.fixture
def vexora_callback_app() -> ASGIApp | None:
    """Return the app callbacks go to in process; ``None``: over loopback."""
    return None


@pytest.fixture
def vexora_gateway(vexora_sandbox_config: SandboxConfig) -> FakeGateway:
    """Return a fresh sandbox gateway."""
    return FakeGateway(vexora_sandbox_config)


@_async_fixture
async def vexora_sandbox(
    vexora_gateway: FakeGateway, vexora_callback_app: ASGIApp | None
) -> AsyncIterator[SandboxApp]:
    """Yield the sandbox's ASGI app, settling and sending callbacks meanwhile."""
    async with SandboxApp(vexora_gateway, callback_app=vexora_callback_app) as app:
        yield app


@_async_fixture
async def vexora_client(
    vexora_sandbox: SandboxApp, vexora_retry_policy: RetryPolicy
) -> AsyncIterator[VexoraClient]:
    """Yield a client wired to the sandbox in process."""
    config = vexora_sandbox.gateway.config
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=vexora_sandbox)) as http,
        VexoraClient(
            config.merchant_no,
            config.app_secret,
            IN_PROCESS_URL,
            http_client=http,
            retry=vexora_retry_policy,
        ) as client,
    ):
        yield client


@_async_fixture
async def vexora_sandbox_url(vexora_sandbox: SandboxApp) -> AsyncIterator[str]:
    """Serve the sandbox on a free loopback port; yield its base URL."""
    if importlib.util.find_spec("uvicorn") is None:
        pytest.skip("the loopback sandbox needs uvicorn (vexora-async[sandbox])")
    async with serve_sandbox(vexora_sandbox) as url:
        yield url


@_async_fixture
async def vexora_socket_client(
    vexora_sandbox_url: str,
    vexora_gateway: FakeGateway,
    vexora_retry_policy: RetryPolicy,
) -> AsyncIterator[VexoraClient]:
    """Yield a client wired to the sandbox over a loopback socket."""
    config = vexora_gateway.config
    async with VexoraClient(
        config.merchant_no,
        config.app_secret,
        vexora_sandbox_url,
        retry=vexora_retry_policy,
    ) as client:
        yield client
