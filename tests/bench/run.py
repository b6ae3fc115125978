"""Run the whole benchmark and write its table and chart (``nox -s bench``).

First the performance floor (issue 19), read from the throughput rounds:
the SDK's default at least 0.85x raw httpx at c=10; ``transport="aiohttp"``
at least 0.5x raw aiohttp at c=10 and c=100, and at least 2x raw httpx at
c=100. Printed and written with the results, met or not: a benchmark on a
shared machine, never a pass/fail test (the exit status says nothing of
the floor).

Starts the loopback server in its own process pinned to one core, measures
its capacity with a raw load generator (``wrk`` when installed, else
:mod:`bench_loadgen`), then runs the throughput table interleaved: for each
concurrency, repeat round after repeat round, every client takes its turn
(one fresh process pinned to the other core per client and round, the
order rotating from round to round), so that a noisy neighbour slows all
clients of a round alike. When uvloop is installed, the same rounds at
c=10 and c=100 also run the clients on uvloop. Then the per-call CPU
timings and the memory scenarios; writes ``docs/performance/results.md``,
``results.json`` and ``throughput.svg``.

The SDK's own work in place is computed from the same rounds: the SDK's CPU
per request minus that of the raw client making the same exchange (raw
aiohttp for ``transport="aiohttp"``, raw httpx with the SDK's limits for
the default), round by round, the median over the rounds.

``--baseline DIR`` adds the SDK of another checkout (``DIR`` holds its
``vexora_async``; say ``git worktree add /tmp/before main``) as two more
clients in the same interleaved rounds, and runs the gather scenario on
it too: before and after, from one run on one machine. ``--quick`` runs a
smaller version (a smoke test of the suite itself).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import math
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import bench_throughput


HERE = Path(__file__).parent
ROOT = HERE.parent.parent
OUT = ROOT / "docs" / "performance"
CLIENTS = bench_throughput.CLIENTS
#: The clients of ``--baseline``: the other checkout's SDK, by the name of
#: the client of ours it runs.
BASELINE = {"base-sdk": "sdk", "base-sdk-aiohttp": "sdk-aiohttp"}
#: Every client a table may show, in the order it shows them.
ALL_CLIENTS = [*CLIENTS, *BASELINE]
LABELS = {
    "sdk": "SDK create_payout (default, httpx)",
    "httpx": "raw httpx.AsyncClient (naive: shared, default limits)",
    "httpx-limits": (
        "raw httpx.AsyncClient with the SDK's limits ({pool} connections, kept alive)"
    ),
    "sdk-aiohttp": 'SDK create_payout (transport="aiohttp")',
    "aiohttp": "raw aiohttp.ClientSession",
    "base-sdk": "baseline SDK create_payout (default)",
    "base-sdk-aiohttp": 'baseline SDK create_payout (transport="aiohttp")',
}
#: One colour per client, the same in every chart and run.
COLORS = {
    "sdk": "C0",
    "httpx": "C1",
    "sdk-aiohttp": "C2",
    "aiohttp": "C3",
    "httpx-limits": "C4",
    "base-sdk": "C5",
    "base-sdk-aiohttp": "C6",
}
CONCURRENCY = [1, 10, 100, 1000]
#: The cells run again with the client process on uvloop, when installed.
UVLOOP_CLIENTS = ["sdk", "httpx", "sdk-aiohttp", "aiohttp"]
UVLOOP_CONCURRENCY = [10, 100]
#: The SDK's own work in place: (row, the SDK's client, the raw client that
#: makes the same exchange without the SDK, whether it is the same exchange
#: only up to as many calls as the SDK's pool has connections). Raw httpx
#: with the SDK's limits has no limiter: past the pool's connections its
#: calls queue inside httpcore's pool (until its pool timeout), while the
#: SDK's wait in its limiter.
IN_PLACE: list[tuple[str, str, str, bool]] = [
    ('transport="aiohttp": SDK minus raw aiohttp', "sdk-aiohttp", "aiohttp", False),
    (
        "default: SDK minus raw httpx with the SDK's limits",
        "sdk",
        "httpx-limits",
        True,
    ),
    (
        'baseline, transport="aiohttp": SDK minus raw aiohttp',
        "base-sdk-aiohttp",
        "aiohttp",
        False,
    ),
    (
        "baseline, default: SDK minus raw httpx with the SDK's limits",
        "base-sdk",
        "httpx-limits",
        True,
    ),
]
#: The throughput ratios, as (row, numerator, denominator).
RATIOS = [
    ("SDK / raw httpx", "sdk", "httpx"),
    ("SDK / raw httpx with the SDK's limits", "sdk", "httpx-limits"),
    ("SDK (aiohttp transport) / raw aiohttp", "sdk-aiohttp", "aiohttp"),
    ("SDK (aiohttp transport) / raw httpx", "sdk-aiohttp", "httpx"),
    ("SDK (aiohttp transport) / SDK (default)", "sdk-aiohttp", "sdk"),
    ("SDK / baseline SDK (default)", "sdk", "base-sdk"),
    ("SDK / baseline SDK (aiohttp transport)", "sdk-aiohttp", "base-sdk-aiohttp"),
]
#: The performance floor of issue 19: (what, the SDK's client, the raw
#: client, the concurrency, the least ratio of their throughputs).
FLOORS = [
    ("default >= {floor:g}x raw httpx at c={c}", "sdk", "httpx", 10, 0.85),
    (
        'transport="aiohttp" >= {floor:g}x raw aiohttp at c={c}',
        "sdk-aiohttp",
        "aiohttp",
        10,
        0.5,
    ),
    (
        'transport="aiohttp" >= {floor:g}x raw aiohttp at c={c}',
        "sdk-aiohttp",
        "aiohttp",
        100,
        0.5,
    ),
    (
        'transport="aiohttp" >= {floor:g}x raw httpx at c={c}',
        "sdk-aiohttp",
        "httpx",
        100,
        2.0,
    ),
]
IDLE_LABELS = {"httpx": "default transport", "aiohttp": 'transport="aiohttp"'}
FULL = {
    "n": {1: 1000, 10: 2000, 100: 2000, 1000: 2000},
    "repeats": 3,
    # The naive client at 1,000 fails every call after burning ~25 ms of CPU
    # on each; one round of 1,000 shows that without eating the budget.
    "slow": {"httpx": {1000: (1000, 1)}},
    "seconds": 4,
    "sandbox_concurrency": [10, 100],
    "uvloop_repeats": 2,
    "batch": 100_000,
    "ledger": 100_000,
    # Issue 19's figure: a gather of 10,000 payouts on default settings.
    "gather": 10_000,
    "idle_clients": 50,
}
QUICK = {
    "n": {1: 100, 10: 200, 100: 300, 1000: 1000},
    "repeats": 1,
    "slow": {},
    "seconds": 2,
    "sandbox_concurrency": [10],
    "uvloop_repeats": 1,
    "batch": 2_000,
    "ledger": 2_000,
    "gather": 2_000,
    "idle_clients": 50,
}
VERSIONED = [
    "httpx",
    "httpcore",
    "anyio",
    "sniffio",
    "h11",
    "aiohttp",
    "attrs",
    "cattrs",
    "orjson",
    "opentelemetry-api",
    "opentelemetry-sdk",
    "prometheus-client",
    "uvicorn",
    "uvloop",
    "httptools",
]


def cpus() -> tuple[int | None, int | None]:
    """Pick a core for the server and one for the clients, if we may pin."""
    if not hasattr(os, "sched_getaffinity"):
        return None, None
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        return None, None
    return allowed[-1], allowed[0]


def free_port() -> int:
    """A free loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def start_server(kind: str, port: int, cpu: int | None) -> subprocess.Popen[bytes]:
    """Start the server process and wait until it accepts connections."""
    args = [sys.executable, str(HERE / "bench_server.py"), kind, str(port)]
    if cpu is not None:
        args.append(str(cpu))
    server = subprocess.Popen(args)  # noqa: S603 - our own script
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", port), timeout=1),
        ):
            return server
        time.sleep(0.1)
    server.kill()
    msg = "the benchmark server did not start"
    raise SystemExit(msg)


def run_json(
    script: str, *args: object, timeout: float = 600, sdk: Path = ROOT
) -> dict[str, Any]:
    """Run one of the bench scripts; return the JSON object it printed.

    *sdk* is the checkout whose ``vexora_async`` the script imports: first
    on the path, before the one installed.
    """
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(sdk), str(HERE)])}
    out = subprocess.run(  # noqa: S603 - our own scripts
        [sys.executable, str(HERE / script), *map(str, args)],
        check=True,
        capture_output=True,
        env=env,
        timeout=timeout,
    ).stdout.decode()
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    imported = result.get("sdk_path")
    if imported is not None and not Path(imported).resolve().is_relative_to(
        sdk.resolve()
    ):
        msg = f"{script} imported vexora_async from {imported}, not from {sdk}"
        raise SystemExit(msg)
    return result


def server_capacity(
    url: str,
    client_cpu: int | None,
    seconds: int,
    levels: list[int] = CONCURRENCY,
) -> dict[str, Any]:
    """Requests per second the server answers for a raw load generator."""
    wrk = shutil.which("wrk")
    body = bench_throughput.payout_bytes().decode()
    results: dict[str, Any] = {"tool": "wrk" if wrk else "bench_loadgen.py"}
    for concurrency in levels:
        if wrk:
            script = Path(tempfile.gettempdir()) / f"vexora-bench-{os.getpid()}.lua"
            script.write_text(
                'wrk.method = "POST"\n'
                f"wrk.body = '{body}'\n"
                'wrk.headers["Content-Type"] = "application/json"\n'
                f'wrk.headers["merchantNo"] = "{bench_throughput.MERCHANT_NO}"\n',
                encoding="utf-8",
            )
            args = [wrk, "-t1", f"-c{concurrency}", f"-d{seconds}s", "-s", str(script)]
            if client_cpu is not None and shutil.which("taskset"):
                args = ["taskset", "-c", str(client_cpu), *args]
            out = subprocess.run(  # noqa: S603 - wrk with our arguments
                [*args, url + bench_throughput.PATH],
                check=True,
                capture_output=True,
            ).stdout.decode()
            script.unlink()
            match = re.search(r"Requests/sec:\s+([\d.]+)", out)
            results[str(concurrency)] = float(match.group(1)) if match else None
        else:
            cell = run_json(
                "bench_loadgen.py",
                url,
                concurrency,
                seconds,
                "" if client_cpu is None else client_cpu,
            )
            results[str(concurrency)] = cell["rate"]
    return results


def machine() -> dict[str, Any]:
    """What ran the benchmark."""
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="ascii").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions = {name: _version(name) for name in VERSIONED}
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "load_average_at_start": os.getloadavg(),
        "versions": versions,
    }


def sandbox(
    plan: dict[str, Any], server_cpu: int | None, pin: list[int]
) -> dict[str, Any]:
    """The SDK against the sandbox gateway (FakeGateway under uvicorn)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server("sandbox", port, server_cpu)
    try:
        levels = plan["sandbox_concurrency"]
        capacity = server_capacity(
            url, pin[0] if pin else None, plan["seconds"], levels
        )
        cells = []
        for concurrency in levels:
            for client in ("sdk", "sdk-aiohttp"):
                print(f"  {client} at {concurrency}...", flush=True)  # noqa: T201
                cell = run_json(
                    "bench_throughput.py",
                    client,
                    concurrency,
                    plan["n"][concurrency],
                    plan["repeats"],
                    url,
                    *pin,
                )
                cell["median"] = statistics.median(cell["rates"])
                cells.append(cell)
    finally:
        server.terminate()
        server.wait(10)
    return {"server_capacity": capacity, "throughput": cells}


def uvloop_installed() -> bool:
    """Tell whether the client processes can run on uvloop."""
    return importlib.util.find_spec("uvloop") is not None


def throughput(
    plan: dict[str, Any],
    url: str,
    pin: list[int],
    *,
    uvloop: bool,
    baseline: Path | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Run the throughput cells interleaved; return asyncio's and uvloop's.

    For each concurrency, round after round, every variant (a client on a
    loop) runs one repeat in a fresh process; the order rotates from round
    to round. Each measurement keeps its round number, so that the SDK's
    own work in place can subtract the raw client of the same round. The
    *baseline* checkout's SDK, if given, takes its turns among them.
    """
    cells: dict[tuple[str, str, int], dict[str, Any]] = {}
    clients = [*CLIENTS, *BASELINE] if baseline is not None else CLIENTS
    for concurrency in CONCURRENCY:
        variants: list[tuple[str, str, int, int]] = []
        for client in clients:
            n, repeats = (
                plan["slow"]
                .get(client, {})
                .get(concurrency, (plan["n"][concurrency], plan["repeats"]))
            )
            variants.append((client, "asyncio", n, repeats))
        if uvloop and concurrency in UVLOOP_CONCURRENCY:
            variants += [
                (client, "uvloop", plan["n"][concurrency], plan["uvloop_repeats"])
                for client in UVLOOP_CLIENTS
            ]
        rounds = max(repeats for *_, repeats in variants)
        for round_ in range(rounds):
            shift = round_ % len(variants)
            for client, loop, n, repeats in variants[shift:] + variants[:shift]:
                if round_ >= repeats:
                    continue
                print(  # noqa: T201 - progress
                    f"{client} at {concurrency} on {loop}, round {round_ + 1}...",
                    flush=True,
                )
                one = run_json(
                    "bench_throughput.py",
                    BASELINE.get(client, client),
                    concurrency,
                    n,
                    1,
                    url,
                    *pin,
                    "--loop",
                    loop,
                    sdk=ROOT
                    if client not in BASELINE or baseline is None
                    else baseline,
                )
                cell = cells.setdefault(
                    (loop, client, concurrency),
                    {
                        "client": client,
                        "concurrency": concurrency,
                        "n": n,
                        "loop": loop,
                        "loop_class": one["loop_class"],
                        "rates": [],
                        "cpu_us": [],
                        "rounds": [],
                        "errors": {},
                    },
                )
                cell["rates"] += one["rates"]
                cell["cpu_us"] += one["cpu_us"]
                cell["rounds"] += [round_] * len(one["rates"])
                for kind, count in one["errors"].items():
                    cell["errors"][kind] = cell["errors"].get(kind, 0) + count
    for cell in cells.values():
        cell["median"] = statistics.median(cell["rates"])
        cell["cpu_us_median"] = statistics.median(cell["cpu_us"])
    by_loop: dict[str, list[dict[str, Any]]] = {"asyncio": [], "uvloop": []}
    for (loop, *_), cell in cells.items():
        by_loop[loop].append(cell)
    return by_loop["asyncio"], by_loop["uvloop"]


def idle_memory(plan: dict[str, Any], url: str, pin: list[int]) -> dict[str, Any]:
    """RSS per idle client beyond the first, for each transport."""
    return {
        transport: run_json(
            "bench_memory.py", f"idle-{transport}", plan["idle_clients"], url, *pin
        )
        for transport in ("httpx", "aiohttp")
    }


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def on_the_raw_server(
    plan: dict[str, Any],
    server_cpu: int | None,
    client_cpu: int | None,
    baseline: Path | None,
) -> dict[str, Any]:
    """Everything measured against the raw loopback server."""
    pin = [] if client_cpu is None else [client_cpu]
    results: dict[str, Any] = {}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server("raw", port, server_cpu)
    try:
        print("server capacity...", flush=True)  # noqa: T201 - progress
        results["server_capacity"] = server_capacity(url, client_cpu, plan["seconds"])
        uvloop = uvloop_installed()
        if not uvloop:
            print("uvloop is not installed: no uvloop rows", flush=True)  # noqa: T201
        results["throughput"], uvloop_cells = throughput(
            plan, url, pin, uvloop=uvloop, baseline=baseline
        )
        if uvloop_cells:
            results["throughput_uvloop"] = uvloop_cells
        print("per-call CPU...", flush=True)  # noqa: T201
        results["cpu"] = run_json("bench_cpu.py", *pin)
        for scenario in ("batch", "ledger", "gather"):
            print(f"memory: {scenario}...", flush=True)  # noqa: T201
            results[scenario] = run_json(
                "bench_memory.py", scenario, plan[scenario], url, *pin
            )
        if baseline is not None:
            print("memory: gather, baseline...", flush=True)  # noqa: T201
            results["gather_baseline"] = run_json(
                "bench_memory.py", "gather", plan["gather"], url, *pin, sdk=baseline
            )
        print("memory: idle clients...", flush=True)  # noqa: T201
        results["idle"] = idle_memory(plan, url, pin)
    finally:
        server.terminate()
        server.wait(10)
    return results


def main() -> None:
    """Run everything; write the results."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="DIR",
        help="also run the SDK of the checkout in DIR (its vexora_async), "
        "interleaved in the same rounds: before and after from one run",
    )
    parser.add_argument(
        "--render",
        action="store_true",
        help="only rewrite the tables and chart from results.json "
        "(with --quick: the quick run's, in docs/performance/quick/)",
    )
    options = parser.parse_args()
    target = OUT if not options.quick else OUT / "quick"
    if options.render:
        saved = target / "results.json"
        write(json.loads(saved.read_text(encoding="utf-8")), target)
        return
    plan: dict[str, Any] = QUICK if options.quick else FULL
    baseline: Path | None = options.baseline
    if baseline is not None and not (baseline / "vexora_async").is_dir():
        parser.error(f"--baseline: no vexora_async in {baseline}")
    OUT.mkdir(parents=True, exist_ok=True)
    server_cpu, client_cpu = cpus()
    pin = [] if client_cpu is None else [client_cpu]
    started = time.monotonic()
    results: dict[str, Any] = {
        "machine": machine(),
        "plan": plan,
        "plan_name": "quick" if options.quick else "full",
        "sdk": checkout(ROOT),
        "sdk_max_connections": bench_throughput.SDK_MAX_CONNECTIONS,
    }
    if baseline is not None:
        results["baseline"] = checkout(baseline)
    results["pinning"] = {"server_cpu": server_cpu, "client_cpu": client_cpu}
    results.update(on_the_raw_server(plan, server_cpu, client_cpu, baseline))
    print("against the sandbox gateway...", flush=True)  # noqa: T201
    results["sandbox"] = sandbox(plan, server_cpu, pin)
    results["seconds"] = time.monotonic() - started
    target.mkdir(exist_ok=True)
    (target / "results.json").write_text(
        json.dumps(results, indent=2) + "\n", encoding="utf-8"
    )
    write(results, target)
    print(render(results))  # noqa: T201 - the summary
    # The floor once more, last, where a terminal shows it.
    print("\n".join(["", "Performance floor:", *_floor_table(results)]))  # noqa: T201


def write(results: dict[str, Any], target: Path) -> None:
    """Write the tables and the chart of *results* into *target*."""
    (target / "results.md").write_text(render(results), encoding="utf-8")
    chart(results, target / "throughput.svg")


def checkout(path: Path) -> dict[str, str]:
    """Where an SDK comes from: its directory and, in git, its commit."""
    described = {"path": str(path.resolve())}
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        described["commit"] = subprocess.run(  # noqa: S603 - git on a path we were given
            ["git", "-C", str(path), "describe", "--always", "--dirty"],  # noqa: S607
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    return described


def floors(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The performance floor against this run: each ratio, met or not.

    With a baseline, its ratios against the same raw clients of the same
    rounds too.
    """
    rows: list[dict[str, Any]] = []
    for what, sdk, raw, c, floor in FLOORS:
        row: dict[str, Any] = {"floor": what.format(floor=floor, c=c)}
        for column, client in (("now", sdk), ("baseline", f"base-{sdk}")):
            top, bottom = _rate(results, client, c), _rate(results, raw, c)
            if math.isnan(top) or math.isnan(bottom):
                continue
            ratio = top / bottom if bottom else math.inf
            row[column] = ratio
            row[f"{column}_met"] = top > 0 and ratio >= floor
        rows.append(row)
    return rows


def _floor_table(results: dict[str, Any]) -> list[str]:
    rows = floors(results)
    baseline = any("baseline" in row for row in rows)
    header = "| floor | this SDK | |" + (" baseline | |" if baseline else "")
    lines = [header, "| --- | ---: | --- |" + (" ---: | --- |" if baseline else "")]
    for row in rows:
        cells = [row["floor"]]
        for column in ("now", "baseline") if baseline else ("now",):
            if column in row:
                met = "met" if row[f"{column}_met"] else "**not met**"
                cells += [f"{row[column]:.2f}x", met]
            else:
                cells += ["not measured", ""]
        lines.append(_row(cells[0], cells[1:]))
    return lines


def _cell(
    results: dict[str, Any], client: str, concurrency: int, key: str = "throughput"
) -> dict[str, Any] | None:
    for cell in results.get(key) or []:
        if cell["client"] == client and cell["concurrency"] == concurrency:
            found: dict[str, Any] = cell
            return found
    return None


def _rate(
    results: dict[str, Any], client: str, concurrency: int, key: str = "throughput"
) -> float:
    cell = _cell(results, client, concurrency, key)
    return float("nan") if cell is None else float(cell["median"])


def _cpu(
    results: dict[str, Any], client: str, concurrency: int, key: str = "throughput"
) -> float:
    cell = _cell(results, client, concurrency, key)
    return float("nan") if cell is None else float(cell["cpu_us_median"])


def in_place_us(
    results: dict[str, Any],
    sdk: str,
    raw: str,
    concurrency: int,
    key: str = "throughput",
) -> float:
    """The SDK's own CPU µs per call in place: *sdk*'s minus *raw*'s.

    Round by round (the two ran in the same round of the interleaved run),
    the median over the rounds; from the medians for results written before
    the cells kept their rounds.
    """
    top, bottom = (
        _cell(results, sdk, concurrency, key),
        _cell(results, raw, concurrency, key),
    )
    if top is None or bottom is None:
        return float("nan")
    if "rounds" in top and "rounds" in bottom:
        raw_by_round = dict(zip(bottom["rounds"], bottom["cpu_us"], strict=True))
        differences = [
            us - raw_by_round[round_]
            for round_, us in zip(top["rounds"], top["cpu_us"], strict=True)
            if round_ in raw_by_round
        ]
        if differences:
            return float(statistics.median(differences))
    return float(top["cpu_us_median"] - bottom["cpu_us_median"])


def _sandbox_table(results: dict[str, Any]) -> list[str]:
    box = results["sandbox"]
    levels = sorted({cell["concurrency"] for cell in box["throughput"]})
    lines = [
        "| against the sandbox gateway (FakeGateway under uvicorn) | "
        + " | ".join(f"c={c}" for c in levels)
        + " |",
        "| --- |" + " ---: |" * len(levels),
    ]
    for client in ("sdk", "sdk-aiohttp"):
        cells = [
            f"{cell['median']:,.0f}"
            for c in levels
            for cell in box["throughput"]
            if cell["client"] == client and cell["concurrency"] == c
        ]
        lines.append(f"| {_label(results, client)} | " + " | ".join(cells) + " |")
    capacity = box["server_capacity"]
    cells = [f"{capacity.get(str(c)) or 0:,.0f}" for c in levels]
    lines.append(
        f"| *sandbox capacity ({capacity['tool']})* | " + " | ".join(cells) + " |"
    )
    return lines


def _ratio(top: float, bottom: float) -> str:
    if math.isnan(top) or math.isnan(bottom):
        return "n/a"
    if bottom == 0:
        return "∞ (none completed)" if top else "n/a"
    return f"{top / bottom:.2f}x"


def _failures(
    results: dict[str, Any], client: str, concurrency: int, key: str = "throughput"
) -> str:
    cell = _cell(results, client, concurrency, key)
    errors: dict[str, int] = (cell or {}).get("errors") or {}
    if cell is None or not errors:
        return ""
    kinds = ", ".join(f"{n:,} {kind}" for kind, n in errors.items())
    return f" ({kinds} of {cell['n'] * len(cell['rates']):,})"


def _header(title: str, levels: list[int], *extra: str) -> list[str]:
    columns = [f"c={c}" for c in levels] + list(extra)
    return [
        f"| {title} | " + " | ".join(columns) + " |",
        "| --- |" + " ---: |" * len(columns),
    ]


def _row(label: str, cells: list[str]) -> str:
    return f"| {label} | " + " | ".join(cells) + " |"


def _clients(results: dict[str, Any], key: str, clients: list[str]) -> list[str]:
    """The *clients* that have cells under *key* (older results lack some)."""
    present = {cell["client"] for cell in results.get(key) or []}
    return [client for client in clients if client in present]


def _throughput_table(
    results: dict[str, Any], key: str, levels: list[int], title: str
) -> list[str]:
    lines = _header(title, levels)
    for client in _clients(results, key, ALL_CLIENTS):
        cells = [
            f"{_rate(results, client, c, key):,.0f}{_failures(results, client, c, key)}"
            for c in levels
        ]
        lines.append(_row(_label(results, client), cells))
    return lines


def _ratio_table(
    results: dict[str, Any], key: str, levels: list[int], *, against_asyncio: bool
) -> list[str]:
    lines = _header("ratio (throughput)", levels)
    present = set(_clients(results, key, ALL_CLIENTS))
    for label, top, bottom in RATIOS:
        if {top, bottom} <= present:
            cells = [
                _ratio(_rate(results, top, c, key), _rate(results, bottom, c, key))
                for c in levels
            ]
            lines.append(_row(label, cells))
    if against_asyncio:
        for client in _clients(results, key, ALL_CLIENTS):
            cells = [
                _ratio(_rate(results, client, c, key), _rate(results, client, c))
                for c in levels
            ]
            lines.append(_row(f"{_label(results, client)}: uvloop / asyncio", cells))
    return lines


def _cpu_table(results: dict[str, Any], key: str, levels: list[int]) -> list[str]:
    lines = _header("client CPU per request (µs, median)", levels)
    for client in _clients(results, key, ALL_CLIENTS):
        cells = [f"{_cpu(results, client, c, key):,.0f}" for c in levels]
        lines.append(_row(_label(results, client), cells))
    return lines


def _in_place_table(results: dict[str, Any], key: str, levels: list[int]) -> list[str]:
    """The SDK's own work in place, per concurrency, and the row's median."""
    lines = _header("SDK's own work in place (µs/call)", levels, "median")
    present = set(_clients(results, key, ALL_CLIENTS))
    failed = beyond = False
    pool = _pool_size(results)
    for label, sdk, raw, pooled in IN_PLACE:
        if not {sdk, raw} <= present:
            continue
        cells, known = [], []
        for c in levels:
            us = in_place_us(results, sdk, raw, c, key)
            if math.isnan(us):
                cells.append("n/a")
                continue
            cell = f"{us:,.1f}"
            if _failures(results, sdk, c, key) or _failures(results, raw, c, key):
                cell, failed = cell + " \\*", True
            if pooled and c > pool:
                # Not the same exchange: shown, left out of the median.
                cell, beyond = f"({cell}) †", True
            else:
                known.append(us)
            cells.append(cell)
        cells.append(f"{statistics.median(known):,.1f}" if known else "n/a")
        lines.append(_row(label, cells))
    if len(lines) == 2:  # the header alone
        return []
    lines += [
        "",
        "Each cell: the SDK's CPU per request minus that of the raw client "
        "making the same exchange (same bytes, same server), both from the "
        "same round of the interleaved run; the median over the rounds."
        + (
            " The baseline rows subtract the same raw clients, of the same rounds."
            if key == "throughput" and "base-sdk" in present
            else ""
        )
        + (
            " \\* calls failed in this cell (see the throughput table)."
            if failed
            else ""
        )
        + (
            f" † more calls in flight than the SDK's pool has connections "
            f"({pool}): the raw client, "
            "having no limiter, queues them inside httpcore's pool, the SDK "
            "in its limiter; not the same exchange, so left out of the median."
            if beyond
            else ""
        ),
    ]
    return lines


def _uvloop_tables(results: dict[str, Any]) -> list[str]:
    """The uvloop cells: throughput, ratios, CPU, the SDK's own work."""
    cells = results.get("throughput_uvloop")
    if not cells:
        return []
    key = "throughput_uvloop"
    levels = sorted({cell["concurrency"] for cell in cells})
    loop = cells[0].get("loop_class", "uvloop")
    return [
        "",
        *_throughput_table(results, key, levels, f"client on uvloop ({loop})"),
        "",
        *_ratio_table(results, key, levels, against_asyncio=True),
        "",
        *_cpu_table(results, key, levels),
        "",
        *_in_place_table(results, key, levels),
    ]


def _idle_table(results: dict[str, Any]) -> list[str]:
    idle = results.get("idle")
    if not idle:
        return []
    n = next(iter(idle.values()))["n"]
    lines = [
        "",
        (
            "| idle clients (constructed in a running loop, never used) "
            f"| first client | each of {n} more |"
        ),
        "| --- | ---: | ---: |",
    ]
    for transport, label in IDLE_LABELS.items():
        if transport in idle:
            one = idle[transport]
            lines.append(
                f"| VexoraClient, {label} | {one['first_client_mb']:.2f} MB "
                f"| {one['per_extra_client_mb']:.2f} MB |"
            )
    return lines


def render(results: dict[str, Any]) -> str:
    """The markdown tables of *results*."""
    m = results["machine"]
    lines = [*_floor_table(results), ""]
    if results.get("plan_name") == "quick":
        lines += [
            (
                "A quick run (`--quick`): one round per cell and fewer calls; "
                "read it as a rough figure."
            ),
            "",
        ]
    lines += _throughput_table(results, "throughput", CONCURRENCY, "client")
    capacity = results["server_capacity"]
    cells = [
        f"{capacity[str(c)]:,.0f}" if capacity.get(str(c)) else "n/a"
        for c in CONCURRENCY
    ]
    lines.append(
        _row(f"*server capacity ({capacity['tool']}, raw load generator)*", cells)
    )
    if "sandbox" in results:
        lines += ["", *_sandbox_table(results)]
    lines += [
        "",
        *_ratio_table(results, "throughput", CONCURRENCY, against_asyncio=False),
    ]
    lines += ["", *_cpu_table(results, "throughput", CONCURRENCY)]
    in_place = _in_place_table(results, "throughput", CONCURRENCY)
    lines += ["", *in_place] if in_place else []
    lines += _uvloop_tables(results)
    cpu = results["cpu"]
    lines += ["", "| SDK step, no I/O | µs per call |", "| --- | ---: |"]
    lines += [f"| {name} | {us:.1f} |" for name, us in cpu["steps_us"].items()]
    lines.append(f"| **SDK's own CPU per call (sum)** | **{cpu['sdk_cpu_us']:.1f}** |")
    lines += [f"| {name} | {us:.1f} |" for name, us in cpu["whole_us"].items()]
    lines += [f"| {name} | {us:.2f} |" for name, us in cpu["codecs_us"].items()]
    lines += _observed_table(cpu.get("observed_us"))
    batch, gather, ledger = results["batch"], results["gather"], results["ledger"]
    load = ", ".join(f"{x:.2f}" for x in m["load_average_at_start"])
    pins = results["pinning"]
    versions = ", ".join(f"{name} {v}" for name, v in m["versions"].items())
    sources = [f"this SDK: {_source(results.get('sdk'))}"]
    if "baseline" in results:
        sources.append(f"baseline SDK: {_source(results['baseline'])}")
    lines += [
        "",
        "| memory | calls | peak RSS growth | rate | outcome |",
        "| --- | ---: | ---: | ---: | --- |",
        (
            f"| batch: {batch['api']} | {batch['n']:,} | "
            f"{batch['peak_growth_mb']:.1f} MB | {batch['rate']:,.0f}/s | "
            f"{_outcomes(batch['outcomes'])} |"
        ),
        (
            f"| of which the ledger: {ledger['n']:,} entries settled in a default "
            f"MemoryLedger, no I/O | {ledger['n']:,} | "
            f"{ledger['peak_growth_mb']:.1f} MB | | "
            f"{ledger['entries_kept']:,} entries kept, "
            f"{ledger['bytes_per_entry']:,.0f} bytes each |"
        ),
        *(
            (
                f"| gather{label}: {one['api']} | {one['n']:,} | "
                f"{one['peak_growth_mb']:.1f} MB | {one['rate']:,.0f}/s "
                f"({one['seconds']:,.1f} s) | "
                f"{one['ok']:,} ok, {one['errors']} errors, "
                f"{one['pool_timeouts']} PoolTimeout |"
            )
            for label, one in (
                ("", gather),
                (", baseline SDK", results.get("gather_baseline")),
            )
            if one
        ),
        *_idle_table(results),
        "",
        (
            f"Machine: {m['cpu']}, {m['cores']} cores, {m['os']}, "
            f"Python {m['python']}; load average at start {load}. Server "
            f"pinned to CPU {pins['server_cpu']}, clients to CPU "
            f"{pins['client_cpu']}. Run took {results['seconds']:.0f} s."
        ),
        "",
        f"Versions: {versions}. SDKs: {'; '.join(sources)}.",
        "",
    ]
    return "\n".join(lines)


def _pool_size(results: dict[str, Any]) -> int:
    """The connections of the SDK's httpx pool in *results*' run."""
    size: int = results.get("sdk_max_connections", bench_throughput.SDK_MAX_CONNECTIONS)
    return size


def _label(results: dict[str, Any], client: str) -> str:
    return LABELS[client].format(pool=_pool_size(results))


def _source(checkout: dict[str, str] | None) -> str:
    if not checkout:
        return "unknown"
    commit = checkout.get("commit")
    return f"`{checkout['path']}`" + (f" at {commit}" if commit else "")


def _observed_table(observed: dict[str, dict[str, float]] | None) -> list[str]:
    """The cost of each on_event hook: the whole call, and the hook alone."""
    if not observed:
        return []
    whole, alone = observed["whole_us"], observed["hook_alone_us"]
    bare = whole["no hook"]
    header = (
        "| create_payout by on_event hook, no I/O | µs per call | added "
        "| the hook alone, µs |"
    )
    lines = ["", header, "| --- | ---: | ---: | ---: |"]
    for name, us in whole.items():
        own = f"{alone[name]:.1f}" if name in alone else ""
        lines.append(f"| {name} | {us:.1f} | {us - bare:+.1f} | {own} |")
    return lines


def _outcomes(outcomes: dict[str, int]) -> str:
    return ", ".join(f"{count:,} {kind}" for kind, count in sorted(outcomes.items()))


#: The docs' content column (Furo: 46em, about 740 CSS px): the chart is
#: drawn that wide, so shown at its own size, where CHART_FONT points are
#: CHART_FONT * 96 / 72 px: 9 pt is 12 px (issue 20: at least 11 px).
CHART_WIDTH_IN = 7.7
CHART_FONT = 9.0


def chart(results: dict[str, Any], path: Path) -> None:
    """Throughput against concurrency, one line per client; uvloop below it."""
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "font.size": CHART_FONT,
            "legend.fontsize": CHART_FONT,
            "svg.hashsalt": "vexora-bench",
        }
    )
    uvloop = bool(results.get("throughput_uvloop"))
    figure, panels = plt.subplots(
        2 if uvloop else 1,
        1,
        figsize=(CHART_WIDTH_IN, 12.5 if uvloop else 6.8),
        height_ratios=(1, 0.8) if uvloop else None,
    )
    axes = panels[0] if uvloop else panels
    for client in _clients(results, "throughput", ALL_CLIENTS):
        rates = [_rate(results, client, c) for c in CONCURRENCY]
        (line,) = axes.plot(
            CONCURRENCY,
            rates,
            marker="o",
            color=COLORS[client],
            label=_label(results, client),
        )
        for c, rate in zip(CONCURRENCY, rates, strict=True):
            if rate == 0:  # a log axis cannot show it: say it
                axes.annotate(
                    "none completed",
                    xy=(c, min(r for r in rates if r > 0)),
                    xytext=(0, -14),
                    textcoords="offset points",
                    ha="right",
                    color=line.get_color(),
                )
    capacity = results["server_capacity"]
    axes.plot(
        CONCURRENCY,
        [capacity.get(str(c)) or float("nan") for c in CONCURRENCY],
        linestyle="--",
        color="grey",
        label=f"server capacity ({capacity['tool']})",
    )
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xticks(CONCURRENCY, [str(c) for c in CONCURRENCY])
    axes.set_xlabel("concurrent calls")
    axes.set_ylabel("requests per second (log)")
    axes.set_title("Payouts per second against a loopback gateway")
    axes.grid(visible=True, which="both", alpha=0.3)
    # One column below the plot: the labels are long, the page is narrow.
    axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=1)
    if uvloop:
        _uvloop_panel(results, panels[1])
    figure.tight_layout()
    figure.savefig(path, metadata={"Date": None})
    plt.close(figure)


def _uvloop_panel(results: dict[str, Any], axes: Any) -> None:
    """Bars: each client on asyncio (plain) and on uvloop (hatched)."""
    from matplotlib.patches import Patch

    key = "throughput_uvloop"
    levels = sorted({cell["concurrency"] for cell in results[key]})
    clients = _clients(results, key, ALL_CLIENTS)
    width = 0.8 / (2 * len(clients))
    for group, c in enumerate(levels):
        for index, client in enumerate(clients):
            for offset, (loop_key, hatch, alpha) in enumerate(
                (("throughput", "", 1.0), (key, "//", 0.55))
            ):
                slot = 2 * index + offset - len(clients) + 0.5
                axes.bar(
                    group + slot * width,
                    _rate(results, client, c, loop_key),
                    width,
                    color=COLORS[client],
                    alpha=alpha,
                    hatch=hatch,
                    edgecolor="black",
                    linewidth=0.4,
                )
    axes.set_xticks(range(len(levels)), [f"{c} concurrent calls" for c in levels])
    axes.set_ylabel("requests per second")
    axes.set_title("The client on asyncio's loop and on uvloop's")
    axes.grid(visible=True, axis="y", alpha=0.3)
    handles = [
        Patch(facecolor=COLORS[client], label=_label(results, client))
        for client in clients
    ]
    handles += [
        Patch(facecolor="white", edgecolor="black", label="asyncio (plain)"),
        Patch(
            facecolor="white", edgecolor="black", hatch="//", label="uvloop (hatched)"
        ),
    ]
    axes.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2)


if __name__ == "__main__":
    main()
