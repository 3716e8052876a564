"""What drift counting and a shadow model cost /predict: ``python -m bench.monitoring_cost``.

Four variants of the service: the committed model with its drift bins removed (off), the same
again (the control), the committed model (drift counting on), and the committed model with a
copy of itself as a shadow scoring every request (drift + shadow at 100%). They run in one
gunicorn server (gunicorn.conf.py, two workers; bench/switch_app.py), one per body, switched
between while wrk loads it, in a shuffled order each round: the same processes answer every
variant, so what differs between slices is the variant and the machine's moment. The figures are
medians over the rounds of requests per second and of the workers' CPU time per request (from
/proc), as ratios to "off"; each budget is judged on the per-round paired ratios, with their
interquartile range beside the median, and the control's paired "cost" (the same app twice)
shows how much of that is the machine's noise.

That noise is large here: the same work takes ±10% or more CPU from one slice to the next. So
the workers also time the batch monitoring itself (churn/watch.py, thread CPU) while loaded:
its share of the workers' CPU per request does not move with the machine's speed, and is judged
against the budgets too. Last, the apps are timed in this process (the /predict WSGI call and
the tally's flush, process CPU, best of interleaved repeats): the difference to "off" is the work
drift counting and the shadow add with warm caches.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from churn.tally import flush_all
from werkzeug.test import EnvironBuilder

from bench.load import require_wrk, run_wrk, worker_cpu_seconds
from bench.measure import post
from bench.servers import gunicorn_command, running, wait_for_workers
from churn.app import create_app
from churn.config import PROJECT_ROOT, Settings
from churn.features import EXAMPLE_CUSTOMER

# "off, again" is a second app identical to "off": its paired cost against "off" is the
# instrument's own noise in this run, the yardstick for the budgets' figures.
CONTROL = "off, again"
VARIANTS = ("off", CONTROL, "drift", "drift + shadow")
# Issue 16's budgets: (variant, the variant it is compared with, share of throughput it may cost).
GOALS = (("drift", "off", 0.02), ("drift + shadow", "drift", 0.03))
BODIES: dict[str, Any] = {
    "1 customer": EXAMPLE_CUSTOMER,
    "100 customers": [EXAMPLE_CUSTOMER] * 100,
    "1000 customers": [EXAMPLE_CUSTOMER] * 1000,
}
# Requests of each body every variant answers before any is measured (the fast paths' memos).
WARM_UP_REQUESTS = 20
# Seconds of load after switching variants that are not measured: the tally flushes each
# second, so the last variant's gathered batches are counted then, not in the next slice.
SETTLE_SECONDS = 1
# In-process calls per timed slice: with their flush, about what a worker serves in a second
# of load is too long for a benchmark; these keep each slice near 0.1 s.
CALLS_PER_SLICE = {"1 customer": 2000, "100 customers": 200, "1000 customers": 20}


def model_files(work: Path) -> dict[str, dict[str, str]]:
    """Each variant's environment: its model file and, for the last, the shadow."""
    committed = PROJECT_ROOT / "model_C=1.0.bin"
    metadata = json.loads(committed.with_suffix(".json").read_text())
    plain = work / "no-drift.bin"
    shutil.copy(committed, plain)
    without = {key: value for key, value in metadata.items() if key != "drift_reference"}
    plain.with_suffix(".json").write_text(json.dumps(without))
    shadow = work / "shadow.bin"
    shutil.copy(committed, shadow)
    shutil.copy(committed.with_suffix(".json"), shadow.with_suffix(".json"))
    return {
        "off": {"MODEL_FILE": str(plain)},
        CONTROL: {"MODEL_FILE": str(plain)},
        "drift": {"MODEL_FILE": str(committed)},
        "drift + shadow": {
            "MODEL_FILE": str(committed),
            "SHADOW_MODEL_FILE": str(shadow),
            "SHADOW_SAMPLE": "1",
        },
    }


def one_slice(wrk: str, server, body: Path, args: argparse.Namespace) -> tuple[float, float]:
    """Requests per second and worker CPU microseconds per request for one wrk run, after
    ``SETTLE_SECONDS`` of the same load unmeasured (the last variant's batches flush then)."""
    run_wrk(wrk, server.url + "/predict", body, SETTLE_SECONDS, args.connections)
    before = worker_cpu_seconds(server.process.pid)
    run = run_wrk(wrk, server.url + "/predict", body, args.seconds, args.connections)
    after = worker_cpu_seconds(server.process.pid)
    if run["errors"]:
        raise SystemExit(f"{run['errors']} errors under load: {run['error_kinds']}")
    cpu = sum(after[pid] - before.get(pid, 0.0) for pid in after)
    return run["rps"], cpu / run["requests"] * 1e6


def measure(args: argparse.Namespace) -> tuple[dict, dict]:
    """Per body, variant and round: req/s and worker CPU per request; and per body and variant,
    the batch monitoring's own CPU in the workers per request answered (``bench.switch_app``)."""
    wrk = require_wrk()
    results = {body: {v: {"rps": [], "cpu_us": []} for v in VARIANTS} for body in args.bodies}
    inside: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="monitoring-cost-") as folder:
        work = Path(folder)
        environments = model_files(work)
        for name in args.bodies:
            body = work / f"{len(name)}.json"
            body.write_text(json.dumps(BODIES[name]))
            with switch_server(environments, work, body) as (server, select, spent):
                for round_number in range(args.rounds):
                    for variant in random.sample(VARIANTS, len(VARIANTS)):
                        select(variant)
                        rps, cpu = one_slice(wrk, server, body, args)
                        results[name][variant]["rps"].append(rps)
                        results[name][variant]["cpu_us"].append(cpu)
                    print(f"{name}: round {round_number + 1}/{args.rounds} done", flush=True)
            inside[name] = monitoring_inside(spent)  # the workers wrote it as they stopped
    return results, inside


@contextlib.contextmanager
def switch_server(
    environments: dict[str, dict[str, str]], work: Path, body: Path
) -> Iterator[tuple[Any, Callable[[str], None], Path]]:
    """One server with every variant (bench/switch_app.py), a way to select one and the folder
    its workers write their batch monitoring's CPU to; each variant warmed with a few requests
    of ``body``."""
    selector = work / "selector"
    selector.write_bytes(b"\0")
    spent = Path(tempfile.mkdtemp(prefix="spent-", dir=work))
    env = {
        "SWITCH_FILE": str(selector),
        "SWITCH_SPENT": str(spent),
        "SWITCH_VARIANTS": json.dumps([environments[variant] for variant in VARIANTS]),
        "WEB_CONCURRENCY": "2",
        "PROMETHEUS_MULTIPROC_DIR": "",
    }

    def select(variant: str) -> None:
        with selector.open("r+b") as file:
            file.write(bytes([VARIANTS.index(variant)]))

    with running(gunicorn_command("bench.switch_app:app"), work, env=env) as server:
        wait_for_workers(server.process.pid, 2)
        payload = body.read_bytes()
        for variant in VARIANTS:
            select(variant)
            for _ in range(WARM_UP_REQUESTS):
                post(server.url + "/predict", payload)
        yield server, select, spent


def monitoring_inside(spent: Path) -> dict[str, float]:
    """Per variant, CPU µs per request the workers spent in batch monitoring (churn/watch.py),
    from what each worker wrote to ``spent`` when it stopped."""
    totals: dict[str, list[int]] = {}
    for path in spent.glob("*.json"):
        for part, values in json.loads(path.read_text()).items():
            summed = totals.get(part, [0] * len(values))
            totals[part] = [a + b for a, b in zip(summed, values, strict=True)]
    return {
        variant: (totals["request_ns"][i] + totals["flush_ns"][i]) / totals["requests"][i] / 1e3
        for i, variant in enumerate(VARIANTS)
        if totals["requests"][i]
    }


def app_microseconds(args: argparse.Namespace, work: Path) -> dict[str, dict[str, float]]:
    """Each variant's /predict WSGI call in this process: the best of interleaved repeats.

    Steadier than req/s on a shared machine: a slice of the minimum is noise-free, and the
    difference between variants is exactly the work drift counting and the shadow add.
    """
    apps = {}
    for variant, env in model_files(work).items():
        apps[variant] = create_app(Settings.from_env({**env, "PROMETHEUS_MULTIPROC_DIR": ""}))
    best = {body: dict.fromkeys(VARIANTS, float("inf")) for body in args.bodies}
    for app in apps.values():  # first calls fill the validators' memos: not what is measured
        for name in args.bodies:
            _time_calls(app, json.dumps(BODIES[name]).encode(), 20)
    for _ in range(args.rounds):
        for name in args.bodies:
            payload = json.dumps(BODIES[name]).encode()
            for variant in random.sample(VARIANTS, len(VARIANTS)):
                took = _time_calls(apps[variant], payload, CALLS_PER_SLICE[name])
                best[name][variant] = min(best[name][variant], took)
    return best


def _time_calls(app: Any, payload: bytes, calls: int) -> float:
    environ = EnvironBuilder(
        method="POST", path="/predict", data=payload, content_type="application/json"
    ).get_environ()
    # CPU time of this process, not wall time: on a busy machine the wall clock also counts the
    # time other processes had the core. The flush is timed too: batches' drift counts and
    # shadow comparisons are gathered and done there (churn/watch.py).
    started = time.process_time()
    for _ in range(calls):
        environ["wsgi.input"] = io.BytesIO(payload)
        b"".join(app(environ, lambda status, headers, exc_info=None: None))
    flush_all()
    return (time.process_time() - started) / calls * 1e6


def report(
    results: dict | None, inside: dict | None, in_process: dict, load: tuple[float, float]
) -> str:
    lines = [
        f"load average before {load[0]:.1f}, after {load[1]:.1f} (2 cores)",
        "",
        "| body | variant | req/s | vs off | worker CPU µs/req | vs off "
        "| app CPU µs/req (in process) | added µs | added / off's worker CPU per request |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for body, apps in in_process.items():
        served = results[body] if results else None
        for variant, app in apps.items():
            added = app - apps["off"]
            cells = ["", "", "", "", ""]
            if served:
                rps, cpu = (statistics.median(served[variant][k]) for k in ("rps", "cpu_us"))
                base_rps, base_cpu = (
                    statistics.median(served["off"][k]) for k in ("rps", "cpu_us")
                )
                cells = [
                    f"{rps:,.0f}",
                    f"{rps / base_rps - 1:+.1%}",
                    f"{cpu:.0f}",
                    f"{cpu / base_cpu - 1:+.1%}",
                    f"{added / base_cpu:+.1%}",
                ]
            lines.append(
                f"| {body} | {variant} | {cells[0]} | {cells[1]} | {cells[2]} | {cells[3]} "
                f"| {app:.1f} | {added:+.1f} | {cells[4]} |"
            )
    if results:
        lines += goal_lines(results)
    if results and inside:
        lines += inside_lines(results, inside)
    return "\n".join(lines)


def goal_lines(results: dict) -> list[str]:
    """Each budget against the per-round ratios: the variants of one round ran within seconds
    of each other, so the machine's load mostly cancels out of their ratio. The median is the
    figure, the interquartile range its spread: a budget is met only when the upper quartile
    is within it, missed when the lower quartile is over it, and otherwise inside the noise."""
    lines = [
        "",
        "| body | cost of | against | throughput cost, median (IQR) of paired rounds "
        "| worker CPU per request, median (IQR) | budget | met |",
        "| --- | --- | --- | ---: | ---: | ---: | --- |",
    ]
    for body, served in results.items():
        costs, cpu = _paired_costs(served, CONTROL, "off")
        lines.append(
            f"| {body} | {CONTROL} (control: the same server twice) | off | {_spread(costs)} "
            f"| {_spread(cpu)} | — | — |"
        )
        for variant, against, budget in GOALS:
            costs, cpu = _paired_costs(served, variant, against)
            lines.append(
                f"| {body} | {variant} | {against} | {_spread(costs)} | {_spread(cpu)} "
                f"| ≤ {budget:.0%} | {_verdict(costs, budget)} |"
            )
    return lines


def inside_lines(results: dict, inside: dict) -> list[str]:
    """Each budget against the batch monitoring's own CPU in the loaded workers, as a share of
    the CPU a request of the variant it is compared with took there. A share of the same
    workers' CPU in the same slices: the machine's speed, which moves the throughput of a
    slice by ±10% or more here, moves both alike."""
    lines = [
        "",
        "| body | cost of | against | its own CPU in the workers, µs/req "
        "| share of the worker CPU per request | budget | met |",
        "| --- | --- | --- | ---: | ---: | ---: | --- |",
    ]
    for body, spent in inside.items():
        if not spent.get("drift"):  # single customers: no batch to monitor
            continue
        for variant, against, budget in GOALS:
            added = spent[variant] - spent[against]
            share = added / statistics.median(results[body][against]["cpu_us"])
            lines.append(
                f"| {body} | {variant} | {against} | {added:.1f} | {share:.1%} "
                f"| ≤ {budget:.0%} | {'yes' if share <= budget else '**no**'} |"
            )
    return lines


def _paired_costs(served: dict, variant: str, against: str) -> tuple[list[float], list[float]]:
    """Per round, what ``variant`` costs against ``against``: in throughput and in worker CPU."""
    costs = [1 - r for r in _ratios(served[variant]["rps"], served[against]["rps"])]
    cpu = [r - 1 for r in _ratios(served[variant]["cpu_us"], served[against]["cpu_us"])]
    return costs, cpu


def _ratios(values: list[float], baseline: list[float]) -> list[float]:
    return [v / b for v, b in zip(values, baseline, strict=True)]


def _quartiles(values: list[float]) -> tuple[float, float, float]:
    if len(values) < 2:
        return values[0], values[0], values[0]
    low, middle, high = statistics.quantiles(values, n=4, method="inclusive")
    return low, middle, high


def _spread(values: list[float]) -> str:
    low, middle, high = _quartiles(values)
    return f"{middle:+.1%} ({low:+.1%} … {high:+.1%})"


def _verdict(costs: list[float], budget: float) -> str:
    low, _, high = _quartiles(costs)
    if high <= budget:
        return "yes"
    if low > budget:
        return "**no**"
    return "inside the noise"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.monitoring_cost", description=__doc__)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--seconds", type=float, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--no-servers", dest="servers", action="store_false", help="in-process timing only"
    )
    parser.add_argument(
        "--bodies", nargs="+", default=["1 customer", "100 customers"], help="request bodies"
    )
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    results, inside = measure(args) if args.servers else (None, None)
    with tempfile.TemporaryDirectory(prefix="monitoring-cost-") as folder:
        in_process = app_microseconds(args, Path(folder))
    print(report(results, inside, in_process, (load_before[0], os.getloadavg()[0])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
