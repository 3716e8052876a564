"""Measuring the contenders: start them all, check each answers right, then interleave wrk slices.

Every server is checked against the reference probability (scikit-learn on the same pickle)
before and after its load, and against the worker count it declares, so rows compare like with
like.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import statistics
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from bench.contenders import Contender, contenders
from bench.load import had_idle_worker, run_wrk, worker_cpu_seconds, worker_rss_mib
from bench.servers import Server, running, wait_for_workers
from churn.config import PROJECT_ROOT
from churn.features import EXAMPLE_CUSTOMER


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
                health_path=contender.health_path,
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
