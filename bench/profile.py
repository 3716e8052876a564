"""Where a loaded worker's time goes: py-spy on one production worker under wrk.

    python -m bench.profile [--seconds 10] [--connections 8] [--app predict:app] [--top 25]

Starts the service with gunicorn.conf.py and one worker and drives /predict with wrk. First it
measures, without a profiler attached, the worker's CPU time per request and the time /predict's
own code took (its latency histogram in /metrics). Then it samples the worker with py-spy (500 Hz)
and prints the share of samples spent in each part of a request and the functions with the most
samples of their own. docs/performance.md quotes it.

The worker runs one thread by default: py-spy samples every thread that is not idle, so with two
threads one thread's system calls overlap the other's Python and the shares stop adding up to
the time a request takes. ``--threads 2`` profiles the production setting anyway.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path

from bench.load import require_wrk, run_wrk, worker_cpu_seconds, worker_status
from bench.servers import gunicorn_command, running
from churn.features import EXAMPLE_CUSTOMER

# Parts of a request, each found by a frame in the sampled stack (first match wins).
PARTS = [
    ("our /predict app (parse, validate, score, metrics)", "churn/endpoint.py"),
    ("Flask routing (routes other than /predict)", "full_dispatch_request"),
    ("response headers and dispatch (app.py)", "churn/app.py"),
    ("access log", "JsonLogger.access"),
    ("sending the response", "write (gunicorn/http/wsgi.py"),
    ("parsing the request", "gunicorn/http/"),
]


def require_py_spy() -> str:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(py_spy).exists():
        sys.exit("py-spy is not installed: `make env` installs the dev environment with it.")
    return py_spy


def record(py_spy: str, pid: int, seconds: float, output: Path) -> None:
    command = [py_spy, "record", "--pid", str(pid), "--duration", str(round(seconds))]
    command += ["--rate", "500", "--format", "raw", "--output", str(output)]
    subprocess.run(command, check=True, capture_output=True, timeout=seconds + 60)


def read_stacks(path: Path) -> Counter[tuple[str, ...]]:
    """py-spy's raw (collapsed) format: ``frame;frame;... count`` per line."""
    stacks: Counter[tuple[str, ...]] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack:
            stacks[tuple(stack.split(";"))] += int(count)
    return stacks


def part_of(stack: tuple[str, ...]) -> str:
    for name, marker in PARTS:
        if any(marker in frame for frame in stack):
            return name
    return "gunicorn's worker loop (poll, accept, thread hand-off, keep-alive)"


def report(stacks: Counter[tuple[str, ...]], top: int) -> str:
    total = sum(stacks.values()) or 1
    parts: Counter[str] = Counter()
    own: Counter[str] = Counter()
    for stack, count in stacks.items():
        parts[part_of(stack)] += count
        own[stack[-1]] += count
    lines = ["| part of a request | share of samples |", "| --- | ---: |"]
    lines += [f"| {name} | {count / total:.1%} |" for name, count in parts.most_common()]
    lines += ["", "| function (own samples) | share |", "| --- | ---: |"]
    lines += [f"| `{frame}` | {count / total:.1%} |" for frame, count in own.most_common(top)]
    return "\n".join(lines)


def app_seconds(metrics_url: str) -> tuple[float, float]:
    """(requests, seconds) /predict spent in the app so far, from its latency histogram."""
    with urllib.request.urlopen(metrics_url, timeout=10) as response:
        text = response.read().decode()
    values = {}
    for line in text.splitlines():
        for key in ("_sum", "_count"):
            if line.startswith(f'churn_http_request_duration_seconds{key}{{route="/predict"}}'):
                values[key] = float(line.rsplit(" ", 1)[1])
    return values.get("_count", 0.0), values.get("_sum", 0.0)


def cpu_split(before: tuple, after: tuple) -> str:
    """Worker CPU per request against the time /predict's own code took, both measured."""
    (cpu_0, (count_0, app_0)), (cpu_1, (count_1, app_1)) = before, after
    requests = count_1 - count_0
    cpu_us = (cpu_1 - cpu_0) / requests * 1e6
    app_us = (app_1 - app_0) / requests * 1e6
    return (
        f"worker CPU per request: {cpu_us:.0f} µs, of which /predict's own code "
        f"(read, parse, validate, score, count): {app_us:.0f} µs ({app_us / cpu_us:.0%}); "
        f"the rest is gunicorn, the response headers, the access log and the kernel"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the recording")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1, help="threads in the worker")
    parser.add_argument("--app", default="predict:app", help="WSGI app to profile")
    parser.add_argument("--top", type=int, default=25, help="functions to list")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wrk, py_spy = require_wrk(), require_py_spy()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        body_file = work / "customer.json"
        body_file.write_text(json.dumps(EXAMPLE_CUSTOMER))
        env = {"WEB_CONCURRENCY": "1", "GUNICORN_THREADS": str(args.threads)}
        with running(gunicorn_command(args.app), work, env=env) as server:
            (worker,) = worker_status(server.process.pid)
            # Load starts first and outlasts the recording, so every sample is of a busy worker.
            loads: list[dict] = []
            url = server.url + "/predict"
            load = threading.Thread(
                target=lambda: loads.append(
                    run_wrk(wrk, url, body_file, args.seconds * 1.5 + 3, args.connections)
                )
            )
            load.start()
            time.sleep(1)
            metrics_url = server.url + "/metrics"
            before = (worker_cpu_seconds(server.process.pid)[worker], app_seconds(metrics_url))
            time.sleep(args.seconds / 2)  # measured without py-spy, which slows the worker
            after = (worker_cpu_seconds(server.process.pid)[worker], app_seconds(metrics_url))
            record(py_spy, worker, args.seconds, work / "profile.txt")
            load.join()
        if not loads or loads[0]["errors"]:
            sys.exit(f"the load failed or saw errors: {loads}")
        print(
            f"load: {loads[0]['rps']:,.0f} req/s on one worker with {args.threads} thread(s), "
            f"{args.connections} connections"
        )
        print(cpu_split(before, after))
        print(report(read_stacks(work / "profile.txt"), args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
