"""The benchmark's report: the table, the floors judged on this run, docs/benchmarks.md.

A floor names the two rows it compares by key (bench/contenders.py), so a new row needs no change
here; a floor whose rows were not measured is "not judged", never silently met.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import statistics
from dataclasses import dataclass
from datetime import UTC, datetime

from bench.measure import Result

BATCH_1000_MS_MAX = 10.0
# The project's own libraries that a request goes through, for the versions line.
OUR_LIBRARIES = ("gunicorn", "flask", "orjson", "prometheus-client", "numpy", "scikit-learn")


@dataclass(frozen=True)
class Floor:
    name: str
    row: str  # the key of the row judged
    against: str  # the key of its baseline, measured in the same rounds
    least: float | None  # the lowest row / against allowed; None: shown, not judged


FLOORS = (
    Floor("/predict, one customer: ≥ 1.3× FastAPI async", "ours", "fastapi", 1.3),
    Floor("/predict, one customer: ≥ 2× the course's way", "ours", "course", 2.0),
    Floor("drift + shadow: ≥ 90% of the throughput without", "monitored", "unmonitored", 0.9),
    Floor("capture to PostgreSQL: ≥ 90% of the throughput without", "capture", "ours", 0.9),
    Floor("behind EB's nginx / direct (no floor)", "nginx", "ours", None),
    Floor("in the container: default logging ≥ 90% of logging off", "container",
          "container-no-log", 0.9),
    Floor("ours / the raw WSGI ceiling (no floor)", "ours", "ceiling", None),
)  # fmt: skip


def paired_ratio(row: Result, against: Result, key: str = "rps") -> float:
    """The median over rounds of row / against within each round: both rows took their slices
    in the same rounds, so each round's pair saw the same moment of the shared machine."""
    pairs = zip(row.runs, against.runs, strict=True)
    return statistics.median(mine[key] / theirs[key] for mine, theirs in pairs)


def judge(results: list[Result], floors: tuple[Floor, ...] = FLOORS) -> list[dict]:
    """Each floor with its ratio and verdict: True, False, or None when a row was not measured."""
    measured = {r.contender.key: r for r in results if r.runs}
    judged = []
    for floor in floors:
        row, against = measured.get(floor.row), measured.get(floor.against)
        ratio = paired_ratio(row, against) if row and against else None
        met = None if ratio is None or floor.least is None else ratio >= floor.least
        judged.append({**vars(floor), "ratio": ratio, "met": met})
    return judged


def table(results: list[Result]) -> str:
    lines = [
        "| server | req/s | p50 ms | p99 ms | errors | cold start s | server CPU µs/request |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        if not r.runs:
            lines.append(f"| {r.contender.name} | — | — | — | — | — | — |")
            continue
        lines.append(
            f"| {r.contender.name} | {r.rps:,.0f} | {r.median('p50_ms'):.2f} | "
            f"{r.median('p99_ms'):.2f} | {r.errors} | {r.cold_start_s:.2f} | "
            f"{r.median('cpu_us'):.0f} |"
        )
    lines += [
        f"\n- not measured: {r.contender.name}: {r.unavailable}" for r in results if not r.runs
    ]
    return "\n".join(lines)


def floors(results: list[Result], batch_ms: float) -> str:
    lines = ["| floor | this run | met |", "| --- | ---: | --- |"]
    for floor in judge(results):
        ratio = "not measured" if floor["ratio"] is None else f"{floor['ratio']:.2f}×"
        met = verdict(floor["met"]) if floor["least"] is not None else "—"
        lines.append(f"| {floor['name']} | {ratio} | {met} |")
    batch_met = verdict(batch_ms <= BATCH_1000_MS_MAX)
    lines.append(f"| 1,000 customers: ≤ 10 ms server time | {batch_ms:.1f} ms | {batch_met} |")
    return "\n".join(lines)


def verdict(met: bool | None) -> str:
    return {True: "yes", False: "**no**", None: "not judged"}[met]


def versions() -> str:
    ours = ", ".join(f"{n} {importlib.metadata.version(n)}" for n in OUR_LIBRARIES)
    return f"- Pipfile.lock: {ours}\n- the peers: bench/peers/*.txt and the lock's scikit-learn"


def chart(results: list[Result], path: os.PathLike) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    shown = [r for r in results if r.runs][::-1]
    figure, axis = plt.subplots(figsize=(11, 1.2 + 0.45 * len(shown)))
    colors = ["#2a7" if r.contender.key == "ours" else "#9ab" for r in shown]
    bars = axis.barh([r.contender.name for r in shown], [r.rps for r in shown], color=colors)
    axis.bar_label(bars, labels=[f"{r.rps:,.0f}" for r in shown], padding=4)
    axis.set_xlabel("requests per second (median of interleaved slices, higher is better)")
    figure.suptitle("POST /predict, the course's customer, wrk on loopback")
    axis.set_xlim(0, max(r.rps for r in shown) * 1.2)
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
