"""Sessions for tests, lint, typecheck, docs, the demo and benchmarks."""

from __future__ import annotations

import os

import nox


nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "typecheck", "tests", "docs"]


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite with coverage."""
    session.install("-e", ".[tests]")
    # coverage starts before pytest: the package's own pytest plugin (an
    # entry point) imports vexora_async before pytest-cov could start, which
    # would count every module's top level as never run.
    session.run("coverage", "run", "-m", "pytest", *session.posargs)
    session.run("coverage", "report")


@nox.session
def lint(session: nox.Session) -> None:
    """Run ruff's linter and formatter check."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """Run mypy --strict over the package, the tests and this file."""
    session.install("-e", ".[typecheck]", "nox")
    session.run("mypy")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the docs; any warning fails the build."""
    session.install("-e", ".[docs]")
    session.run(
        "sphinx-build",
        "-W",
        "--keep-going",
        "-b",
        "html",
        "docs",
        os.path.join("docs", "_build", "html"),  # noqa: PTH118 - nox passes strings
    )


@nox.session
def demo(session: nox.Session) -> None:
    """Run the demo: a local sandbox, 1,000 payouts, callbacks, a summary."""
    session.install(".[demo]")
    session.run("python", "-m", "vexora_async", "demo", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Run the benchmark suite; write docs/performance/ (never part of tests).

    Takes about 6 minutes on a 2-core machine; ``nox -s bench -- --quick``
    is a short smoke run. When ``wrk`` is on the PATH (Debian: ``apt-get
    install wrk``) the server's capacity is measured with it, else with a
    raw asyncio load generator.
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
    session.run("python", os.path.join("tests", "bench", "run.py"), *session.posargs)  # noqa: PTH118 - nox passes strings


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
        os.path.join("tests", "crash_campaign.py"),  # noqa: PTH118 - nox passes strings
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
        os.path.join("tests", "bench", "bench_ledgers.py"),  # noqa: PTH118 - nox passes strings
        *session.posargs,
    )
