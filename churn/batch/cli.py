"""``python score.py``: score a customer file here (or on Spark) with the service's model.

Streams the input in Arrow batches through ``score_record_batch``, writes the scores and the
rejects atomically, shows progress on a terminal, prints a one-line JSON summary, and exits
non-zero on a bad file (2) or a flood of rejected rows (3). See README, "Batch scoring".
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa

from churn.artifact import ModelFileError
from churn.batch.columns import InputFileError, Layout, score_record_batch
from churn.batch.files import BATCH_ROWS, AtomicWriter, open_source
from churn.batch.model import BatchModel
from churn.batch.progress import Progress
from churn.capture import RunCapture
from churn.config import DEFAULT_MODEL_FILE, ConfigError

# A normal export has a few bad rows at most; more than 1% means it changed (new columns,
# new spellings, a broken join), and scores from it should not reach a campaign unseen.
DEFAULT_MAX_INVALID = 0.01
EXIT_BAD_INPUT = 2
EXIT_TOO_MANY_INVALID = 3


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="score.py", description="Score every customer of a file with the churn model."
    )
    parser.add_argument(
        "--input",
        required=True,
        type=str,
        help=".csv, .parquet, a directory of Parquet parts, or .jsonl",
    )
    parser.add_argument(
        "--output",
        required=True,
        type=str,
        help="scores: .csv, .parquet, .jsonl (a directory of Parquet parts with --engine spark)",
    )
    parser.add_argument(
        "--rejects",
        type=str,
        help="rejected rows, one line per problem (default: beside the output, NAME.rejects.EXT)",
    )
    parser.add_argument("--model", default=DEFAULT_MODEL_FILE)
    parser.add_argument("--engine", choices=("local", "spark"), default="local")
    parser.add_argument(
        "--max-invalid",
        type=_fraction,
        default=DEFAULT_MAX_INVALID,
        metavar="FRACTION",
        help=f"exit 3 when a larger share of rows is rejected (default {DEFAULT_MAX_INVALID})",
    )
    parser.add_argument(
        "--threshold",
        type=_fraction,
        help="churn when probability >= P (default: the model's own threshold)",
    )
    parser.add_argument(
        "--batch-rows",
        type=int,
        default=BATCH_ROWS,
        metavar="N",
        help=f"rows per batch (default {BATCH_ROWS:,}); memory grows with it",
    )
    parser.add_argument(
        "--capture-database",
        metavar="URL",
        help="also record the scored rows in PostgreSQL, for the outcomes report (--engine local)",
    )
    args = parser.parse_args(argv)
    if args.batch_rows < 1:
        parser.error("--batch-rows must be at least 1")
    if args.rejects is None:
        args.rejects = default_rejects_path(args.output)
    return args


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and 1")
    return value


def default_rejects_path(output: str) -> str:
    """``scores.parquet`` -> ``scores.rejects.parquet``; text, as Spark's paths may be URIs."""
    base, suffix = os.path.splitext(output.rstrip("/"))
    return f"{base}.rejects{suffix or '.parquet'}"


def too_many_invalid(rows_in: int, rejected: int, max_invalid: float) -> bool:
    return rejected > max_invalid * rows_in


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    use_lean_memory_pool()
    # A SIGTERM (a scheduler's stop) unwinds like Ctrl-C, so temporary files are removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    try:
        summary = run_spark(args) if args.engine == "spark" else run_local(args)
    except (InputFileError, ModelFileError, ConfigError) as error:
        print(f"score.py: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(orjson.dumps(summary).decode(), flush=True)
    if summary["status"] == "too_many_invalid":
        scores = "scores not written" if summary["output"] is None else "do not use the scores"
        print(
            f"score.py: error: {summary['rejected']:,} of {summary['rows_in']:,} rows rejected, "
            f"more than --max-invalid {args.max_invalid}; {scores}, see {args.rejects}",
            file=sys.stderr,
        )
        return EXIT_TOO_MANY_INVALID
    return 0


def use_lean_memory_pool() -> None:
    """jemalloc handing freed batch buffers straight back: Arrow's default pool (mimalloc) and
    jemalloc's default decay kept the peak 20-40% higher on a long run."""
    try:
        pa.set_memory_pool(pa.jemalloc_memory_pool())
        pa.jemalloc_set_decay_ms(0)
    except NotImplementedError:  # a pyarrow built without jemalloc
        pa.set_memory_pool(pa.system_memory_pool())


def run_spark(args: argparse.Namespace) -> dict[str, Any]:
    """The same scoring as a Spark job (churn/batch/spark.py); paths may be s3:// URIs."""
    started = time.perf_counter()
    if args.capture_database:
        raise InputFileError("--capture-database works with --engine local only")
    try:
        from churn.batch import spark as spark_engine  # type: ignore[attr-defined,unused-ignore]
    except ImportError as error:
        raise InputFileError(
            f"the Spark engine is not available here ({error}); install it with "
            "`pipenv install --categories spark` or use --engine local"
        ) from None
    run = spark_engine.SparkRun(
        input=args.input,
        output=args.output,
        rejects=args.rejects,
        model=args.model,
        threshold=args.threshold,
    )
    counts = spark_engine.score(spark_engine.session(), run)
    rows_in = counts["rows"]
    flood = too_many_invalid(rows_in, counts["rejected"], args.max_invalid)
    tally = {"rows_in": rows_in, "scored": counts["scored"], "rejected": counts["rejected"]}
    # Spark has written the scores already: a flood is reported, the files are left as they are.
    return summary(args, counts["model_version"], args.threshold, tally, started, flood)


def run_local(args: argparse.Namespace) -> dict[str, Any]:
    """Score ``args.input`` into ``args.output`` and ``args.rejects``; the summary."""
    started = time.perf_counter()
    source_path, output_path, rejects_path = _local_paths(args)
    model = BatchModel.load(Path(args.model), args.threshold)
    source = open_source(source_path, args.batch_rows)
    layout = Layout.of(source.schema)
    counts = {"rows_in": 0, "scored": 0, "rejected": 0, "problems": 0}
    progress = Progress(source.rows)
    writers: list[AtomicWriter | RunCapture] = []
    capture = None
    try:
        if args.capture_database:  # rows committed with the scores (churn/capture.py)
            url, id_column = args.capture_database, layout.id_column
            capture = RunCapture(url, model.version, model.threshold, id_column)
            writers.append(capture)
        output = AtomicWriter(output_path, layout.output_schema())
        writers.append(output)
        rejects = AtomicWriter(rejects_path, layout.rejects_schema())
        writers.append(rejects)
        for batch in source.batches:
            scored, problems = score_record_batch(batch, model, counts["rows_in"] + 1, layout)
            output.write(scored)
            rejects.write(problems)
            if capture:
                capture.write(scored)
            rows = len(batch) if isinstance(batch, list) else batch.num_rows
            counts["rows_in"] += rows
            counts["scored"] += scored.num_rows
            counts["rejected"] += rows - scored.num_rows
            counts["problems"] += problems.num_rows
            progress.update(counts["rows_in"])
        flood = too_many_invalid(counts["rows_in"], counts["rejected"], args.max_invalid)
        rejects.commit()
        output.discard() if flood else output.commit()
        if capture:
            capture.discard() if flood else capture.commit()
            counts["captured"] = 0 if flood else capture.rows
    except BaseException:  # errors, Ctrl-C, SIGTERM: nothing half-written stays behind
        for writer in writers:
            writer.discard()
        raise
    finally:
        progress.close()
    return summary(args, model.version, model.threshold, counts, started, flood)


def _local_paths(args: argparse.Namespace) -> tuple[Path, Path, Path]:
    paths = Path(args.input), Path(args.output), Path(args.rejects)
    if len({path.resolve() for path in paths}) < 3:
        raise InputFileError("--input, --output and --rejects must be three different files")
    return paths


def summary(
    args: argparse.Namespace,
    version: str,
    threshold: float | None,
    counts: dict[str, int],
    started: float,
    flood: bool,
) -> dict[str, Any]:
    """The one-line JSON summary both engines print."""
    seconds = time.perf_counter() - started
    return {
        "status": "too_many_invalid" if flood else "ok",
        "engine": args.engine,
        "input": args.input,
        "output": None if flood and args.engine == "local" else args.output,
        "rejects": args.rejects,
        **counts,
        "seconds": round(seconds, 3),
        "rows_per_second": round(counts["rows_in"] / seconds) if seconds > 0 else None,
        "model_version": version,
        "threshold": threshold,
        "max_invalid": args.max_invalid,
    }
