"""``python -m withdrawals migrate|api|sender|reconciler|dev``.

``dev`` runs the whole service in one process against a sandbox gateway
(``vexora sandbox``'s, in this process, unless ``VEXORA_BASE_URL`` names
one already running): migrations, the API on ``WITHDRAWALS_PORT``, two
senders and the reconciler, until Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import sys
from typing import TYPE_CHECKING, Any

import psycopg
import psycopg_pool
from prometheus_client import start_http_server
from vexora_async import PostgresLedger

from . import reconciler, sender
from .db import migrate
from .settings import Settings
from .telemetry import make_client


if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine

    from vexora_async import VexoraClient

logger = logging.getLogger("withdrawals")


@contextlib.asynccontextmanager
async def worker(
    settings: Settings,
) -> AsyncIterator[tuple[Any, PostgresLedger, VexoraClient]]:
    """Open a worker process's pool, ledger and client; close them after."""
    pool: psycopg_pool.AsyncConnectionPool[Any] = psycopg_pool.AsyncConnectionPool(
        settings.database_url, open=False, max_size=settings.batch + 2
    )
    async with pool:
        ledger = PostgresLedger(pool)
        async with make_client(settings, ledger) as client:
            yield pool, ledger, client


async def until_signalled(run: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run *run(stop)*; SIGTERM or SIGINT sets *stop* (a clean shutdown)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await run(stop)


async def run_migrate(settings: Settings) -> None:
    """Apply the migrations."""
    async with await psycopg.AsyncConnection.connect(settings.database_url) as conn:
        applied = await migrate(conn)
    logger.info("applied: %s", ", ".join(applied) or "nothing")


async def run_sender(settings: Settings) -> None:
    """Send until signalled."""
    async with worker(settings) as (pool, ledger, client):
        await until_signalled(
            lambda stop: sender.run(pool, client, ledger, settings, stop)
        )


async def run_reconciler(settings: Settings) -> None:
    """Reconcile until signalled."""
    async with worker(settings) as (pool, _, client):
        await until_signalled(lambda stop: reconciler.run(pool, client, settings, stop))


async def run_dev(settings: Settings, *, sandbox: bool = True) -> None:
    """Everything in one process, against a sandbox (in-process if *sandbox*)."""
    from vexora_async.testing import (
        FakeGateway,
        SandboxConfig,
        serve_app,
        serve_sandbox,
    )

    from .api import create_app

    async with contextlib.AsyncExitStack() as stack:
        if sandbox:
            gateway = FakeGateway(
                SandboxConfig(
                    merchant_no=settings.merchant_no, app_secret=settings.app_secret
                )
            )
            url = await stack.enter_async_context(serve_sandbox(gateway))
            settings = dataclasses.replace(settings, base_url=url)
            logger.info("sandbox gateway at %s", url)
        await run_migrate(settings)
        url = await stack.enter_async_context(
            serve_app(create_app(settings), host=settings.host, port=settings.port)
        )
        logger.info("API at %s", url)

        async def everything(stop: asyncio.Event) -> None:
            async with worker(settings) as (pool, ledger, client):
                await asyncio.gather(
                    sender.run(pool, client, ledger, settings, stop),
                    sender.run(pool, client, ledger, settings, stop),
                    reconciler.run(pool, client, settings, stop),
                )

        await until_signalled(everything)


def main(argv: list[str]) -> int:
    """Run one of the service's processes."""
    sandbox = argv == ["dev"] and not os.environ.get("VEXORA_BASE_URL")
    commands: dict[str, Callable[[Settings], Coroutine[Any, Any, None]]] = {
        "migrate": run_migrate,
        "sender": run_sender,
        "reconciler": run_reconciler,
        "dev": lambda settings: run_dev(settings, sandbox=sandbox),
    }
    if len(argv) != 1 or argv[0] not in {*commands, "api"}:
        print(f"usage: python -m withdrawals {'|'.join([*commands, 'api'])}")  # noqa: T201
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if sandbox:  # the sandbox's own credentials; its URL once it listens
        from vexora_async.testing import SANDBOX_APP_SECRET, SANDBOX_MERCHANT_NO

        os.environ.setdefault("VEXORA_MERCHANT_NO", SANDBOX_MERCHANT_NO)
        os.environ.setdefault("VEXORA_APP_SECRET", SANDBOX_APP_SECRET)
        os.environ["VEXORA_BASE_URL"] = "http://127.0.0.1"
    settings = Settings.from_env()
    if argv[0] == "api":
        import uvicorn

        from .api import create_app

        uvicorn.run(create_app(settings), host=settings.host, port=settings.port)
        return 0
    if settings.metrics_port:
        start_http_server(settings.metrics_port, addr="127.0.0.1")
    asyncio.run(commands[argv[0]](settings))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
