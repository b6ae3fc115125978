"""Run the whole benchmark and write its table and chart (``nox -s bench``).

Starts the loopback server in its own process pinned to one core, measures
its capacity with a raw load generator (``wrk`` when installed, else
:mod:`bench_loadgen`), then runs every cell of the throughput table in a
fresh client process pinned to the other core, the per-call CPU timings and
the two memory scenarios; writes ``docs/performance/results.md``,
``results.json`` and ``throughput.png``.

``--quick`` runs a smaller version (a smoke test of the suite itself).
"""

from __future__ import annotations

import argparse
import contextlib
import json
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
CLIENTS = ["sdk", "httpx", "sdk-aiohttp", "aiohttp"]
LABELS = {
    "sdk": "SDK create_payout (default, httpx)",
    "httpx": "raw httpx.AsyncClient (naive: shared, default limits)",
    "sdk-aiohttp": 'SDK create_payout (transport="aiohttp")',
    "aiohttp": "raw aiohttp.ClientSession",
}
CONCURRENCY = [1, 10, 100, 1000]
FULL = {
    "n": {1: 1000, 10: 2000, 100: 2000, 1000: 2000},
    "repeats": 3,
    # The naive client at 1,000 fails every call after burning ~25 ms of CPU
    # on each; one round of 1,000 shows that without eating the budget.
    "slow": {"httpx": {1000: (1000, 1)}},
    "seconds": 4,
    "sandbox_concurrency": [10, 100],
    "batch": 100_000,
    "ledger": 100_000,
    "gather": 50_000,
}
QUICK = {
    "n": {1: 100, 10: 200, 100: 300, 1000: 1000},
    "repeats": 1,
    "slow": {},
    "seconds": 2,
    "sandbox_concurrency": [10],
    "batch": 2_000,
    "ledger": 2_000,
    "gather": 2_000,
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


def run_json(script: str, *args: object, timeout: float = 600) -> dict[str, Any]:
    """Run one of the bench scripts; return the JSON object it printed."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(HERE)])}
    out = subprocess.run(  # noqa: S603 - our own scripts
        [sys.executable, str(HERE / script), *map(str, args)],
        check=True,
        capture_output=True,
        env=env,
        timeout=timeout,
    ).stdout.decode()
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
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
                "bench_loadgen.py", url, concurrency, seconds, client_cpu or ""
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


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def main() -> None:
    """Run everything; write the results."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--render",
        action="store_true",
        help="only rewrite the tables and chart from results.json",
    )
    options = parser.parse_args()
    if options.render:
        write(json.loads((OUT / "results.json").read_text(encoding="utf-8")), OUT)
        return
    plan: dict[str, Any] = QUICK if options.quick else FULL
    OUT.mkdir(parents=True, exist_ok=True)
    server_cpu, client_cpu = cpus()
    pin = [] if client_cpu is None else [client_cpu]
    started = time.monotonic()
    results: dict[str, Any] = {"machine": machine(), "plan": plan}
    results["pinning"] = {"server_cpu": server_cpu, "client_cpu": client_cpu}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server("raw", port, server_cpu)
    try:
        print("server capacity...", flush=True)  # noqa: T201 - progress
        results["server_capacity"] = server_capacity(url, client_cpu, plan["seconds"])
        cells: list[dict[str, Any]] = []
        for concurrency in CONCURRENCY:
            for client in CLIENTS:
                n, repeats = (
                    plan["slow"]
                    .get(client, {})
                    .get(concurrency, (plan["n"][concurrency], plan["repeats"]))
                )
                print(f"{client} at {concurrency}...", flush=True)  # noqa: T201
                cell = run_json(
                    "bench_throughput.py", client, concurrency, n, repeats, url, *pin
                )
                cell["median"] = statistics.median(cell["rates"])
                cell["cpu_us_median"] = statistics.median(cell["cpu_us"])
                cells.append(cell)
        results["throughput"] = cells
        print("per-call CPU...", flush=True)  # noqa: T201
        results["cpu"] = run_json("bench_cpu.py", *pin)
        for scenario in ("batch", "ledger", "gather"):
            print(f"memory: {scenario}...", flush=True)  # noqa: T201
            results[scenario] = run_json(
                "bench_memory.py", scenario, plan[scenario], url, *pin
            )
    finally:
        server.terminate()
        server.wait(10)
    print("against the sandbox gateway...", flush=True)  # noqa: T201
    results["sandbox"] = sandbox(plan, server_cpu, pin)
    results["seconds"] = time.monotonic() - started
    if not options.quick:
        (OUT / "results.json").write_text(
            json.dumps(results, indent=2) + "\n", encoding="utf-8"
        )
    target = OUT if not options.quick else OUT / "quick"
    target.mkdir(exist_ok=True)
    write(results, target)
    print(render(results))  # noqa: T201 - the summary
    print(targets(results))  # noqa: T201


def write(results: dict[str, Any], target: Path) -> None:
    """Write the tables and the chart of *results* into *target*."""
    (target / "results.md").write_text(render(results), encoding="utf-8")
    (target / "targets.md").write_text(targets(results), encoding="utf-8")
    chart(results, target / "throughput.png")


def targets(results: dict[str, Any]) -> str:
    """The issue's targets against this run: met or not, by how much."""

    def verdict(met: bool) -> str:
        return "met" if met else "**not met**"

    rows = []
    for c in CONCURRENCY:
        sdk, raw = _rate(results, "sdk", c), _rate(results, "httpx", c)
        ratio = sdk / raw if raw else float("inf")
        rows.append(
            (
                f"SDK >= 0.95x raw httpx at c={c}",
                _ratio(sdk, raw),
                verdict(ratio >= 0.95),
            )
        )
    for c in (10, 100):
        sdk, raw = _rate(results, "sdk-aiohttp", c), _rate(results, "aiohttp", c)
        rows.append(
            (
                f"SDK (aiohttp) >= 0.9x raw aiohttp at c={c}",
                _ratio(sdk, raw),
                verdict(sdk >= 0.9 * raw),
            )
        )
    for c in (100, 1000):
        sdk, raw = _rate(results, "sdk", c), _rate(results, "httpx", c)
        rows.append(
            (
                f"SDK default beats naive httpx at c={c}",
                _ratio(sdk, raw),
                verdict(sdk > 2 * raw),
            )
        )
    batch, gather = results["batch"], results["gather"]
    rows.append(
        (
            f"{batch['n']:,}-payout batch: peak RSS growth < 50 MB",
            f"{batch['peak_growth_mb']:.1f} MB",
            verdict(batch["peak_growth_mb"] < 50),
        )
    )
    rows.append(
        (
            f"{gather['n']:,}-call gather completes, 0 PoolTimeout",
            f"{gather['ok']:,} ok, {gather['pool_timeouts']} PoolTimeout",
            verdict(gather["ok"] == gather["n"] and not gather["pool_timeouts"]),
        )
    )
    cpu = results["cpu"]["sdk_cpu_us"]
    rows.append(("SDK's own CPU per call < 25 µs", f"{cpu:.1f} µs", verdict(cpu < 25)))
    lines = ["| target | this run | |", "| --- | ---: | --- |"]
    lines += [f"| {name} | {value} | {met} |" for name, value, met in rows]
    return "\n".join(lines) + "\n"


def _rate(results: dict[str, Any], client: str, concurrency: int) -> float:
    for cell in results["throughput"]:
        if cell["client"] == client and cell["concurrency"] == concurrency:
            rate: float = cell["median"]
            return rate
    return float("nan")


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
        lines.append(f"| {LABELS[client]} | " + " | ".join(cells) + " |")
    capacity = box["server_capacity"]
    cells = [f"{capacity.get(str(c)) or 0:,.0f}" for c in levels]
    lines.append(
        f"| *sandbox capacity ({capacity['tool']})* | " + " | ".join(cells) + " |"
    )
    return lines


def _ratio(top: float, bottom: float) -> str:
    if bottom == 0:
        return "∞ (none completed)" if top else "n/a"
    return f"{top / bottom:.2f}x"


def _failures(results: dict[str, Any], client: str, concurrency: int) -> str:
    for cell in results["throughput"]:
        if cell["client"] == client and cell["concurrency"] == concurrency:
            errors: dict[str, int] = cell.get("errors") or {}
            if errors:
                kinds = ", ".join(f"{n:,} {kind}" for kind, n in errors.items())
                return f" ({kinds} of {cell['n'] * len(cell['rates']):,})"
    return ""


def _cpu(results: dict[str, Any], client: str, concurrency: int) -> float:
    for cell in results["throughput"]:
        if cell["client"] == client and cell["concurrency"] == concurrency:
            cpu: float = cell["cpu_us_median"]
            return cpu
    return float("nan")


def render(results: dict[str, Any]) -> str:
    """The markdown tables of *results*."""
    m = results["machine"]
    lines = [
        "| client | " + " | ".join(f"c={c}" for c in CONCURRENCY) + " |",
        "| --- |" + " ---: |" * len(CONCURRENCY),
    ]
    for client in CLIENTS:
        cells = [
            f"{_rate(results, client, c):,.0f}{_failures(results, client, c)}"
            for c in CONCURRENCY
        ]
        lines.append(f"| {LABELS[client]} | " + " | ".join(cells) + " |")
    capacity = results["server_capacity"]
    cells = [
        f"{capacity[str(c)]:,.0f}" if capacity.get(str(c)) else "n/a"
        for c in CONCURRENCY
    ]
    lines.append(
        f"| *server capacity ({capacity['tool']}, raw load generator)* | "
        + " | ".join(cells)
        + " |"
    )
    if "sandbox" in results:
        lines += ["", *_sandbox_table(results)]
    ratios = [
        ("SDK / raw httpx", "sdk", "httpx"),
        ("SDK (aiohttp transport) / raw aiohttp", "sdk-aiohttp", "aiohttp"),
        ("SDK (aiohttp transport) / SDK (default)", "sdk-aiohttp", "sdk"),
    ]
    lines += [
        "",
        "| ratio (throughput) | " + " | ".join(f"c={c}" for c in CONCURRENCY) + " |",
        "| --- |" + " ---: |" * len(CONCURRENCY),
    ]
    for label, top, bottom in ratios:
        cells = [
            _ratio(_rate(results, top, c), _rate(results, bottom, c))
            for c in CONCURRENCY
        ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| client CPU per request (µs, median) | "
        + " | ".join(f"c={c}" for c in CONCURRENCY)
        + " |",
        "| --- |" + " ---: |" * len(CONCURRENCY),
    ]
    for client in CLIENTS:
        cells = [f"{_cpu(results, client, c):,.0f}" for c in CONCURRENCY]
        lines.append(f"| {LABELS[client]} | " + " | ".join(cells) + " |")
    cpu = results["cpu"]
    lines += ["", "| SDK step, no I/O | µs per call |", "| --- | ---: |"]
    lines += [f"| {name} | {us:.1f} |" for name, us in cpu["steps_us"].items()]
    lines.append(f"| **SDK's own CPU per call (sum)** | **{cpu['sdk_cpu_us']:.1f}** |")
    lines += [f"| {name} | {us:.1f} |" for name, us in cpu["whole_us"].items()]
    lines += [f"| {name} | {us:.2f} |" for name, us in cpu["codecs_us"].items()]
    lines += _observed_table(cpu.get("observed_us"))
    batch, gather = results["batch"], results["gather"]
    batch, gather, ledger = results["batch"], results["gather"], results["ledger"]
    load = ", ".join(f"{x:.2f}" for x in m["load_average_at_start"])
    pins = results["pinning"]
    versions = ", ".join(f"{name} {v}" for name, v in m["versions"].items())
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
        (
            f"| gather: {gather['api']} | {gather['n']:,} | "
            f"{gather['peak_growth_mb']:.1f} MB | {gather['rate']:,.0f}/s | "
            f"{gather['ok']:,} ok, {gather['errors']} errors, "
            f"{gather['pool_timeouts']} PoolTimeout |"
        ),
        "",
        (
            f"Machine: {m['cpu']}, {m['cores']} cores, {m['os']}, "
            f"Python {m['python']}; load average at start {load}. Server "
            f"pinned to CPU {pins['server_cpu']}, clients to CPU "
            f"{pins['client_cpu']}. Run took {results['seconds']:.0f} s."
        ),
        "",
        f"Versions: {versions}.",
        "",
    ]
    return "\n".join(lines)


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


def chart(results: dict[str, Any], path: Path) -> None:
    """Throughput against concurrency, one line per client."""
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 5.6), dpi=110)
    for client in CLIENTS:
        rates = [_rate(results, client, c) for c in CONCURRENCY]
        (line,) = axes.plot(CONCURRENCY, rates, marker="o", label=LABELS[client])
        for c, rate in zip(CONCURRENCY, rates, strict=True):
            if rate == 0:  # a log axis cannot show it: say it
                axes.annotate(
                    "none completed",
                    xy=(c, min(r for r in rates if r > 0)),
                    xytext=(0, -18),
                    textcoords="offset points",
                    ha="center",
                    color=line.get_color(),
                    fontsize="small",
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
    axes.legend(
        fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2
    )
    figure.tight_layout()
    figure.savefig(path)


if __name__ == "__main__":
    main()
