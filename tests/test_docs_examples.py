"""Every fenced Python block in README.md and docs/*.md runs, against a sandbox.

The blocks are collected with sybil (see CONTRIBUTING.md, "Docs examples"
for why sybil). A page runs top to bottom in one namespace, as a reader
pasting its blocks into ``python -m asyncio`` would: a block may use what an
earlier block of the same page defined, and a block with a top-level
``await`` runs on the page's own event loop. ``__name__`` is
``"__main__"``, so a complete program's ``asyncio.run(main())`` guard runs
too.

Each page gets a sandbox gateway served on loopback (in a thread, with its
own event loop, so that a block's ``asyncio.run`` can reach it) and the
environment the docs tell users to set: ``VEXORA_BASE_URL``,
``VEXORA_MERCHANT_NO`` and ``VEXORA_APP_SECRET``.

A block that cannot run on its own on purpose (a fragment of a larger
program, a server meant to run forever) is preceded by a MyST comment::

    % skip: next "fragment: why it cannot run"

Such blocks are counted, and rare: see
``test_fragments_are_marked_and_rare``.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any
from unittest import SkipTest

import pytest
from sybil import Sybil
from sybil.parsers.myst import CodeBlockParser, SkipParser
from vexora_async.testing import (
    SANDBOX_APP_SECRET,
    SANDBOX_MERCHANT_NO,
    FakeGateway,
    SandboxConfig,
    serve_sandbox,
)

from tests.servers import postgres_dsn, redis_url


if TYPE_CHECKING:
    from collections.abc import Iterator

    from sybil import Example


ROOT = Path(__file__).resolve().parent.parent
PAGES = [
    ROOT / "README.md",
    *sorted(p for p in (ROOT / "docs").rglob("*.md") if "_build" not in p.parts),
]
#: The guides whose point is code: each must show a block that runs.
TEACHES_CODE = (
    "quickstart.md",
    "errors.md",
    "lifecycle.md",
    "resolving-unknown.md",
    "payouts.md",
    "batch.md",
    "callbacks.md",
    "workers.md",
    "withdrawals.md",
    "spreadsheets.md",
    "observability.md",
    "testing.md",
)
#: The most blocks that may be marked fragments, over every page.
MAX_FRAGMENTS = 12
_FLAGS = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
#: The servers a page's blocks use, by the environment variable they read:
#: ``REDIS_URL`` (a redis:// URL) and ``DATABASE_URL`` (a PostgreSQL
#: conninfo). Without the test servers the page skips (fails in CI), as the
#: ledger tests do (tests/servers.py). Blocks that write pick names of
#: their own (a key prefix, a table) and remove them.
NEEDS: dict[str, tuple[str, ...]] = {
    "workers.md": ("REDIS_URL", "DATABASE_URL"),
    "withdrawals.md": ("DATABASE_URL",),
}
#: Pages whose blocks do not all run yet (issue 20 is rewriting them); each
#: fix takes its page off this list, and an empty list is the goal.
NOT_YET: set[str] = set()


class PageEvaluator:
    """Run a block; await it on the page's loop when it has a top-level await."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def __call__(self, example: Example) -> None:
        """Run *example*; the padding keeps the page's line numbers."""
        source = "\n" * example.line + example.parsed
        code = compile(source, example.path, "exec", flags=_FLAGS, dont_inherit=True)
        result = eval(code, example.namespace)  # noqa: S307 - the docs' own blocks
        if inspect.iscoroutine(result):
            self.loop.run_until_complete(result)
        example.namespace.pop("__builtins__", None)


def sybil_for(loop: asyncio.AbstractEventLoop) -> Sybil:
    """Return the collector of a page's Python blocks and skip comments."""
    return Sybil(parsers=[CodeBlockParser("python", PageEvaluator(loop)), SkipParser()])


def python_blocks(page: Path) -> tuple[int, int]:
    """Return how many Python blocks *page* has, and how many are fragments."""
    loop = asyncio.new_event_loop()
    try:
        document = sybil_for(loop).parse(page)
        regions = list(document)
    finally:
        loop.close()
    blocks = sum(1 for e in regions if isinstance(e.region.parsed, str))
    # Only "skip: next" is used: a "start" ... "end" span would hide blocks
    # from this count.
    actions = [
        e.region.parsed[0] for e in regions if isinstance(e.region.parsed, tuple)
    ]
    assert set(actions) <= {"next"}, (page.name, actions)
    return blocks, len(actions)


class ThreadedSandbox:
    """A sandbox gateway served on loopback from a thread of its own."""

    def __init__(self) -> None:
        self.url = ""
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, name="docs-sandbox")

    def __enter__(self) -> ThreadedSandbox:
        self._thread.start()
        if not self._ready.wait(30):
            msg = "the docs' sandbox did not start within 30 s"
            raise RuntimeError(msg)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        # Settles quickly, so that a page can show a payout's final status.
        gateway = FakeGateway(SandboxConfig(settle_delay=0.05, time_scale=0.01))
        async with serve_sandbox(gateway) as url:
            self.url = url
            self._ready.set()
            await self._stop.wait()


@pytest.fixture(scope="module")
def docs_sandbox() -> Iterator[ThreadedSandbox]:
    """Serve one sandbox for the pages this test process runs."""
    with ThreadedSandbox() as sandbox:
        yield sandbox


def run_page(page: Path) -> tuple[int, list[str]]:
    """Run *page*'s blocks in order; return how many ran and the skip reasons."""
    loop = asyncio.new_event_loop()
    ran, skipped = 0, []
    try:
        document = sybil_for(loop).parse(page)
        document.namespace["__name__"] = "__main__"
        for example in document:
            try:
                example.evaluate()
            except SkipTest as skip:
                skipped.append(str(skip))
                continue
            if isinstance(example.region.parsed, str):
                ran += 1
    finally:
        _close(loop)
    return ran, skipped


def _close(loop: asyncio.AbstractEventLoop) -> None:
    pending = asyncio.all_tasks(loop)
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()


@pytest.mark.parametrize(
    "page", PAGES, ids=lambda page: page.relative_to(ROOT).as_posix()
)
def test_every_block_on_the_page_runs(
    page: Path, docs_sandbox: ThreadedSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A page's blocks run in order, against the sandbox, without an error."""
    if page.name in NOT_YET:
        pytest.xfail("issue 20: this page's blocks are being rewritten")
    monkeypatch.setenv("VEXORA_BASE_URL", docs_sandbox.url)
    monkeypatch.setenv("VEXORA_MERCHANT_NO", SANDBOX_MERCHANT_NO)
    monkeypatch.setenv("VEXORA_APP_SECRET", SANDBOX_APP_SECRET)
    monkeypatch.chdir(ROOT)
    servers = {"REDIS_URL": redis_url, "DATABASE_URL": postgres_dsn}
    for name in NEEDS.get(page.name, ()):
        monkeypatch.setenv(name, servers[name]())
    blocks, _ = python_blocks(page)
    ran, skipped = run_page(page)
    assert ran + len(skipped) == blocks
    for reason in skipped:
        assert reason.startswith("fragment: "), (page.name, reason)


def test_fragments_are_marked_and_rare() -> None:
    """Fragments are few, and every guide that teaches code shows some that runs."""
    counts: dict[str, Any] = {
        page.relative_to(ROOT).as_posix(): python_blocks(page) for page in PAGES
    }
    fragments = sum(skips for _, skips in counts.values())
    assert fragments <= MAX_FRAGMENTS, counts
    for guide in TEACHES_CODE:
        blocks, skips = counts[f"docs/{guide}"]
        assert blocks - skips >= 1, guide
