"""`make bench`: every row of bench/contenders.py measured in one run, the floors judged on it.

    python -m bench.run                 # 15 rounds of 3 s slices; writes docs/benchmarks.*
    python -m bench.run --smoke         # 1 s per server: checks every server answers correctly

The machine is shared and its speed drifts by 2x over tens of seconds, so all servers stay up
and take short wrk slices in turn, round after round; a floor is the median over rounds of the
ratio of two rows within the round, never a ratio of absolute numbers from different moments.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import math
import os
import pickle
import statistics
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench.contenders import MODEL_FILE, Contender, contenders
from bench.load import require_wrk, run_wrk, server_cpu_seconds
from bench.servers import running, wait_for_workers
from churn.artifact import metadata_path
from churn.config import PROJECT_ROOT
from churn.features import EXAMPLE_CUSTOMER

BATCH_1000_MS_MAX = 10.0
OUR_LIBRARIES = ("gunicorn", "flask", "orjson", "prometheus-client", "numpy", "scikit-learn")


@dataclass(frozen=True)
class Floor:
    name: str
    row: str  # the key of the row judged
    against: str  # the key of its baseline, measured in the same rounds
    least: float | None  # the lowest row / against allowed; None: shown, not judged


FLOORS = (
    # Like with like: FastAPI (uvicorn) logs each request as `make run` does; the course's
    # gunicorn command logs none, as the image does.
    Floor("/predict, one customer: ≥ 1.3× FastAPI async (both log requests)", "ours",
          "fastapi", 1.3),
    Floor("/predict, one customer: ≥ 2× the course's way (neither logs requests)", "quiet",
          "course", 2.0),
    Floor("drift + shadow: ≥ 90% of the throughput without", "monitored", "unmonitored", 0.9),
    Floor("capture to PostgreSQL: ≥ 90% of the throughput without", "capture", "ours", 0.9),
    Floor("behind EB's nginx / direct (no floor)", "nginx", "ours", None),
    Floor("in the container: default logging ≥ 90% of logging off", "container",
          "container-no-log", 0.9),
    Floor("ours / the raw WSGI ceiling (no floor)", "ours", "ceiling", None),
)  # fmt: skip


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
    def errors(self) -> int:
        return sum(run["errors"] for run in self.runs)


@dataclass(frozen=True)
class Serving:
    url: str  # where the load goes: the server, or what stands in front of it
    master_pid: int  # the workers' parent


def expected_answer() -> dict:
    """What every server must answer for the course's customer: scikit-learn on the pickle."""
    with open(MODEL_FILE, "rb") as handle:
        dv, model = pickle.load(handle)
    probability = float(model.predict_proba(dv.transform([EXAMPLE_CUSTOMER]))[0, 1])
    threshold = json.loads(metadata_path(MODEL_FILE).read_text())["threshold"]
    return {"churn_probability": probability, "churn": probability >= threshold}


def post(url: str, body: bytes) -> tuple[int, dict | list, dict[str, str]]:
    headers = {"Content-Type": "application/json"}
    request = urllib.request.Request(url + "/predict", body, headers, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, json.loads(response.read()), dict(response.headers)


def check_answer(url: str, contender: Contender, expected: dict) -> None:
    status, body, _ = post(url, json.dumps(EXAMPLE_CUSTOMER).encode())
    if status != 200 or not isinstance(body, dict) or set(body) != set(expected):
        raise AssertionError(f"{contender.name}: bad answer {status} {body}")
    if not contender.checks_probability:  # a ceiling answers a constant of the same shape
        return
    close = abs(body["churn_probability"] - expected["churn_probability"]) <= 1e-9
    if not close or body["churn"] is not expected["churn"]:
        raise AssertionError(f"{contender.name}: answered {body}, expected {expected}")


def batch_server_times_ms(url: str, repeats: int, size: int = 1000) -> list[float]:
    """The Server-Timing of ``repeats`` ``size``-customer requests, one after another."""
    body = json.dumps([EXAMPLE_CUSTOMER] * size).encode()
    times = []
    for _ in range(repeats):
        status, answer, headers = post(url, body)
        assert status == 200 and len(answer) == size
        times.append(float(headers.get("Server-Timing", "dur=nan").split("dur=")[1]))
    return times


def start(result: Result, work: Path, stack: contextlib.ExitStack) -> Serving | None:
    """Start ``result``'s server, timing its cold start; None when a peer could not start."""
    c = result.contender
    started = time.monotonic()
    try:
        env = {**c.env, **(stack.enter_context(c.before(work)) if c.before else {})}
        server = stack.enter_context(
            running(c.command, work, env, c.cwd, c.health_path, timeout=c.start_timeout_s,
                    port_template="{port}")
        )  # fmt: skip
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
    """A peer at other workers is reported as not measured; any other server stops the run."""
    try:
        check_worker_count(serving.master_pid, result.contender)
    except AssertionError as error:
        if not result.contender.peer:
            raise
        result.unavailable = f"not run at equal workers: {error}"
        return False
    return True


def slice_of_load(args: argparse.Namespace, wrk: str, serving: Serving, body: Path) -> dict:
    """One wrk slice, with the server's CPU time per request (it moves far less than req/s when
    other work shares the machine)."""
    cpu_before = server_cpu_seconds(serving.master_pid)
    run = run_wrk(wrk, serving.url + "/predict", body, args.seconds, args.connections)
    cpu = server_cpu_seconds(serving.master_pid) - cpu_before
    return {**run, "cpu_us": cpu * 1e6 / max(run["requests"], 1)}


def measure(args: argparse.Namespace, wrk: str, work: Path) -> tuple[list[Result], float]:
    """Rounds of one wrk slice per server, every answer checked before and after; the results
    and the server time of a 1,000-customer request to ours."""
    body = work / "customer.json"
    body.write_text(json.dumps(EXAMPLE_CUSTOMER))
    expected = expected_answer()
    rows = contenders(args.workers, work, not args.no_build, args.containers)
    results = [Result(c) for c in rows]
    with contextlib.ExitStack() as stack:
        servers = {id(r): start(r, work, stack) for r in results if not r.unavailable}
        live = [(r, s) for r in results if (s := servers.get(id(r))) is not None]
        live = [(r, s) for r, s in live if runs_declared_workers(r, s)]
        ours = next(serving for result, serving in live if result.contender.key == "ours")
        batch_server_times_ms(ours.url, repeats=6)  # a worker's one-off costs: 5-12 ms
        batch_times: list[float] = []
        for round_number in range(1, args.repeats + 1):
            # A few 1,000-customer requests every round, before ours takes its slice (so it is
            # not counting the last slice's drift): their median spans the run's slow and fast
            # minutes, as the req/s rows do.
            batch_times += batch_server_times_ms(ours.url, repeats=3)
            for result, serving in live:
                check_answer(serving.url, result.contender, expected)
                result.runs.append(slice_of_load(args, wrk, serving, body))
            rates = ", ".join(f"{r.runs[-1]['rps']:,.0f}" for r, _ in live)
            print(f"  round {round_number}: {rates}", flush=True)
        for result, serving in live:
            check_answer(serving.url, result.contender, expected)
        return results, statistics.median(batch_times)


def judge(results: list[Result], floors: tuple[Floor, ...] = FLOORS) -> list[dict]:
    """Each floor with its ratio, the median over rounds of row / against within the round, and
    its verdict: True, False, or None when a row was not measured or the floor is shown only."""
    measured = {r.contender.key: r for r in results if r.runs}
    judged = []
    for floor in floors:
        row, against = measured.get(floor.row), measured.get(floor.against)
        ratio = None
        if row and against:
            pairs = zip(row.runs, against.runs, strict=True)
            ratio = statistics.median(mine["rps"] / theirs["rps"] for mine, theirs in pairs)
        met = None if ratio is None or floor.least is None else ratio >= floor.least
        judged.append({**vars(floor), "ratio": ratio, "met": met})
    return judged


def verdict(met: bool | None) -> str:
    return {True: "yes", False: "**no**", None: "not judged"}[met]


def report(results: list[Result], batch_ms: float) -> str:
    """The table of rows, the floors and the versions, in Markdown."""
    lines = [
        "| server | req/s | p50 ms | p99 ms | errors | cold start s | server CPU µs/request |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        figures = ["—"] * 6
        if r.runs:
            figures = [f"{r.median('rps'):,.0f}", f"{r.median('p50_ms'):.2f}",
                       f"{r.median('p99_ms'):.2f}", str(r.errors), f"{r.cold_start_s:.2f}",
                       f"{r.median('cpu_us'):.0f}"]  # fmt: skip
        lines.append(f"| {r.contender.name} | {' | '.join(figures)} |")
    lines += [f"\n- not measured: {r.contender.name}: {r.unavailable}" for r in results
              if not r.runs]  # fmt: skip
    lines += ["\n## Floors\n", "| floor | this run | met |", "| --- | ---: | --- |"]
    for floor in judge(results):
        ratio = "not measured" if floor["ratio"] is None else f"{floor['ratio']:.2f}×"
        met = verdict(floor["met"]) if floor["least"] is not None else "—"
        lines.append(f"| {floor['name']} | {ratio} | {met} |")
    batch_met = verdict(batch_ms <= BATCH_1000_MS_MAX)
    lines.append(f"| 1,000 customers: ≤ 10 ms server time | {batch_ms:.1f} ms | {batch_met} |")
    ours = ", ".join(f"{n} {importlib.metadata.version(n)}" for n in OUR_LIBRARIES)
    lines += ["\n## Versions\n", f"- Pipfile.lock: {ours}"]
    lines.append("- the peers: bench/peers/*.txt and the lock's scikit-learn")
    return "\n".join(lines)


def chart(results: list[Result], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    shown = [r for r in results if r.runs][::-1]
    rates = [r.median("rps") for r in shown]
    figure, axis = plt.subplots(figsize=(11, 1.2 + 0.45 * len(shown)))
    colors = ["#2a7" if r.contender.key == "ours" else "#9ab" for r in shown]
    bars = axis.barh([r.contender.name for r in shown], rates, color=colors)
    axis.bar_label(bars, labels=[f"{rate:,.0f}" for rate in rates], padding=4)
    axis.set_xlabel("requests per second (median of interleaved slices, higher is better)")
    figure.suptitle("POST /predict, the course's customer, wrk on loopback")
    axis.set_xlim(0, max(rates) * 1.2)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write_report(args: argparse.Namespace, results: list[Result], text: str) -> None:
    args.output.mkdir(parents=True, exist_ok=True)
    chart(results, args.output / "benchmarks.png")
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    settings = (
        f"{args.workers} workers each, {args.connections} connections, {args.repeats} rounds of "
        f"{args.seconds:g} s wrk slices (servers interleaved; medians), {os.cpu_count()} cores"
    )
    (args.output / "benchmarks.md").write_text(
        "# Benchmarks\n\nWritten by `make bench` (`python -m bench.run`), rewritten by each full"
        f" run.\n\n- {stamp}; {settings}\n\n![req/s](benchmarks.png)\n\n{text}\n"
    )
    print(f"wrote {args.output / 'benchmarks.md'} and benchmarks.png")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="1 s per server, 1 round, no report")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of one wrk slice")
    parser.add_argument("--repeats", type=int, default=15, help="rounds of slices")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--output", type=Path, default=PROJECT_ROOT / "docs", help="report folder")
    parser.add_argument("--json", type=Path, help="also write the rows and the floors here")
    parser.add_argument("--no-build", action="store_true", help="do not build peer environments")
    parser.add_argument(
        "--no-containers", dest="containers", action="store_false",
        help="leave out the rows in the container (they start a private Docker engine: root)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.smoke:
        args.seconds, args.repeats, args.containers = 1.0, 1, False
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wrk = require_wrk()
    with tempfile.TemporaryDirectory() as tmp:
        results, batch_ms = measure(args, wrk, Path(tmp))
    text = report(results, batch_ms)
    print(text)
    if args.json:
        rows = [{"key": r.contender.key, "name": r.contender.name, "unavailable": r.unavailable,
                 "rps": [run["rps"] for run in r.runs], "errors": r.errors if r.runs else None}
                for r in results]  # fmt: skip
        batch = {"server_ms": batch_ms, "most_ms": BATCH_1000_MS_MAX}
        args.json.write_text(json.dumps({"rows": rows, "floors": judge(results), "batch": batch}))
    # A peer's errors are its own result, shown in the table; ours or a baseline's fail the run.
    failed = [r.contender.name for r in results if r.errors and not r.contender.peer]
    if failed:
        print(f"error: these servers returned errors under load: {failed}", file=sys.stderr)
        return 1
    if not args.smoke:
        write_report(args, results, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
