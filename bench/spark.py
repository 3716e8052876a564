"""Benchmark: ``score.py --engine spark`` against the tutorials' pandas UDF, in local[2].

    python -m bench.spark                  # 1,000,000 generated customers, 3 interleaved rounds
    python -m bench.spark --rows 20000 --rounds 1   # a quick check that both run

Both contenders read the same generated customers (synthetic Telco-like rows with the real
category mix), once as CSV and once as Parquet, and write Parquet, in one SparkSession. The
baseline is what most tutorials do: clean the columns with Spark SQL, then call the pickled
scikit-learn pair in a pandas UDF (``to_dict`` → ``DictVectorizer.transform`` →
``predict_proba``). Ours runs the local engine's Arrow batch function through ``mapInArrow``,
validating every row and writing the rejects too. Rounds alternate between the contenders and
the figures are medians of wall time, because the machine is shared.
"""

from __future__ import annotations

import argparse
import os
import pickle
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from bench import customers
from churn.config import DEFAULT_MODEL_FILE, PROJECT_ROOT
from churn.features import CATEGORICAL_FIELDS, FLAG_FIELDS, NUMERIC_FIELDS

FLOOR_RATIO = 3.0
SUFFIXES = (".csv", ".parquet")


def spark_session():
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # loopback only
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


def run_tutorial(spark, path: str, work: Path, model_file: Path) -> None:
    # Spark's defaults, as a tutorial runs: our engine sets its own Arrow batch size on the
    # session they share here.
    spark.conf.unset("spark.sql.execution.arrow.maxRecordsPerBatch")
    output = str(work / "tutorial.parquet")
    tutorial_frame(spark, path, model_file).write.mode("overwrite").parquet(output)


def run_ours(spark, path: str, work: Path, model_file: Path) -> None:
    from churn.batch import spark as engine

    output, rejects = str(work / "ours.parquet"), str(work / "ours-rejects.csv")
    engine.score(spark, engine.SparkRun(path, output, rejects, str(model_file)))


CONTENDERS = {
    "pandas UDF + scikit-learn (tutorials)": run_tutorial,
    "churn-serving mapInArrow": run_ours,
}


def measure(rows: int, rounds: int) -> dict[tuple[str, str], list[float]]:
    """Wall seconds per (input suffix, contender), rounds interleaved across all."""
    spark = spark_session()
    model_file = PROJECT_ROOT / DEFAULT_MODEL_FILE
    times: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="churn-bench-spark-") as folder:
        work = Path(folder)
        inputs = [customers.write(work / f"customers{suffix}", rows) for suffix in SUFFIXES]
        for job in CONTENDERS.values():  # warm-up: JVM JIT, Python workers, imports
            job(spark, str(inputs[0]), work, model_file)
        for _ in range(rounds):
            for source in inputs:
                for name, job in CONTENDERS.items():
                    started = time.perf_counter()
                    job(spark, str(source), work, model_file)
                    wall = time.perf_counter() - started
                    times.setdefault((source.suffix, name), []).append(wall)
                    print(f"{source.suffix} {name}: {wall:.2f} s", file=sys.stderr)
    spark.stop()
    return times


def report(rows: int, times: dict[tuple[str, str], list[float]]) -> str:
    wall = {key: statistics.median(runs) for key, runs in times.items()}
    rounds = len(next(iter(times.values())))
    lines = [
        f"Spark local[2], {rows:,} generated customers, Parquet out, {rounds} rounds (medians)",
        "",
        "| input | contender | wall s | customers/s |",
        "| --- | --- | ---: | ---: |",
    ]
    lines += [
        f"| {suffix} | {name} | {s:.2f} | {rows / s:,.0f} |" for (suffix, name), s in wall.items()
    ]
    baseline, ours = CONTENDERS
    for suffix in SUFFIXES:
        ratio = wall[(suffix, baseline)] / wall[(suffix, ours)]
        met = "met" if ratio >= FLOOR_RATIO else "NOT met"
        lines.append(
            f"- {suffix} in: {ratio:.2f}x the tutorials' speed (floor {FLOOR_RATIO:g}x: {met})"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    print(report(args.rows, measure(args.rows, args.rounds)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
