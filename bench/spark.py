"""Benchmark: ``score.py --engine spark`` against the tutorials' pandas UDF, in local[2].

    python -m bench.spark                  # 1,000,000 generated customers, 3 interleaved rounds
    python -m bench.spark --rows 20000 --rounds 1   # a quick check that both run

Both contenders read the same generated customers (synthetic Telco-like rows with the real
category mix), once as CSV and once as Parquet, and write Parquet, in one SparkSession. The
baseline is what most tutorials do: clean the columns with Spark SQL, then call the pickled
scikit-learn pair in a pandas UDF (``to_dict`` → ``DictVectorizer.transform`` →
``predict_proba``). Ours runs the local engine's Arrow batch function through ``mapInArrow``,
validating every row and writing the rejects too. Rounds alternate between the contenders and
the figures are medians, because the machine is shared.
"""

from __future__ import annotations

import argparse
import os
import pickle
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from bench import customers
from churn.config import DEFAULT_MODEL_FILE, PROJECT_ROOT
from churn.features import CATEGORICAL_FIELDS, FLAG_FIELDS, NUMERIC_FIELDS

TARGET_RATIO = 3.0


def spark_session():
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    return (
        SparkSession.builder.master("local[2]")
        .appName("churn-bench-spark")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.pyspark.python", sys.executable)
        .getOrCreate()
    )


def tutorial_frame(spark, path: str, model_file: Path):
    """The tutorials' way: Spark SQL cleaning, then the pickled pair in a pandas UDF."""
    from pyspark.sql import functions as sf

    with model_file.open("rb") as handle:
        pair = pickle.load(handle)  # our own committed model file
    shipped = spark.sparkContext.broadcast(pair)
    raw = spark.read.csv(path, header=True) if path.endswith(".csv") else spark.read.parquet(path)
    frame = raw.select([sf.col(name).alias(name.lower()) for name in raw.columns])
    features = list(CATEGORICAL_FIELDS + FLAG_FIELDS + NUMERIC_FIELDS)
    cleaned = [
        sf.lower(sf.regexp_replace(sf.col(name), " ", "_")).alias(name)
        for name in CATEGORICAL_FIELDS
    ] + [
        sf.coalesce(sf.expr(f"try_cast({name} as double)"), sf.lit(0.0)).alias(name)
        for name in FLAG_FIELDS + NUMERIC_FIELDS
    ]

    @sf.pandas_udf("double")
    def churn_probability(customers: pd.DataFrame) -> pd.Series:
        dv, model = shipped.value
        records = customers.to_dict(orient="records")
        return pd.Series(model.predict_proba(dv.transform(records))[:, 1])

    scored = frame.select("customerid", *cleaned).select(
        "customerid", churn_probability(sf.struct(*features)).alias("churn_probability")
    )
    return scored.withColumn("churn", sf.col("churn_probability") >= 0.5)


def time_tutorial(spark, path: str, work: Path, model_file: Path) -> float:
    started = time.perf_counter()
    tutorial_frame(spark, path, model_file).write.mode("overwrite").parquet(
        str(work / "tutorial.parquet")
    )
    return time.perf_counter() - started


def time_ours(spark, path: str, work: Path, model_file: Path) -> float:
    from churn.batch import spark as engine

    run = engine.SparkRun(
        input=path,
        output=str(work / "ours.parquet"),
        rejects=str(work / "ours-rejects.csv"),
        model=str(model_file),
    )
    started = time.perf_counter()
    engine.score(spark, run)
    return time.perf_counter() - started


def generate(folder: Path, rows: int) -> list[Path]:
    """The same generated customers as CSV and as Parquet (as a pandas export of it gives)."""
    return [customers.write(folder / f"customers{suffix}", rows) for suffix in (".csv", ".parquet")]


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


CONTENDERS: dict[str, Callable[..., float]] = {
    "pandas UDF + scikit-learn (tutorials)": time_tutorial,
    "churn-serving mapInArrow": time_ours,
}


def measure(rows: int, rounds: int) -> dict[tuple[str, str], list[float]]:
    """Seconds per (input format, contender), rounds interleaved across both."""
    spark = spark_session()
    model_file = PROJECT_ROOT / DEFAULT_MODEL_FILE
    times: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="churn-bench-spark-") as folder:
        work = Path(folder)
        inputs = generate(work, rows)
        for run in CONTENDERS.values():  # warm-up: JVM JIT, Python workers, imports
            run(spark, str(inputs[0]), work, model_file)
        for round_number in range(rounds):
            for source in inputs:
                for name, run in CONTENDERS.items():
                    seconds = run(spark, str(source), work, model_file)
                    times.setdefault((source.suffix, name), []).append(seconds)
                    print(f"round {round_number + 1} {source.suffix} {name}: {seconds:.2f} s")
    spark.stop()
    return times


def report(rows: int, times: dict[tuple[str, str], list[float]], load_before: str) -> str:
    rounds = len(next(iter(times.values())))
    lines = [
        f"Spark local[2], {rows:,} generated customers, Parquet out; "
        f"median of {rounds} interleaved rounds",
        f"load average before: {load_before}; after: {load_average()} (2 cores)",
        "",
        "| input | contender | median s | customers/s |",
        "| --- | --- | ---: | ---: |",
    ]
    medians = {key: statistics.median(values) for key, values in times.items()}
    for (suffix, name), seconds in medians.items():
        lines.append(f"| {suffix} | {name} | {seconds:.2f} | {rows / seconds:,.0f} |")
    lines.append("")
    baseline, ours = CONTENDERS
    for suffix in dict.fromkeys(suffix for suffix, _ in medians):
        ratio = medians[(suffix, baseline)] / medians[(suffix, ours)]
        verdict = "met" if ratio >= TARGET_RATIO else "NOT met"
        lines.append(f"{suffix} in: {ratio:.2f}x the tutorials (≥ {TARGET_RATIO:g}x: {verdict})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    load_before = load_average()
    print(report(args.rows, measure(args.rows, args.rounds), load_before))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
