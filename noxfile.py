"""Every gate CI runs, plus the demo and the benchmarks.

``nox`` alone runs what CI runs (see ``.ci/run``). The tests come in two
tiers:

- ``nox -s tests``, the fast tier: the Python running nox, in parallel,
  without the tests marked ``slow``, ``subprocess`` or ``campaign`` and
  without coverage; a few minutes;
- ``nox -s matrix``: every test on each supported Python, with branch
  coverage but for the campaigns, which run alone after the rest;
  ``nox -s coverage`` combines the Pythons' data and applies the floor.

Outside CI a Python that is not installed is skipped; with ``CI`` set (or
``--error-on-missing-interpreters``) it is an error.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

import nox


# uv makes a session's virtualenv and installs into it in seconds where venv
# and pip take half a minute; CI installs it, and without it nox uses venv.
nox.options.default_venv_backend = "uv|venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = [
    "lint",
    "typecheck",
    "docs",
    "tests",
    "matrix",
    "coverage",
    "minimal",
    "package",
]

#: The Pythons the package supports (pyproject's classifiers).
PYTHONS = ["3.10", "3.11", "3.12", "3.13"]
#: The Python whose matrix run adds the long end-to-end runs (marker
#: ``e2e``: the operations CLI's fault and SIGKILL runs, the withdrawals
#: service's chaos run) and leaves out the campaigns. Those runs exercise no
#: code path that differs between Pythons (the CLI's SIGINT and SIGTERM
#: tests, which do, run everywhere); 3.13 takes the paths 3.12 does (eager
#: tasks, ``asyncio.timeout_at``), whose campaigns run on 3.12. Either set on every
#: Python took 5.5 min per Python on 2 cores, and CI 48 min.
E2E_PYTHON = "3.13"
#: The floor for branch coverage over the combined runs of every Python.
COVERAGE_FLOOR = 95
#: What the fast tier leaves out (the markers are described in pyproject).
FAST = "not slow and not subprocess and not campaign"
#: The fast tier's pytest-xdist workers: two per core. Most of its tests wait
#: on sockets, timers and the loopback servers more than they compute: with
#: one worker per core it kept 2 cores a third busy and took 109 s, with two
#: 87 s.
WORKERS = str(2 * (os.cpu_count() or 1))
ROOT = Path(__file__).resolve().parent


@nox.session
def tests(session: nox.Session) -> None:
    """Run the fast tier: this Python, in parallel, no slow tests, no coverage.

    ``nox -s tests -- -k batch -x`` adds pytest options (a later ``-m``
    replaces the tier's, ``-n 0`` runs in one process). Coverage is left to
    the matrix: it doubles the CPU each test takes, and a floor judged on
    part of the suite would mean nothing.
    """
    session.install("-e", ".[tests]")
    session.run("pytest", "-n", WORKERS, "-m", FAST, *session.posargs)


@nox.session(python=PYTHONS)
def matrix(session: nox.Session) -> None:
    """Run every test on each supported Python, with branch coverage.

    The fast tier's tests and those marked ``slow`` and ``subprocess`` run
    in parallel, under coverage, and those marked ``e2e`` on
    ``E2E_PYTHON`` only; then, on every other Python, the campaigns, on their own and
    without coverage, since they judge calls by the clock. coverage's tracer
    doubles the CPU a call takes, which bends what they judge (the boundary
    campaign's floors were once lowered for 3.10 under coverage), and they
    add little to it (on 3.12, 16 lines: 97% with or without them). It also
    saves 70 s per Python (3.12, 2 cores: 143 s alone against 213 s under
    coverage). Each Python writes its own data file (``.coverage.py3.X``);
    the ``coverage`` session combines them and applies the floor.
    ``nox -s matrix-3.12 -- -k batch`` runs one Python's tests with those
    pytest options under coverage instead (``-m campaign``: the campaigns).

    coverage starts before pytest: the package's own pytest plugin (an entry
    point) imports vexora_async before pytest-cov could start, which would
    count every module's top level as never run. Its `patch = ["subprocess"]`
    (pyproject) measures the xdist workers and the tests' own Python
    subprocesses from their first line as well; each writes a parallel data
    file, combined below.

    ``COVERAGE_CORE=sysmon`` is not set: before Python 3.14 coverage's
    sys.monitoring core cannot measure branches, so with ``branch = true``
    it warns and falls back to the default core (measured on 3.12: the same
    CPU as the default core, twice the CPU of no coverage; line coverage on
    sysmon costs almost nothing, but cannot be combined with the other
    Pythons' branch data). From 3.14 on it is coverage's default anyway.
    """
    session.install("-e", ".[tests]")
    env = {"COVERAGE_FILE": f".coverage.py{session.python}"}
    if session.posargs:
        session.run("coverage", "run", "-m", "pytest", *session.posargs, env=env)
    else:
        e2e = session.python == E2E_PYTHON
        session.run(
            "coverage",
            "run",
            "-m",
            "pytest",
            # One worker per core: under coverage the 10,000-payout tests
            # compute more than they wait, and with two workers per core
            # they ran past their deadline and pytest's timeout.
            "-n",
            "auto",
            "-m",
            "not campaign" if e2e else "not campaign and not e2e",
            env=env,
        )
        if not e2e:
            session.run("pytest", "-m", "campaign")
    session.run("coverage", "combine", "--quiet", env=env)
    session.run("coverage", "report", "--skip-covered", env=env)


@nox.session
def coverage(session: nox.Session) -> None:
    """Combine the matrix sessions' coverage; fail under the floor."""
    session.install("coverage[toml]>=7.10")
    # Each Python's combined file, not the parallel files of an aborted run.
    data = sorted(
        path
        for path in Path().glob(".coverage.py3.*")
        if re.fullmatch(r"\.coverage\.py3\.\d+", path.name)
    )
    if not data:
        session.error("no coverage data: run `nox -s matrix` first")
    # Into a file of its own, keeping each Python's: a report on the default
    # data file would combine (and delete) every .coverage.* by itself.
    combined = "--data-file=.coverage-combined"
    session.run("coverage", "combine", "--keep", combined, *data)
    session.run("coverage", "report", combined, f"--fail-under={COVERAGE_FLOOR}")


@nox.session
def lint(session: nox.Session) -> None:
    """Run ruff's linter and formatter check."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """Run mypy --strict over the package, the tests (typing tests too), this file.

    The benchmark scripts import their neighbours by bare name, as scripts
    do, so they are checked in a run of their own.
    """
    session.install("-e", ".[typecheck]", "nox")
    session.run("mypy")
    # Rooted at tests/bench, as the scripts run; opentelemetry stays a
    # namespace package (its api and sdk distributions share it).
    session.run(
        "mypy",
        "--explicit-package-bases",
        *sorted(Path().glob("tests/bench/*.py")),
        env={"MYPYPATH": str(Path("tests", "bench"))},
    )


@nox.session
def docs(session: nox.Session) -> None:
    """Build the docs; any warning fails the build.

    The retry diagram is drawn at build time by Graphviz's ``dot``
    (Debian: ``apt-get install graphviz``; ``.ci/run`` installs it).
    """
    if shutil.which("dot") is None:
        session.error("the docs need Graphviz's `dot` on the PATH")
    session.install("-e", ".[docs]")
    session.run(
        "sphinx-build",
        "-W",
        "--keep-going",
        "-b",
        "html",
        "docs",
        Path("docs", "_build", "html"),
    )


@nox.session
def minimal(session: nox.Session) -> None:
    """Install with no extra; run the core calls against the sandbox in process.

    Catches an optional dependency imported where it must not be: the
    sandbox app runs through ``httpx.ASGITransport`` (httpx is a core
    dependency), so no extra is needed.
    """
    session.install(".")
    session.run("python", ROOT / "tests" / "smoke" / "no_extras.py")


@nox.session
def package(session: nox.Session) -> None:
    """Build the sdist and wheel, check them, smoke-test the wheel installed.

    The wheel goes into a fresh virtualenv with only the ``testing`` extra;
    the smoke test runs from outside the source tree.
    """
    session.install("build", "twine")
    dist = Path(session.create_tmp()).resolve() / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    session.run("python", "-m", "build", "--outdir", dist, ROOT)
    built = sorted(dist.iterdir())
    session.run("twine", "check", "--strict", *built)
    (wheel,) = (path for path in built if path.suffix == ".whl")
    # A fresh virtualenv and a working directory outside the source tree.
    with tempfile.TemporaryDirectory(prefix="vexora-wheel-") as outside:
        venv = Path(outside) / "venv"
        session.run(sys.executable, "-m", "venv", venv, external=True)
        python = venv / ("Scripts" if sys.platform == "win32" else "bin") / "python"
        session.run(
            python,
            "-m",
            "pip",
            "install",
            "--quiet",
            f"{wheel}[testing]",
            external=True,
        )
        with session.chdir(outside):
            session.run(
                python,
                ROOT / "tests" / "smoke" / "installed_wheel.py",
                ROOT / "docs" / "testing.md",
                external=True,
            )


@nox.session
def demo(session: nox.Session) -> None:
    """Run the demo: a local sandbox, 1,000 payouts, callbacks, a summary."""
    session.install(".[demo]")
    session.run("python", "-m", "vexora_async", "demo", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Run the benchmark suite; write docs/performance/ (never part of tests).

    Prints the performance floor (issue 19) from one interleaved run, met or
    not; the exit status says nothing of it. Takes some 15 minutes on a
    2-core machine (every client runs each round in a fresh process,
    interleaved); ``nox -s bench -- --quick`` is a short smoke run (about 5
    minutes), written to the git-ignored docs/performance/quick/, and
    ``--baseline DIR`` adds the SDK of the checkout in DIR to the same
    rounds (before and after from one run). When ``wrk`` is on the PATH
    (Debian: ``apt-get install wrk``) the server's capacity is measured
    with it, else with a raw asyncio load generator. uvloop is installed
    here so that the throughput rounds at c=10 and c=100 also run each
    client on uvloop (the SDK itself never installs it: it is the user's
    opt-in).
    """
    session.install(
        "-e",
        ".[aiohttp,orjson,sandbox,otel,prometheus]",
        # The cost of the observability adapters with OpenTelemetry's SDK.
        "opentelemetry-sdk",
        "opentelemetry-instrumentation-httpx",
        "uvloop",
        "httptools",
        "matplotlib",
    )
    session.run("python", Path("tests", "bench", "run.py"), *session.posargs)


@nox.session
def crash(session: nox.Session) -> None:
    """Run the long crash campaign on real Redis and PostgreSQL servers.

    4 worker processes, 400 tradeNos, 25 SIGKILLs per round, 4 rounds
    (seeds) per store, some 5 minutes; needs the servers of ``source
    .ci/services.sh``. ``nox -s crash -- --rounds 10`` changes the campaign
    (see ``python tests/crash_campaign.py --help``).
    """
    session.install("-e", ".[tests]")
    session.run(
        "python",
        Path("tests", "crash_campaign.py"),
        "--kills",
        "25",
        "--kill-interval",
        "0.8",
        "--rounds",
        "4",
        *session.posargs,
    )


@nox.session
def bench_ledgers(session: nox.Session) -> None:
    """Measure each ledger's per-payout cost against the memory ledger.

    Needs the loopback servers of ``source .ci/services.sh``; writes
    ``docs/performance/ledgers.md``. A benchmark, never part of the tests.
    """
    session.install("-e", ".[tests]")
    session.run(
        "python",
        Path("tests", "bench", "bench_ledgers.py"),
        *session.posargs,
    )
