"""Helpers of the ``vexora payouts`` tests: a sandbox and the CLI, as processes.

The sandbox runs as ``vexora sandbox`` in a subprocess, with a secret of
its own so that a test can check the secret is never printed; the CLI runs
as ``python -m vexora_async`` in another, as an operator would run it.
"""

from __future__ import annotations

import contextlib
import csv
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx


if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence


ROOT = Path(__file__).resolve().parent.parent
#: Not the public sandbox secret: no output may ever show it.
SECRET = "cli-test-secret-4f9a1c"
MERCHANT = "1000000001"
NOTIFY = "https://merchant.example/vexora/notify"
HEADER = ["trade_no", "amount", "bank_code", "bank_number", "name", "employee"]


class Sandbox:
    """A running ``vexora sandbox``: its URL and its stats."""

    def __init__(self, url: str, process: subprocess.Popen[str]) -> None:
        self.url = url
        self.process = process

    def stats(self) -> dict[str, Any]:
        """Return ``GET /_sandbox/stats``."""
        return dict(httpx.get(f"{self.url}/_sandbox/stats", timeout=10).json())

    def executions(self) -> dict[str, int]:
        """Return the payouts executed, by tradeNo (how many times each)."""
        return dict(self.stats()["executions"])

    def env(self, **extra: str) -> dict[str, str]:
        """Return the environment a CLI run against this sandbox needs."""
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("VEXORA_")
        }
        env.update(
            PYTHONPATH=str(ROOT),
            VEXORA_BASE_URL=self.url,
            VEXORA_MERCHANT_NO=MERCHANT,
            VEXORA_APP_SECRET=SECRET,
            # No config file of the machine's user may leak in.
            VEXORA_CONFIG=str(ROOT / "no-such-config.ini"),
            COLUMNS="100",
        )
        env.update(extra)
        return env


@contextlib.contextmanager
def sandbox(*options: str) -> Iterator[Sandbox]:
    """Run ``vexora sandbox --port 0 *options`` until the block ends."""
    process = subprocess.Popen(  # noqa: S603 - our own interpreter
        [
            sys.executable,
            "-m",
            "vexora_async",
            "sandbox",
            "--port",
            "0",
            "--app-secret",
            SECRET,
            *options,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert process.stdout is not None
        lines: list[str] = []
        while not lines or not lines[-1].startswith("Press Ctrl-C"):
            line = process.stdout.readline()
            assert line, lines
            lines.append(line)
        match = re.search(r"base_url +(http://127\.0\.0\.1:\d+)\n", "".join(lines))
        assert match, lines
        yield Sandbox(match.group(1), process)
    finally:
        process.terminate()
        process.communicate(timeout=10)  # closes the pipe too


def cli_command(*args: str) -> list[str]:
    """Return the argv of ``vexora ARGS`` run from the worktree."""
    return [sys.executable, "-m", "vexora_async", *args]


def run_cli(box: Sandbox, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``vexora ARGS`` against *box* with *env* added; return what it did."""
    done = subprocess.run(  # noqa: S603 - our own interpreter
        cli_command(*args),
        capture_output=True,
        text=True,
        env=box.env(**env),
        timeout=120,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert SECRET not in done.stdout + done.stderr
    return done


def payout_rows(count: int, prefix: str = "R") -> list[dict[str, str]]:
    """Return *count* valid rows, each paying a different wallet."""
    return [
        {
            "trade_no": f"{prefix}{i:05d}",
            "amount": str(1000 + i),
            "bank_code": "KBZPAY" if i % 2 else "WAVEPAY",
            "bank_number": f"09{i:09d}",
            "name": f"Payee {i}",
            "employee": f"E-{i}",
        }
        for i in range(count)
    ]


def write_csv(
    path: Path, rows: Sequence[dict[str, str]], header: Sequence[str] = HEADER
) -> Path:
    """Write *rows* under *header* as a UTF-8 CSV."""
    with path.open("w", encoding="utf-8", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(header))
        writer.writeheader()
        writer.writerows(rows)
    return path


def read_report(path: Path) -> list[dict[str, str]]:
    """Return the rows of a report."""
    with path.open(encoding="utf-8", newline="") as file:
        return list(csv.DictReader(file))
