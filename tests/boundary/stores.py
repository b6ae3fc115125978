"""The ledgers' stores under attack: a Redis of the campaign's own, a PG table.

The shared test servers must not be paused, flushed or restarted, so the
campaign starts its own ``redis-server`` on a free loopback port, without
persistence: a restart forgets everything, as a Redis restarted without
AOF or RDB does. PostgreSQL is the shared test server; the campaign only
locks its own table and terminates its own backends (found by their
``application_name``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import time
from typing import TYPE_CHECKING, Any

import pytest
from vexora_async import MemoryLedger

from tests.boundary.campaign import Chaos, Run, Stage, Worker, make_client
from tests.servers import postgres_dsn, unique


if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    import psycopg

#: How long the chaos holds Redis paused and the ledger's table locked.
PAUSE_MS = 3000
LOCK_SECONDS = 3.0
#: The socket timeout of one worker's Redis client, and how long DEBUG
#: SLEEP keeps Redis busy past it.
SOCKET_TIMEOUT = 0.5
BUSY_SECONDS = 2


def redis_server_binary() -> str:
    """Return the ``redis-server`` on the PATH, or skip (fail in CI)."""
    found = shutil.which("redis-server")
    if found:
        return found
    reason = "the boundary campaign starts its own redis-server: none on the PATH"
    if os.environ.get("CI"):
        pytest.fail(f"CI: {reason}")
    pytest.skip(reason)


def free_port() -> int:
    """Return a loopback port free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisProcess:
    """A ``redis-server`` on loopback that the campaign may kill and restart."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.port = free_port()
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        """The server's URL."""
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        """Start the server (same port as before) and wait until it answers."""
        self._proc = await asyncio.create_subprocess_exec(
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            # DEBUG SLEEP is how the campaign makes Redis busy.
            "--enable-debug-command",
            "yes",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError, asyncio.TimeoutError):
                if await self.command("PING", timeout=1) == b"+PONG":
                    return
            if self._proc.returncode is not None or time.monotonic() > deadline:
                msg = f"redis-server on port {self.port} did not start"
                raise RuntimeError(msg)
            await asyncio.sleep(0.02)

    async def command(self, *words: str, timeout: float = 10) -> bytes:
        """Send one command on a connection of its own; return the reply line.

        Not through redis-py: the campaign's own commands must not share
        (or be retried by) the clients it attacks. A server still starting
        (after a restart) is waited for.
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                break
            except ConnectionRefusedError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)
        try:
            writer.write(" ".join(words).encode() + b"\r\n")
            await writer.drain()
            return (await asyncio.wait_for(reader.readline(), timeout)).rstrip()
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def kill(self) -> None:
        """SIGKILL the server, as a crash would; it keeps nothing."""
        if self._proc is not None and self._proc.returncode is None:
            self._proc.kill()
            await self._proc.wait()
        self._proc = None

    async def restart(self) -> None:
        """Kill the server and start a fresh, empty one on the same port."""
        await self.kill()
        await self.start()


async def terminate_backends(
    admin: psycopg.AsyncConnection[Any], application_name: str
) -> int:
    """Terminate the ledger's connections (ours only); return how many."""
    cursor = await admin.execute(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE application_name = %s AND pid <> pg_backend_pid()",
        (application_name,),
    )
    row = await cursor.fetchone()
    return int(row[0]) if row else 0


# -- the stages ---------------------------------------------------------------


@contextlib.asynccontextmanager
async def memory_stage() -> AsyncIterator[Stage]:
    """A memory ledger per worker; each worker restarts once mid-run.

    A restarted worker's fresh ledger knows nothing: its redelivered jobs
    are tradeNos the gateway may already hold.
    """

    def restart(worker: int) -> Any:
        async def act(run: Run) -> None:
            ledger = MemoryLedger()
            old = run.workers[worker]
            client = make_client(run.url, ledger, run.setup.policy)
            run.workers[worker] = Worker(ledger, client)
            await old.client.aclose()  # mid-call: its calls in flight end here

        return act

    yield Stage(
        ledgers=[MemoryLedger(), MemoryLedger()],
        events=[
            Chaos(2.0, "worker 0 restarted, fresh memory ledger", restart(0), True),
            Chaos(3.8, "worker 1 restarted, fresh memory ledger", restart(1), True),
        ],
    )


@contextlib.asynccontextmanager
async def redis_stage() -> AsyncIterator[Stage]:
    """The campaign's own Redis, paused, busy, flushed, killed and restarted.

    Worker 0's Redis client has a socket timeout shorter than the busy
    spell; worker 1's has redis-py's defaults (no timeout), so it waits
    out the pause.
    """
    import redis.asyncio
    from vexora_async import RedisLedger

    server = RedisProcess(redis_server_binary())
    await server.start()
    host, port = "127.0.0.1", server.port
    clients = [
        redis.asyncio.Redis(
            host=host,
            port=port,
            socket_timeout=SOCKET_TIMEOUT,
            socket_connect_timeout=SOCKET_TIMEOUT,
        ),
        redis.asyncio.Redis(host=host, port=port),
    ]

    async def pause(_: Run) -> bytes:
        return await server.command("CLIENT", "PAUSE", str(PAUSE_MS), "ALL")

    async def busy(_: Run) -> bytes:
        return await server.command("DEBUG", "SLEEP", str(BUSY_SECONDS))

    async def flush(_: Run) -> bytes:
        return await server.command("FLUSHALL")

    async def restart(_: Run) -> None:
        await server.restart()

    try:
        yield Stage(
            ledgers=[RedisLedger(c, prefix="boundary:") for c in clients],
            events=[
                # The forgetting first; then the stalls, whose lost replies
                # may leave claims nobody holds: no later wipe hides them
                # from the check after the run.
                Chaos(1.0, "FLUSHALL", flush, forgets=True),
                Chaos(1.8, "kill + restart, no persistence", restart, forgets=True),
                Chaos(2.2, f"CLIENT PAUSE {PAUSE_MS} ALL", pause),
                Chaos(
                    5.3,
                    f"DEBUG SLEEP {BUSY_SECONDS} (socket_timeout {SOCKET_TIMEOUT} s)",
                    busy,
                ),
            ],
        )
    finally:
        for client in clients:
            await client.aclose()
        await server.kill()


@contextlib.asynccontextmanager
async def postgres_stage() -> AsyncIterator[Stage]:
    """A table of the campaign's own, locked; its backends terminated.

    Both workers share one pool, as the processes of one service share a
    database; settled entries are deleted once mid-run (a prune, or a
    retention job), so the ledger forgets them.
    """
    import psycopg
    import psycopg_pool
    from psycopg import sql
    from vexora_async import PostgresLedger

    dsn = postgres_dsn()
    table = unique("boundary_")
    application = unique("vexora-boundary-")
    pool: psycopg_pool.AsyncConnectionPool[Any] = psycopg_pool.AsyncConnectionPool(
        dsn,
        min_size=2,
        max_size=10,
        open=False,
        kwargs={"application_name": application},
    )
    await pool.open(wait=True, timeout=10)
    ledger = PostgresLedger(pool, table=table)
    await ledger.create_table()
    locker = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    killer = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    name = sql.Identifier(table)

    async def lock(_: Run) -> None:
        async with locker.transaction():
            await locker.execute(
                sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(name)
            )
            await asyncio.sleep(LOCK_SECONDS)

    async def terminate(_: Run) -> int:
        return await terminate_backends(killer, application)

    async def forget(_: Run) -> None:
        await killer.execute(
            sql.SQL("DELETE FROM {} WHERE state IN ('accepted', 'rejected')").format(
                name
            )
        )

    try:
        yield Stage(
            ledgers=[ledger, ledger],
            events=[
                Chaos(0.5, f"LOCK TABLE ... ACCESS EXCLUSIVE {LOCK_SECONDS:g} s", lock),
                Chaos(3.6, "pg_terminate_backend (ledger's pool)", terminate),
                Chaos(4.2, "settled entries deleted", forget, forgets=True),
                Chaos(4.8, "pg_terminate_backend (ledger's pool)", terminate),
            ],
        )
    finally:
        await killer.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(name))
        await locker.close()
        await killer.close()
        await pool.close()
