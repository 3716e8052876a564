"""Benchmark harness: this service against the course's way and a ceiling, in one run.

    python -m bench.run                 # full run: 15 rounds of 3 s slices, docs/benchmarks.*
    python -m bench.run --smoke         # 1 s per server: checks every server answers correctly

Every server gets the same workers, connections and duration, driven by wrk on loopback with
the course's standard customer. Ratios are against baselines measured in the same run, because
the machine is shared and absolute numbers drift.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench.servers import Server, gunicorn_command, running, wait_for_workers
from churn.config import PROJECT_ROOT
from churn.features import EXAMPLE_CUSTOMER

BENCH = PROJECT_ROOT / "bench"
LUA = BENCH / "post.lua"
DOCS = PROJECT_ROOT / "docs"


@dataclass(frozen=True)
class Contender:
    name: str
    command: list[str]
    env: dict[str, str]
    workers: int
    checks_probability: bool = True
    cwd: Path = PROJECT_ROOT


@dataclass
class Result:
    contender: Contender
    runs: list[dict] = field(default_factory=list)
    cold_start_s: float = math.nan
    rss_mib: list[float] = field(default_factory=list)

    def median(self, key: str) -> float:
        return statistics.median(run[key] for run in self.runs)

    @property
    def rps(self) -> float:
        return self.median("rps")

    @property
    def errors(self) -> int:
        return sum(run["errors"] for run in self.runs)


def contenders(workers: int) -> list[Contender]:
    bind = ["--bind", "127.0.0.1:{port}"]
    ours = {"WEB_CONCURRENCY": str(workers)}
    # The course's way runs from a folder without a gunicorn.conf.py: gunicorn reads one from
    # the working directory when there is one, and ours there would change the baseline's
    # workers, worker class and logging. WEB_CONCURRENCY is gunicorn's default worker count.
    course = {"MODEL_FILE": str(PROJECT_ROOT / "model_C=1.0.bin")}
    return [
        Contender("churn-serving", gunicorn_command(), ours, workers),
        Contender(
            f"baseline ({workers} workers)",
            [sys.executable, "-m", "gunicorn", *bind, "-w", str(workers), "baseline_app:app"],
            course,
            workers,
            cwd=BENCH,
        ),
        Contender(
            "baseline (course command, 1 worker)",
            [sys.executable, "-m", "gunicorn", *bind, "baseline_app:app"],
            {**course, "WEB_CONCURRENCY": "1"},
            1,
            cwd=BENCH,
        ),
        Contender(
            "churn-serving, sync workers",
            gunicorn_command(),
            {**ours, "GUNICORN_WORKER_CLASS": "sync"},
            workers,
        ),
        Contender(
            "ceiling (parse + constant)",
            gunicorn_command("bench.ceiling_app:app"),
            ours,
            workers,
            checks_probability=False,
        ),
    ]


def require_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk is None:
        sys.exit("wrk is not installed: `make system-deps` (or `apt-get install wrk`) installs it.")
    return wrk


def reference_probability() -> float:
    import pickle

    with open(PROJECT_ROOT / "model_C=1.0.bin", "rb") as handle:
        dv, model = pickle.load(handle)
    return float(model.predict_proba(dv.transform([EXAMPLE_CUSTOMER]))[0, 1])


def post(url: str, body: bytes) -> tuple[int, dict | list, dict[str, str]]:
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, json.loads(response.read()), dict(response.headers)


def check_answer(server: Server, contender: Contender, expected: float) -> None:
    status, body, _ = post(server.url + "/predict", json.dumps(EXAMPLE_CUSTOMER).encode())
    if status != 200 or not isinstance(body, dict) or "churn" not in body:
        raise AssertionError(f"{contender.name}: bad answer {status} {body}")
    if contender.checks_probability and abs(body["churn_probability"] - expected) > 1e-9:
        raise AssertionError(f"{contender.name}: probability {body['churn_probability']}")


def run_wrk(wrk: str, url: str, body_file: Path, seconds: float, connections: int) -> dict:
    command = [
        wrk,
        "-t2",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "-s",
        str(LUA),
        url,
        "--",
        str(body_file),
    ]
    output = subprocess.run(command, capture_output=True, text=True, check=True, timeout=600)
    summary = json.loads(output.stdout.strip().splitlines()[-1])
    error_kinds = {
        k: v for k, v in summary.items() if (k.endswith("_errors") or k == "timeouts") and v
    }
    return {
        "rps": summary["requests"] / (summary["duration_us"] / 1e6),
        "p50_ms": summary["p50_us"] / 1000,
        "p99_ms": summary["p99_us"] / 1000,
        "errors": sum(error_kinds.values()),
        "error_kinds": error_kinds,
        "requests": summary["requests"],
    }


def worker_status(master_pid: int) -> dict[int, dict[str, str]]:
    """The /proc status fields of each child process of ``master_pid``, by pid."""
    workers = {}
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(
                line.split(":", 1) for line in status.read_text().splitlines() if ":" in line
            )
        except OSError:
            continue  # the process ended while being read
        if int(fields.get("PPid", "0")) == master_pid:
            workers[int(status.parent.name)] = fields
    return workers


def worker_rss_mib(master_pid: int) -> list[float]:
    """Resident memory of each child process of ``master_pid``."""
    sizes = [
        int(fields["VmRSS"].split()[0]) / 1024
        for fields in worker_status(master_pid).values()
        if "VmRSS" in fields
    ]
    return sorted(sizes)


def worker_cpu_seconds(master_pid: int) -> dict[int, float]:
    """CPU time (user + system) each worker of ``master_pid`` has used so far."""
    ticks_per_second = os.sysconf("SC_CLK_TCK")
    cpu = {}
    for pid in worker_status(master_pid):
        with contextlib.suppress(OSError):
            # Fields after the parenthesised command name; utime and stime are the 12th and 13th.
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            cpu[pid] = (int(fields[11]) + int(fields[12])) / ticks_per_second
    return cpu


def had_idle_worker(before: dict[int, float], after: dict[int, float]) -> bool:
    """Whether one worker did (almost) nothing while another was busy during a slice."""
    used = [after[pid] - before[pid] for pid in after if pid in before]
    return len(used) > 1 and min(used) < 0.1 * max(used)


def batch_server_time_ms(server: Server, size: int = 1000, repeats: int = 5) -> float:
    body = json.dumps([EXAMPLE_CUSTOMER] * size).encode()
    times = []
    for _ in range(repeats):
        status, answer, headers = post(server.url + "/predict", body)
        assert status == 200 and len(answer) == size
        timing = headers.get("Server-Timing", "")
        times.append(float(timing.split("dur=")[1]) if "dur=" in timing else math.nan)
    return statistics.median(times)


def start_all(results: list[Result], work: Path, stack: contextlib.ExitStack) -> list[Server]:
    """Start every server once (timing its cold start); they idle while others are measured."""
    servers = []
    for result in results:
        contender = result.contender
        started = time.monotonic()
        server = stack.enter_context(
            running(
                contender.command,
                work,
                env=contender.env,
                cwd=contender.cwd,
                port_template="{port}",
            )
        )
        result.cold_start_s = time.monotonic() - started
        servers.append(server)
    for result, server in zip(results, servers, strict=True):
        check_worker_count(server, result.contender)
    return servers


def check_worker_count(server: Server, contender: Contender, timeout: float = 20) -> None:
    """Fail unless ``contender`` runs the workers it claims, so comparisons are at equal workers."""
    try:
        wait_for_workers(server.process.pid, contender.workers, timeout)
    except TimeoutError as error:
        raise AssertionError(f"{contender.name}: {error}") from None


def measure(args: argparse.Namespace, wrk: str, work: Path) -> tuple[list[Result], dict]:
    """Rounds of short wrk slices, one per server in turn, all servers up throughout.

    The machine is shared: its speed drifts by 2x over tens of seconds. Interleaving short
    slices puts every server through the same slow and fast phases, so the medians compare.
    """
    body_file = work / "customer.json"
    body_file.write_text(json.dumps(EXAMPLE_CUSTOMER))
    expected = reference_probability()
    results = [Result(c) for c in contenders(args.workers)]
    extra: dict = {}
    with contextlib.ExitStack() as stack:
        servers = start_all(results, work, stack)
        for round_number in range(1, args.repeats + 1):
            for result, server in zip(results, servers, strict=True):
                check_answer(server, result.contender, expected)
                url = server.url + "/predict"
                cpu_before = worker_cpu_seconds(server.process.pid)
                run = run_wrk(wrk, url, body_file, args.seconds, args.connections)
                run["idle_worker"] = had_idle_worker(
                    cpu_before, worker_cpu_seconds(server.process.pid)
                )
                result.runs.append(run)
            print(
                f"  round {round_number}: "
                + ", ".join(f"{r.runs[-1]['rps']:,.0f}" for r in results)
            )
        for result, server in zip(results, servers, strict=True):
            check_answer(server, result.contender, expected)
            result.rss_mib = worker_rss_mib(server.process.pid)
        extra["batch_1000_server_ms"] = batch_server_time_ms(servers[0])
    return results, extra


def machine_facts() -> dict[str, str]:
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("\n")[
        0
    ]
    import gunicorn

    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": str(os.cpu_count()),
        "cpu": _cpu_model(),
        "python": platform.python_version(),
        "gunicorn": gunicorn.__version__,
        "flask": importlib.metadata.version("flask"),
        "wrk": wrk_version.strip(),
    }


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def ours_baseline_ceiling(results: list[Result]) -> tuple[Result, Result, Result]:
    """This service, the baseline at equal workers and the ceiling, as ``contenders`` lists them."""
    by_name = {r.contender.name.split(" (")[0]: r for r in results}
    return by_name["churn-serving"], results[1], by_name["ceiling"]


def table(results: list[Result]) -> str:
    ours, baseline, ceiling = ours_baseline_ceiling(results)
    lines = [
        "| server | req/s (median) | p50 ms | p99 ms | errors | cold start s | RSS/worker MiB "
        "| slices with an idle worker |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        rss = f"{statistics.mean(r.rss_mib):.0f}" if r.rss_mib else "n/a"
        idle = f"{sum(run['idle_worker'] for run in r.runs)}/{len(r.runs)}"
        lines.append(
            f"| {r.contender.name} | {r.rps:,.0f} | {r.median('p50_ms'):.2f} | "
            f"{r.median('p99_ms'):.2f} | {r.errors} | {r.cold_start_s:.2f} | {rss} "
            f"| {idle if r.contender.workers > 1 else 'n/a (1 worker)'} |"
        )
    lines += [
        "",
        f"- ours / baseline at equal workers: **{ours.rps / baseline.rps:.2f}×**",
        f"- ours / ceiling: **{ours.rps / ceiling.rps:.0%}**",
    ]
    return "\n".join(lines)


def targets(results: list[Result], extra: dict) -> str:
    """The performance issue's targets for whole-service numbers, each with its verdict."""
    ours, baseline, ceiling = ours_baseline_ceiling(results)
    rows = [
        (
            "throughput ≥ 2× the baseline",
            f"{ours.rps / baseline.rps:.2f}×",
            ours.rps >= 2 * baseline.rps,
        ),
        (
            "throughput ≥ 85% of the ceiling",
            f"{ours.rps / ceiling.rps:.0%}",
            ours.rps >= 0.85 * ceiling.rps,
        ),
        ("p99 ≤ 10 ms", f"{ours.median('p99_ms'):.2f} ms", ours.median("p99_ms") <= 10),
        ("no errors", str(ours.errors), ours.errors == 0),
        (
            "1,000-customer batch ≤ 20 ms server time",
            f"{extra['batch_1000_server_ms']:.1f} ms",
            extra["batch_1000_server_ms"] <= 20,
        ),
        ("cold start ≤ 2 s", f"{ours.cold_start_s:.2f} s", ours.cold_start_s <= 2),
    ]
    lines = ["| target | this run | met |", "| --- | ---: | --- |"]
    lines += [f"| {name} | {value} | {'yes' if met else '**no**'} |" for name, value, met in rows]
    return "\n".join(lines)


def chart(results: list[Result], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    names = [r.contender.name for r in results]
    rps = [r.rps for r in results]
    figure, axis = plt.subplots(figsize=(8, 3.2))
    colors = ["#2a7", "#bbb", "#bbb", "#8cb", "#777"][: len(names)]
    bars = axis.barh(names[::-1], rps[::-1], color=colors[::-1])
    axis.bar_label(bars, labels=[f"{v:,.0f}" for v in rps[::-1]], padding=4)
    axis.set_xlabel("requests per second (median of runs, higher is better)")
    axis.set_title("POST /predict, the course's customer, wrk on loopback")
    axis.set_xlim(0, max(rps) * 1.2)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="1 s per server, 1 run, no report")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of one wrk slice")
    parser.add_argument("--repeats", type=int, default=15, help="rounds of slices")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--output", type=Path, default=DOCS, help="folder for benchmarks.md/png")
    args = parser.parse_args(argv)
    if args.smoke:
        args.seconds, args.repeats = 1.0, 1
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wrk = require_wrk()
    with tempfile.TemporaryDirectory() as tmp:
        results, extra = measure(args, wrk, Path(tmp))
    report = table(results)
    print(report)
    print(f"- 1,000-customer batch, server time: {extra['batch_1000_server_ms']:.1f} ms")
    print(targets(results, extra))
    failed = [r.contender.name for r in results if r.errors or not r.runs]
    if failed:
        print(f"error: these servers returned errors under load: {failed}", file=sys.stderr)
        return 1
    if not args.smoke:
        write_report(args, results, extra, report)
    return 0


def write_report(args: argparse.Namespace, results: list[Result], extra: dict, report: str) -> None:
    args.output.mkdir(parents=True, exist_ok=True)
    chart(results, args.output / "benchmarks.png")
    facts = machine_facts()
    header = "\n".join(f"- {key}: {value}" for key, value in facts.items())
    settings = (
        f"{args.workers} workers each (the course command: 1), {args.connections} connections, "
        f"{args.repeats} rounds of {args.seconds:g} s wrk slices (servers interleaved; medians), "
        "wrk -t2 on the same machine"
    )
    text = (
        "# Benchmarks\n\nMeasured by `make bench` (`python -m bench.run`); this file is rewritten"
        " by each full run. Hand-written notes live in `docs/performance.md`.\n\n"
        f"{header}\n- settings: {settings}\n\n![req/s](benchmarks.png)\n\n{report}\n"
        f"- 1,000-customer batch request, server time (Server-Timing): "
        f"{extra['batch_1000_server_ms']:.1f} ms\n\n"
        "## Targets\n\nThe performance issue's targets for the whole service, judged on this run"
        " (the scorer's own targets are in `make bench-micro`, docs/performance.md).\n\n"
        f"{targets(results, extra)}\n"
    )
    (args.output / "benchmarks.md").write_text(text)
    print(f"wrote {args.output / 'benchmarks.md'} and benchmarks.png")


if __name__ == "__main__":
    sys.exit(main())
