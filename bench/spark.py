"""`make bench-spark`: ``score.py --engine spark`` against the tutorials' pandas UDF, local[2].

    python -m bench.spark                           # 1,000,000 generated customers, 3 rounds
    python -m bench.spark --rows 20000 --rounds 1   # a quick check that both run

Both read the same generated customers, as CSV and as Parquet, and write Parquet, in one
SparkSession. The tutorials clean the columns with Spark SQL, then call the pickled scikit-learn
pair in a pandas UDF; ours runs the local engine's Arrow batch function through ``mapInArrow``,
validating every row and writing the rejects too. Rounds interleave; figures are medians.
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
MODEL_FILE = PROJECT_ROOT / DEFAULT_MODEL_FILE
TUTORIAL, OURS = "pandas UDF + scikit-learn (tutorials)", "churn-serving mapInArrow"


def spark_session():
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # loopback only
    builder = SparkSession.builder.master("local[2]").appName("churn-bench-spark")
    settings = {"spark.ui.enabled": "false", "spark.sql.shuffle.partitions": "2",
                "spark.pyspark.python": sys.executable}  # fmt: skip
    for key, value in settings.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def run_tutorial(spark, path: str, work: Path) -> None:
    """The tutorials' way: Spark SQL cleaning, then the pickled pair in a pandas UDF."""
    from pyspark.sql import functions as sf

    # Spark's defaults, as a tutorial runs: our engine sets its own Arrow batch size on the
    # session they share here.
    spark.conf.unset("spark.sql.execution.arrow.maxRecordsPerBatch")
    with MODEL_FILE.open("rb") as handle:
        shipped = spark.sparkContext.broadcast(pickle.load(handle))
    raw = spark.read.csv(path, header=True) if path.endswith(".csv") else spark.read.parquet(path)
    frame = raw.select([sf.col(name).alias(name.lower()) for name in raw.columns])
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
        return pd.Series(model.predict_proba(dv.transform(customers.to_dict("records")))[:, 1])

    features = sf.struct(*CATEGORICAL_FIELDS, *FLAG_FIELDS, *NUMERIC_FIELDS)
    scored = frame.select("customerid", *cleaned).select(
        "customerid", churn_probability(features).alias("churn_probability")
    )
    scored = scored.withColumn("churn", sf.col("churn_probability") >= 0.5)
    scored.write.mode("overwrite").parquet(str(work / "tutorial.parquet"))


def run_ours(spark, path: str, work: Path) -> None:
    from churn.batch import spark as engine

    engine.score(spark, path, str(work / "ours.parquet"), str(work / "ours-rejects.csv"),
                 str(MODEL_FILE))  # fmt: skip


def measure(rows: int, rounds: int) -> dict[tuple[str, str], list[float]]:
    """Wall seconds per (input suffix, contender), rounds interleaved across all."""
    spark = spark_session()
    jobs = {TUTORIAL: run_tutorial, OURS: run_ours}
    times: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="churn-bench-spark-") as folder:
        work = Path(folder)
        inputs = [
            customers.write(work / f"customers{suffix}", rows) for suffix in (".csv", ".parquet")
        ]
        for job in jobs.values():  # warm-up: JVM JIT, Python workers, imports
            job(spark, str(inputs[0]), work)
        for _ in range(rounds):
            for source in inputs:
                for name, job in jobs.items():
                    started = time.perf_counter()
                    job(spark, str(source), work)
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
    for suffix in sorted({suffix for suffix, _ in wall}):
        ratio = wall[(suffix, TUTORIAL)] / wall[(suffix, OURS)]
        met = "met" if ratio >= FLOOR_RATIO else "NOT met"
        lines.append(
            f"- {suffix} in: {ratio:.2f}x the tutorials' speed (floor {FLOOR_RATIO:g}x: {met})"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.spark", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    print(report(args.rows, measure(args.rows, args.rounds)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
