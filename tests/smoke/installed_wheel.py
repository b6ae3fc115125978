"""Smoke test of the built wheel, installed with the ``testing`` extra only.

``nox -s package`` runs it with the fresh virtualenv's Python, from a
directory outside the source tree, with the path of ``docs/testing.md``:
the guide's first example and its strict-mode variant are copied into
fresh projects and must pass.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

import vexora_async
from vexora_async.testing import SANDBOX_APP_SECRET, SANDBOX_MERCHANT_NO


BIN = Path(sys.executable).parent
#: A code block the guide marks for this test: ``% smoke: NAME`` just
#: before its opening fence.
BLOCK = re.compile(
    r"^% smoke: (?P<name>[\w-]+)\n```\w+\n(?P<code>.*?)^```$", re.MULTILINE | re.DOTALL
)


def run(*args: str | Path, cwd: Path | None = None) -> str:
    """Run a command; fail with its output unless it exits 0."""
    completed = subprocess.run(  # noqa: S603 - our own programs
        [str(a) for a in args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=cwd,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, f"{args}: {output}"
    return output


def installed_package(source: Path) -> None:
    """The package comes from the wheel, typed, with its plugin registered."""
    package = Path(vexora_async.__file__).parent
    assert source not in package.parents, f"imported from the source tree: {package}"
    assert (package / "py.typed").is_file(), "py.typed is missing"
    (plugin,) = (
        ep
        for ep in metadata.entry_points(group="pytest11")
        if ep.name == "vexora_async"
    )
    assert plugin.load().__name__ == "vexora_async.testing.pytest_plugin"
    (script,) = metadata.entry_points(group="console_scripts", name="vexora")
    assert script.value == "vexora_async._cli:main", script


def command_line() -> None:
    """``python -m vexora_async`` and the ``vexora`` script agree."""
    assert "usage: python -m vexora_async" in run(
        sys.executable, "-m", "vexora_async", "--help"
    )
    assert "usage: vexora" in run(BIN / "vexora", "--help")
    assert run(BIN / "vexora", "--version").strip() == vexora_async.__version__
    sandbox = subprocess.Popen(  # noqa: S603 - our own program
        [BIN / "vexora", "sandbox", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert sandbox.stdout is not None
    try:
        lines: list[str] = []
        while not lines or not lines[-1].startswith("Press Ctrl-C"):
            line = sandbox.stdout.readline()
            assert line, f"the sandbox ended: {lines}"
            lines.append(line)
    finally:
        sandbox.send_signal(signal.SIGTERM)
        sandbox.wait(30)
    printed = "".join(lines)
    for needed in ("http://127.0.0.1:", SANDBOX_MERCHANT_NO, SANDBOX_APP_SECRET):
        assert needed in printed, printed
    assert sandbox.returncode == 0, printed


def guide_examples(guide: Path) -> None:
    """The testing guide's first example passes, in auto and strict mode."""
    blocks = {m["name"]: m["code"] for m in BLOCK.finditer(guide.read_text())}
    for mode, config, test in (
        ("auto", "pyproject", "first-example"),
        ("strict", "pyproject-strict", "first-example-strict"),
    ):
        with tempfile.TemporaryDirectory() as tmp:
            project = Path(tmp)
            (project / "pyproject.toml").write_text(blocks[config])
            (project / "test_payouts.py").write_text(blocks[test])
            output = run(
                sys.executable,
                "-m",
                "pytest",
                "-p",
                "no:cacheprovider",
                "-W",
                "error",
                cwd=project,
            )
            assert re.search(r"\b1 passed\b", output), f"{mode}: {output}"


def main() -> None:
    """Run every check; the guide's path comes first on the command line."""
    guide = Path(sys.argv[1]).resolve()
    source = guide.parent.parent
    os.environ.pop("PYTHONPATH", None)
    installed_package(source)
    command_line()
    guide_examples(guide)
    print("wheel smoke test: every check passed")  # noqa: T201 - a script


if __name__ == "__main__":
    main()
