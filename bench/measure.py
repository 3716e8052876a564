"""Measuring the contenders: start them all, check each answers right, then interleave wrk slices.

Every server must answer the course's customer with the JSON this service answers (the
probability scikit-learn gives on the same pickle, the decision at the model's threshold) before
and after its load, and run the workers it declares, so rows compare like with like. A peer that
cannot start is reported with the reason; any other server that fails stops the run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import pickle
import statistics
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from bench.contenders import MODEL_FILE, Contender, contenders
from bench.load import run_wrk, server_cpu_seconds
from bench.servers import running, wait_for_workers
from churn.config import metadata_path
from churn.features import EXAMPLE_CUSTOMER


@dataclass
class Result:
    contender: Contender
    runs: list[dict] = field(default_factory=list)  # one wrk slice per round, rounds in order
    cold_start_s: float = math.nan
    unavailable: str | None = None  # why it was not measured

    def __post_init__(self) -> None:
        self.unavailable = self.unavailable or self.contender.unavailable

    def median(self, key: str) -> float:
        return statistics.median(run[key] for run in self.runs)

    @property
    def rps(self) -> float:
        return self.median("rps")

    @property
    def errors(self) -> int:
        return sum(run["errors"] for run in self.runs)


def expected_answer() -> dict:
    """What every server must answer for the course's customer: scikit-learn on the pickle."""
    with open(MODEL_FILE, "rb") as handle:
        dv, model = pickle.load(handle)
    probability = float(model.predict_proba(dv.transform([EXAMPLE_CUSTOMER]))[0, 1])
    threshold = json.loads(metadata_path(MODEL_FILE).read_text())["threshold"]
    return {"churn_probability": probability, "churn": probability >= threshold}


def post(url: str, body: bytes) -> tuple[int, dict | list, dict[str, str]]:
    headers = {"Content-Type": "application/json"}
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, json.loads(response.read()), dict(response.headers)


def check_answer(url: str, contender: Contender, expected: dict) -> None:
    status, body, _ = post(url + "/predict", json.dumps(EXAMPLE_CUSTOMER).encode())
    if status != 200 or not isinstance(body, dict) or set(body) != set(expected):
        raise AssertionError(f"{contender.name}: bad answer {status} {body}")
    if not contender.checks_probability:  # a ceiling answers a constant of the same shape
        return
    close = abs(body["churn_probability"] - expected["churn_probability"]) <= 1e-9
    if not close or body["churn"] is not expected["churn"]:
        raise AssertionError(f"{contender.name}: answered {body}, expected {expected}")


def batch_server_time_ms(url: str, size: int = 1000, repeats: int = 21) -> float:
    """Median Server-Timing of ``size``-customer requests once each worker has served a few:
    a worker's first batches pay one-off costs (5-12 ms here, against ~4 ms warm)."""
    body = json.dumps([EXAMPLE_CUSTOMER] * size).encode()
    times = []
    for number in range(6 + repeats):
        status, answer, headers = post(url + "/predict", body)
        assert status == 200 and len(answer) == size
        timing = headers.get("Server-Timing", "dur=nan")
        times += [float(timing.split("dur=")[1])] if number >= 6 else []
    return statistics.median(times)


@dataclass(frozen=True)
class Serving:
    url: str  # where the load goes: the server, or what stands in front of it
    master_pid: int  # the workers' parent


def start(result: Result, work: Path, stack: contextlib.ExitStack) -> Serving | None:
    """Start ``result``'s server, timing its cold start; None when a peer could not start."""
    c = result.contender
    started = time.monotonic()
    try:
        env = {**c.env, **(stack.enter_context(c.before(work)) if c.before else {})}
        server = stack.enter_context(
            running(
                c.command,
                work,
                env,
                c.cwd,
                c.health_path,
                timeout=c.start_timeout_s,
                port_template="{port}",
            )
        )
        url = stack.enter_context(c.front(server.port, work)).url if c.front else server.url
    except (RuntimeError, TimeoutError) as error:
        if not c.peer:
            raise  # never hide a failure of ours or of a baseline
        result.unavailable = f"did not start: {error}"
        return None
    result.cold_start_s = time.monotonic() - started
    return Serving(url, c.master_pid() if c.master_pid else server.process.pid)


def check_worker_count(pid: int, contender: Contender, timeout: float = 20) -> None:
    """Fail unless ``contender`` runs the workers it claims, so comparisons are at equal workers."""
    try:
        wait_for_workers(pid, contender.workers + contender.helper_processes, timeout)
    except TimeoutError as error:
        raise AssertionError(f"{contender.name}: {error}") from None


def runs_declared_workers(result: Result, serving: Serving) -> bool:
    """Check the worker count; a peer that differs is reported, any other server stops the run."""
    try:
        check_worker_count(serving.master_pid, result.contender)
    except AssertionError as error:
        if not result.contender.peer:
            raise
        result.unavailable = f"not run at equal workers: {error}"
        return False
    return True


def slice_of_load(args: argparse.Namespace, wrk: str, serving: Serving, body: Path) -> dict:
    """One wrk slice, with the server's CPU time per request: it shifts far less than req/s when
    other work shares the machine."""
    cpu_before = server_cpu_seconds(serving.master_pid)
    run = run_wrk(wrk, serving.url + "/predict", body, args.seconds, args.connections)
    cpu = server_cpu_seconds(serving.master_pid) - cpu_before
    return {**run, "cpu_us": cpu * 1e6 / max(run["requests"], 1)}


def measure(args: argparse.Namespace, wrk: str, work: Path) -> tuple[list[Result], float]:
    """Rounds of short wrk slices, one per server in turn, all servers up throughout; the
    results and the server time of a 1,000-customer request to ours.

    The machine is shared: its speed drifts by 2x over tens of seconds. Interleaving short
    slices puts every server through the same slow and fast phases, so the slices of one round
    compare with each other.
    """
    body = work / "customer.json"
    body.write_text(json.dumps(EXAMPLE_CUSTOMER))
    expected = expected_answer()
    results = [
        Result(c) for c in contenders(args.workers, work, not args.no_build, args.containers)
    ]
    with contextlib.ExitStack() as stack:
        servers = {id(r): start(r, work, stack) for r in results if not r.unavailable}
        live = [(r, s) for r in results if (s := servers.get(id(r))) is not None]
        live = [(r, s) for r, s in live if runs_declared_workers(r, s)]
        for round_number in range(1, args.repeats + 1):
            for result, serving in live:
                check_answer(serving.url, result.contender, expected)
                result.runs.append(slice_of_load(args, wrk, serving, body))
            rates = ", ".join(f"{r.runs[-1]['rps']:,.0f}" for r, _ in live)
            print(f"  round {round_number}: {rates}", flush=True)
        for result, serving in live:
            check_answer(serving.url, result.contender, expected)
        ours = next(serving for result, serving in live if result.contender.key == "ours")
        return results, batch_server_time_ms(ours.url)
