"""`make bench-batch`: score.py against the course's chunked pandas way, on generated files.

    python -m bench.batch                  # 1M customers, 3 rounds, docs/batch-benchmarks.md
    python -m bench.batch --smoke          # 5,000 customers, one round: checks everything runs

Each run is its own process, measured with wait4: wall time, CPU time (all its threads, so rows
per CPU-second is what one core gives) and peak memory. Rounds interleave the contenders on the
same files; the figures are medians.
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
from pathlib import Path

import orjson

from churn.config import DEFAULT_MODEL_FILE, PROJECT_ROOT
from churn.features import CATEGORICAL_FIELDS, FLAG_FIELDS, NUMERIC_FIELDS

REPORT = PROJECT_ROOT / "docs" / "batch-benchmarks.md"
FLOOR_ROWS_PER_CPU_S = 500_000  # score.py, Parquet to Parquet, per core
OURS, OURS_CSV, COURSE = "ours Parquet→Parquet", "ours CSV→Parquet", "course's pandas CSV→CSV"


@dataclass(frozen=True)
class Run:
    rows: int
    wall_s: float
    cpu_s: float
    peak_mib: float


def measure(command: list[str], rows: int) -> Run:
    """Run ``command`` to completion; its wall time, CPU time and peak memory from wait4."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=PROJECT_ROOT, stdout=subprocess.PIPE)
    output = process.stdout.read() if process.stdout else b""
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{command} failed with exit code {os.waitstatus_to_exitcode(status)}")
    if output.strip():  # score.py's summary: every row must be accounted for
        summary = orjson.loads(output.splitlines()[-1])
        if summary["scored"] + summary["rejected"] != rows or summary["rows_in"] != rows:
            raise SystemExit(f"{command}: counts do not add up: {summary}")
    return Run(rows, wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


def course_way(source: Path, target: Path) -> None:
    """The course's notebook code in chunks of 100,000: read_csv, clean, to_dict, transform,
    score, with the project's committed model."""
    import pandas as pd

    with open(DEFAULT_MODEL_FILE, "rb") as handle:
        dv, model = pickle.load(handle)
    features = list(CATEGORICAL_FIELDS + FLAG_FIELDS + NUMERIC_FIELDS)
    target.unlink(missing_ok=True)
    for number, df in enumerate(pd.read_csv(source, chunksize=100_000)):
        df.columns = df.columns.str.lower().str.replace(" ", "_")
        for c in [c for c in df.columns if c not in ("seniorcitizen", *NUMERIC_FIELDS)]:
            df[c] = df[c].astype(str).str.lower().str.replace(" ", "_")
        df.totalcharges = pd.to_numeric(df.totalcharges, errors="coerce").fillna(0)
        y_pred = model.predict_proba(dv.transform(df[features].to_dict(orient="records")))[:, 1]
        result = pd.DataFrame(
            {"customerid": df.customerid, "churn_probability": y_pred, "churn": y_pred >= 0.5}
        )
        result.to_csv(target, mode="a", header=number == 0, index=False)


def generated(work: Path, rows: int, suffix: str) -> Path:
    """Generated customers, made once and kept in ``work``; in a child process, because a parent
    grown by generating would lend its size to every run's peak (Linux keeps it across exec)."""
    path = work / f"customers-{rows}{suffix}"
    if not path.exists():
        partial = path.with_suffix(".tmp" + suffix)
        command = [sys.executable, "-m", "bench.customers", str(partial), str(rows)]
        subprocess.run(command, cwd=PROJECT_ROOT, check=True)
        partial.rename(path)
    return path


def benchmark(rows: int, rounds: int, work: Path) -> dict[str, list[Run]]:
    """Every contender once per round, rounds interleaved, on the same ``rows`` customers."""
    work.mkdir(parents=True, exist_ok=True)
    parquet, csv = generated(work, rows, ".parquet"), generated(work, rows, ".csv")
    score = [sys.executable, "score.py", "--output", str(work / "scores.parquet"), "--input"]
    course = [sys.executable, "-m", "bench.batch", "--course", str(csv), str(work / "course.csv")]
    commands = {OURS: [*score, str(parquet)], OURS_CSV: [*score, str(csv)], COURSE: course}
    runs: dict[str, list[Run]] = {name: [] for name in commands}
    for _ in range(rounds):
        for name, command in commands.items():
            runs[name].append(measure(command, rows))
    return runs


def rate(runs: list[Run]) -> float:
    """Rows per CPU-second: the median of the rounds' rates."""
    return statistics.median(run.rows / run.cpu_s for run in runs)


def floor_met(runs: dict[str, list[Run]]) -> bool:
    return rate(runs[OURS]) >= FLOOR_ROWS_PER_CPU_S


def report(runs: dict[str, list[Run]]) -> str:
    lines = [
        "| run | rows/CPU-s (one core) | rows/s wall | peak MiB | × course |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, measured in runs.items():
        wall = statistics.median(run.rows / run.wall_s for run in measured)
        peak = statistics.median(run.peak_mib for run in measured)
        times = rate(measured) / rate(runs[COURSE])
        lines.append(f"| {name} | {rate(measured):,.0f} | {wall:,.0f} | {peak:.0f} | {times:.1f} |")
    met = "yes" if floor_met(runs) else "**no**"
    lines += [
        "",
        f"- {runs[OURS][0].rows:,} generated customers, medians of {len(runs[OURS])} interleaved"
        " rounds",
        f"- floor: {OURS} ≥ {FLOOR_ROWS_PER_CPU_S:,} rows per CPU-second: {met}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.batch", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="5,000 rows, 1 round, no report")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    default_work = Path(tempfile.gettempdir()) / "churn-batch-bench"
    parser.add_argument("--workdir", type=Path, default=default_work)
    parser.add_argument("--course", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.course:
        course_way(*args.course)
        return 0
    if args.smoke:
        args.rows, args.rounds = 5_000, 1
    text = report(benchmark(args.rows, args.rounds, args.workdir))
    print(text)
    if not args.smoke:
        REPORT.write_text(f"# Batch scoring benchmark\n\n`make bench-batch`\n\n{text}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
