"""What the access log costs in the container, and who pays for it: the workers, containerd-shim
and dockerd.

    python -m bench.log_cost [--rounds 9] [--seconds 3] [--connections 16] [--against REF]...

Builds the image in the private engine (bench/engine.py, as `make bench` does) and runs it in
several ways at once, detached with ``--network host``: as shipped (access log to the engine's
default json-file driver), with ``GUNICORN_ACCESSLOG=``, and with the engine's ``local`` log
driver; with ``--against REF`` also the image of that git commit (e.g. ``main``) with its access
log, so a change and what it changes are compared in one interleaved run. Each round loads each
container with wrk in a new random order; around every slice it reads the CPU time (user +
system, /proc) of the container's workers, its containerd-shim (the parent of the container's
first process), dockerd with its containerd, and wrk, per request. Then it stops each container
(SIGTERM, as `docker stop` does) and counts the ``/predict`` access lines in `docker logs`
against the requests answered. docs/performance.md quotes it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from bench.container_rows import IMAGE_TAG, engine_with_image
from bench.engine import Engine, build_image
from bench.load import cpu_seconds, require_wrk, run_wrk, worker_status
from bench.measure import post
from bench.servers import free_port, poll
from churn.config import PROJECT_ROOT
from churn.features import EXAMPLE_CUSTOMER

# name: extra `docker run` options. The first is what the ratios compare against.
VARIANTS = {
    "no access log (GUNICORN_ACCESSLOG=)": ["--env=GUNICORN_ACCESSLOG="],
    "access log, json-file driver (default)": [],
    "access log, local driver": ["--log-driver=local"],
}
DEFAULT = "access log, json-file driver (default)"  # what --against images are compared with
AGAINST = "access log, json-file, image of"
PARTS = ("workers", "shim", "dockerd", "wrk")


@dataclass
class Variant:
    name: str
    container: str
    port: int
    master: int = 0
    shim: int = 0
    slices: list[dict] = field(default_factory=list)

    def median(self, key: str) -> float:
        return statistics.median(piece[key] for piece in self.slices)


def image_of(engine: Engine, ref: str) -> str:
    """Build the image of git commit ``ref`` (its tracked files) in the engine; its tag."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", ref], cwd=PROJECT_ROOT, capture_output=True, text=True,
        check=True,
    ).stdout.strip()  # fmt: skip
    tag = f"churn-serving:logcost-{commit}"
    with tempfile.TemporaryDirectory(prefix="churn-logcost-ref-") as work:
        archive = Path(work) / "ref.tar"
        subprocess.run(
            ["git", "archive", "--output", archive, commit], cwd=PROJECT_ROOT, check=True
        )
        with tarfile.open(archive) as tar:
            tar.extractall(Path(work) / "context", filter="data")
        build_image(engine, Path(work) / "context", tag)
    return tag


def start(engine: Engine, name: str, options: list[str], image: str, workers: int) -> Variant:
    port = free_port()
    variant = Variant(name, f"churn-logcost-{port}", port)
    engine.docker(
        "run", "--detach", "--name", variant.container, "--network=host",
        "--env=HOST=127.0.0.1", f"--env=PORT={port}", f"--env=WEB_CONCURRENCY={workers}",
        *options, image,
    )  # fmt: skip
    return variant


def wait_ready(engine: Engine, variant: Variant, workers: int) -> None:
    url = f"http://127.0.0.1:{variant.port}/predict"
    poll(lambda: _answers(url), bool, 60, 0.3)
    variant.master = int(engine.docker("inspect", "--format", "{{.State.Pid}}", variant.container))
    status = Path(f"/proc/{variant.master}/status").read_text()
    variant.shim = int(status.split("PPid:")[1].split()[0])
    poll(lambda: len(worker_status(variant.master)), lambda n: n == workers, 30, 0.3)


def _answers(url: str) -> bool:
    try:
        return post(url, json.dumps(EXAMPLE_CUSTOMER).encode())[0] == 200
    except OSError:
        return False


def cpu_now(variant: Variant, engine_pids: list[int]) -> dict[str, float]:
    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # wrk, once it has been waited for
    return {
        "workers": sum(map(cpu_seconds, worker_status(variant.master))),
        "shim": cpu_seconds(variant.shim),
        "dockerd": sum(map(cpu_seconds, engine_pids)),
        "wrk": children.ru_utime + children.ru_stime,
    }


def one_slice(variant: Variant, engine_pids: list[int], args: argparse.Namespace) -> None:
    wrk, body = args.wrk, args.body
    before = cpu_now(variant, engine_pids)
    url = f"http://127.0.0.1:{variant.port}/predict"
    run = run_wrk(wrk, url, body, args.seconds, args.connections)
    after = cpu_now(variant, engine_pids)
    for part in PARTS:
        run[f"{part}_us"] = (after[part] - before[part]) * 1e6 / max(run["requests"], 1)
    variant.slices.append(run)


def access_lines(engine: Engine, variant: Variant) -> int:
    """``/predict`` access lines in `docker logs`, after a `docker stop` (the lines at exit)."""
    engine.docker("stop", variant.container, timeout=60)
    if "GUNICORN_ACCESSLOG=" in variant.name:
        return 0
    logs = engine.docker("logs", variant.container, timeout=300)
    return sum(
        '"path":"/predict"' in line and '"logger":"access"' in line for line in logs.splitlines()
    )


def report(variants: list[Variant], lines: dict[str, int], load: list) -> None:
    base = variants[0]
    print(f"load average: {load[0]:.1f} at start, {load[1]:.1f} at end")
    print(
        "| container | req/s | ratio | p99 ms | "
        + " | ".join(f"{p} µs/req" for p in PARTS)
        + " | /predict lines / requests |\n|"
        + " --- |" * (6 + len(PARTS))
    )
    for variant in variants:
        ratios = [a["rps"] / b["rps"] for a, b in zip(variant.slices, base.slices, strict=True)]
        answered = sum(piece["requests"] for piece in variant.slices)
        cpu = " | ".join(f"{variant.median(f'{p}_us'):.1f}" for p in PARTS)
        print(
            f"| {variant.name} | {variant.median('rps'):,.0f} | {statistics.median(ratios):.3f} | "
            f"{variant.median('p99_ms'):.2f} | {cpu} | {lines[variant.name]:,} / {answered:,} |"
        )
    this = next(v for v in variants if v.name == DEFAULT)
    for other in (v for v in variants if v.name.startswith(AGAINST)):
        pairs = list(zip(this.slices, other.slices, strict=True))
        print(
            f"{DEFAULT} / {other.name}, per round (medians): req/s ratio "
            f"{statistics.median(a['rps'] / b['rps'] for a, b in pairs):.3f}, workers "
            f"{statistics.median(a['workers_us'] - b['workers_us'] for a, b in pairs):+.1f} µs/req"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--against", action="append", default=[], metavar="REF",
        help="also run this git commit's image with its access log (repeatable)",
    )  # fmt: skip
    parser.add_argument("--without-local", action="store_true", help="skip the local driver")
    args = parser.parse_args()
    args.wrk = require_wrk()
    engine = engine_with_image(empty_engine_build=False)
    if engine.process is None:
        raise SystemExit("the private engine is not running")
    engine_pids = [engine.process.pid, *worker_status(engine.process.pid)]  # + its containerd
    with tempfile.TemporaryDirectory(prefix="churn-logcost-") as work:
        args.body = Path(work) / "customer.json"
        args.body.write_text(json.dumps(EXAMPLE_CUSTOMER))
        runs = [
            (name, options, IMAGE_TAG)
            for name, options in VARIANTS.items()
            if not (args.without_local and "--log-driver=local" in options)
        ]
        runs += [(f"{AGAINST} {ref[:12]}", [], image_of(engine, ref)) for ref in args.against]
        variants = [start(engine, *run, args.workers) for run in runs]
        for variant in variants:
            wait_ready(engine, variant, args.workers)
        load = [os.getloadavg()[0]]
        for number in range(1, args.rounds + 1):
            for variant in random.sample(variants, len(variants)):
                one_slice(variant, engine_pids, args)
            print(f"round {number}: " + ", ".join(f"{v.slices[-1]['rps']:,.0f}" for v in variants))
        load.append(os.getloadavg()[0])
        lines = {variant.name: access_lines(engine, variant) for variant in variants}
    report(variants, lines, load)


if __name__ == "__main__":
    main()
