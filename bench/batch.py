"""`make bench-batch`: score.py against the course's chunked pandas way, on generated files.

    python -m bench.batch                  # 1M and 10M customers, docs/batch-benchmarks.md
    python -m bench.batch --smoke          # small files, one round: checks everything runs

Each run is its own process, measured with wait4: wall time, CPU time (user + system of all its
threads, so rows per CPU-second is the rate one core would give) and peak resident memory.
Rounds interleave ours and the course's way on the same file; figures are medians. The machine
is shared, so the load average is printed next to them.
"""

from __future__ import annotations

import argparse
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson

from churn.config import DEFAULT_MODEL_FILE, PROJECT_ROOT
from churn.features import CATEGORICAL_FIELDS, FLAG_FIELDS, NUMERIC_FIELDS

REPORT = PROJECT_ROOT / "docs" / "batch-benchmarks.md"
COURSE_CHUNK_ROWS = 100_000


@dataclass(frozen=True)
class Run:
    name: str
    rows: int
    wall_s: float
    cpu_s: float
    peak_mib: float

    @property
    def rows_per_cpu_s(self) -> float:
        return self.rows / self.cpu_s


def measure(name: str, command: list[str], rows: int) -> Run:
    """Run ``command`` to completion; its wall time, CPU time and peak memory from wait4."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=PROJECT_ROOT, stdout=subprocess.PIPE)
    output = process.stdout.read() if process.stdout else b""
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{name} failed with exit code {process.returncode}")
    if output.strip():  # score.py's summary: every row must be accounted for
        summary = orjson.loads(output.splitlines()[-1])
        if summary["scored"] + summary["rejected"] != rows or summary["rows_in"] != rows:
            raise SystemExit(f"{name}: counts do not add up: {summary}")
    return Run(name, rows, wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


def ours(source: Path, work: Path) -> list[str]:
    output = work / f"scores-{source.suffix[1:]}.parquet"
    return [sys.executable, "score.py", "--input", str(source), "--output", str(output)]


def course(source: Path, work: Path) -> list[str]:
    return [sys.executable, "-m", "bench.batch", "--course", str(source), str(work / "course.csv")]


def course_way(source: Path, target: Path, model_file: Path = Path(DEFAULT_MODEL_FILE)) -> None:
    """The course's notebook code, done in chunks: read_csv, clean, to_dict, transform, score."""
    import pandas as pd

    with open(model_file, "rb") as handle:
        dv, model = pickle.load(handle)  # the project's own committed model, as the course does
    target.unlink(missing_ok=True)
    for number, df in enumerate(pd.read_csv(source, chunksize=COURSE_CHUNK_ROWS)):
        df.columns = df.columns.str.lower().str.replace(" ", "_")
        text = [c for c in df.columns if c not in ("seniorcitizen", *NUMERIC_FIELDS)]
        for c in text:
            df[c] = df[c].astype(str).str.lower().str.replace(" ", "_")
        df.totalcharges = pd.to_numeric(df.totalcharges, errors="coerce").fillna(0)
        dicts = df[list(CATEGORICAL_FIELDS + FLAG_FIELDS + NUMERIC_FIELDS)].to_dict(
            orient="records"
        )
        y_pred = model.predict_proba(dv.transform(dicts))[:, 1]
        result = pd.DataFrame(
            {"customerid": df.customerid, "churn_probability": y_pred, "churn": y_pred >= 0.5}
        )
        result.to_csv(target, mode="a", header=number == 0, index=False)


def files(work: Path, rows: int) -> dict[str, Path]:
    """The generated CSV and Parquet of ``rows`` customers, made once and kept in ``work``."""
    made = {}
    for suffix in (".csv", ".parquet"):
        path = work / f"customers-{rows}{suffix}"
        if not path.exists():
            print(f"generating {path} ...", file=sys.stderr, flush=True)
            # In a child: a parent grown by generating would lend its size to every run's
            # peak (Linux carries the peak resident size across exec).
            partial = path.with_suffix(".tmp" + suffix)
            command = [sys.executable, "-m", "bench.customers", str(partial), str(rows)]
            subprocess.run(command, cwd=PROJECT_ROOT, check=True)
            partial.rename(path)
        made[suffix] = path
    return made


def load() -> str:
    return "load average " + " / ".join(f"{x:.1f}" for x in os.getloadavg())


def benchmark(args: argparse.Namespace) -> tuple[dict[str, list[Run]], list[str]]:
    small, large = (args.small, args.large)
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    runs: dict[str, list[Run]] = {}
    loads = [f"start: {load()}"]
    inputs = files(work, small)
    for _ in range(args.rounds):  # interleaved: each round runs every contender once
        for name, command, source in (
            (f"ours Parquet→Parquet, {small:,}", ours, inputs[".parquet"]),
            (f"ours CSV→Parquet, {small:,}", ours, inputs[".csv"]),
            (f"course's chunked pandas CSV→CSV, {small:,}", course, inputs[".csv"]),
        ):
            runs.setdefault(name, []).append(measure(name, command(source, work), small))
    loads.append(f"after the {small:,}-row rounds: {load()}")
    inputs = files(work, large)
    for name, source in (
        (f"ours Parquet→Parquet, {large:,}", inputs[".parquet"]),
        (f"ours CSV→Parquet, {large:,}", inputs[".csv"]),
    ):
        runs[name] = [measure(name, ours(source, work), large)]
    loads.append(f"end: {load()}")
    return runs, loads


def report(runs: dict[str, list[Run]], loads: list[str], small: int, large: int) -> str:
    def median(name: str, value: str) -> float:
        return statistics.median(getattr(run, value) for run in runs[name])

    course_rate = median(f"course's chunked pandas CSV→CSV, {small:,}", "rows_per_cpu_s")
    lines = [
        "| run | rows/CPU-s (one core) | rows/s wall | peak MiB | × course | runs |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, measured in runs.items():
        rate = median(name, "rows_per_cpu_s")
        wall = statistics.median(run.rows / run.wall_s for run in measured)
        lines.append(
            f"| {name} | {rate:,.0f} | {wall:,.0f} | {median(name, 'peak_mib'):.0f} | "
            f"{rate / course_rate:.1f} | {len(measured)} |"
        )
    flat = {
        kind: median(f"ours {kind}, {large:,}", "peak_mib")
        / median(f"ours {kind}, {small:,}", "peak_mib")
        - 1
        for kind in ("Parquet→Parquet", "CSV→Parquet")
    }
    lines.append("")
    lines.append(
        f"- × course: against the course's way on the {small:,}-customer CSV (run there only)"
    )
    lines += [f"- peak memory, {large:,} vs {small:,} rows, {k}: {v:+.1%}" for k, v in flat.items()]
    lines += [f"- {line}" for line in loads]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.batch", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--smoke", action="store_true", help="small files, 1 round, no report")
    parser.add_argument("--small", type=int, default=1_000_000)
    parser.add_argument("--large", type=int, default=10_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "churn-batch-bench"
    )
    parser.add_argument(
        "--course", nargs=2, type=Path, metavar=("IN", "OUT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.small, args.large, args.rounds = 5_000, 15_000, 1
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.course:
        course_way(*args.course)
        return 0
    runs, loads = benchmark(args)
    text = report(runs, loads, args.small, args.large)
    print(text)
    if not args.smoke:
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        header = (
            f"# Batch scoring benchmark\n\n`make bench-batch`, {stamp}, {os.cpu_count()} cores.\n\n"
        )
        REPORT.write_text(header + text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
