"""``python score.py``: score a customer file here or on Spark, print a one-line JSON summary,
exit 2 on a bad file or 3 on a flood of rejected rows (docs/batch.md)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from contextlib import ExitStack, closing
from pathlib import Path
from typing import TextIO

import orjson

from churn.artifact import ModelFileError
from churn.batch.columns import BatchModel, InputFileError, Layout, score_record_batch
from churn.batch.files import BATCH_ROWS, AtomicWriter, open_source
from churn.config import DEFAULT_MODEL_FILE, ConfigError

# A normal export has a few bad rows at most; more than 1% means it changed (new columns,
# new spellings, a broken join), and scores from it should not reach a campaign unseen.
DEFAULT_MAX_INVALID = 0.01
EXIT_BAD_INPUT = 2
EXIT_TOO_MANY_INVALID = 3
REFRESH_SECONDS = 0.5  # of the progress line


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="score.py", description="Score every customer of a file with the churn model."
    )
    add = parser.add_argument
    add("--input", required=True, help=".csv, .parquet, a directory of Parquet parts, or .jsonl")
    add("--output", required=True, help="scores: .csv, .parquet, .jsonl (Parquet parts: Spark)")
    add("--rejects", help="rejected rows, one line per problem (default: NAME.rejects.EXT)")
    add("--model", default=DEFAULT_MODEL_FILE)
    add("--engine", choices=("local", "spark"), default="local")
    add(
        "--max-invalid",
        type=fraction,
        default=DEFAULT_MAX_INVALID,
        metavar="FRACTION",
        help=f"exit 3 when a larger share of rows is rejected (default {DEFAULT_MAX_INVALID})",
    )
    add("--threshold", type=fraction, help="churn when probability >= P (default: the model's)")
    add("--batch-rows", type=int, default=BATCH_ROWS, metavar="N", help="rows per batch")
    add("--capture-database", metavar="URL", help="also record scored rows in PostgreSQL")
    args = parser.parse_args(argv)
    if args.batch_rows < 1:
        parser.error("--batch-rows must be at least 1")
    if args.rejects is None:  # scores.parquet -> scores.rejects.parquet; text: may be a URI
        base, suffix = os.path.splitext(args.output.rstrip("/"))
        args.rejects = f"{base}.rejects{suffix or '.parquet'}"
    return args


def fraction(text: str) -> float:
    value = float(text)  # a ValueError is argparse's "invalid fraction value: 'x'"
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and 1")
    return value


def too_many_invalid(rows_in: int, rejected: int, max_invalid: float) -> bool:
    return rejected > max_invalid * rows_in


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # A SIGTERM (a scheduler's stop) unwinds like Ctrl-C, so temporary files are removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    started = time.perf_counter()
    try:
        counts, model = run_spark(args) if args.engine == "spark" else run_local(args)
    except (InputFileError, ModelFileError, ConfigError) as error:
        print(f"score.py: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    seconds = time.perf_counter() - started
    flood = too_many_invalid(counts["rows_in"], counts["rejected"], args.max_invalid)
    # Spark has written its scores before the count is known; the local engine has not.
    unwritten = flood and args.engine == "local"
    summary = {
        "status": "too_many_invalid" if flood else "ok",
        "engine": args.engine,
        "input": args.input,
        "output": None if unwritten else args.output,
        "rejects": args.rejects,
        **counts,
        "seconds": round(seconds, 3),
        "rows_per_second": round(counts["rows_in"] / seconds) if seconds > 0 else None,
        "model_version": model.version,
        "threshold": model.threshold,
        "max_invalid": args.max_invalid,
    }
    print(orjson.dumps(summary).decode(), flush=True)
    if flood:
        print(
            f"score.py: error: {counts['rejected']:,} of {counts['rows_in']:,} rows rejected, "
            f"more than --max-invalid {args.max_invalid}; "
            f"{'scores not written' if unwritten else 'do not use the scores'}, see {args.rejects}",
            file=sys.stderr,
        )
        return EXIT_TOO_MANY_INVALID
    return 0


def run_spark(args: argparse.Namespace) -> tuple[dict[str, int], BatchModel]:
    if args.capture_database:
        raise InputFileError("--capture-database works with --engine local only")
    try:
        from churn.batch import spark  # type: ignore[attr-defined,unused-ignore]
    except ImportError as error:
        raise InputFileError(
            f"the Spark engine is not available here ({error}); install it with "
            "`pipenv install --categories spark` or use --engine local"
        ) from None
    return spark.score(
        spark.session(), args.input, args.output, args.rejects, args.model, args.threshold
    )


def run_local(args: argparse.Namespace) -> tuple[dict[str, int], BatchModel]:
    if len({Path(path).resolve() for path in (args.input, args.output, args.rejects)}) < 3:
        raise InputFileError("--input, --output and --rejects must be three different files")
    model = BatchModel.load(Path(args.model), args.threshold)
    source = open_source(Path(args.input), args.batch_rows)
    layout = Layout.of(source.names)
    counts = {"rows_in": 0, "scored": 0, "rejected": 0, "problems": 0}
    with ExitStack() as cleanup:  # on any way out, what was not committed is discarded
        progress = cleanup.enter_context(closing(Progress(source.rows)))
        capture = None
        if args.capture_database:  # rows committed with the scores (churn/capture.py)
            from churn.capture import RunCapture  # psycopg: imported only when asked for

            capture = RunCapture(
                args.capture_database, model.version, model.threshold, layout.id_column
            )
            cleanup.callback(capture.discard)
        output = AtomicWriter(Path(args.output), layout.output_schema())
        cleanup.callback(output.discard)
        rejects = AtomicWriter(Path(args.rejects), layout.rejects_schema())
        cleanup.callback(rejects.discard)
        for batch in source.batches:
            scored, problems = score_record_batch(batch, model, counts["rows_in"] + 1, layout)
            output.write(scored)
            rejects.write(problems)
            if capture:
                capture.write(scored)
            counts["rows_in"] += len(batch)  # a list of JSON values or an Arrow batch
            counts["scored"] += scored.num_rows
            counts["problems"] += problems.num_rows
            progress.update(counts["rows_in"])
        counts["rejected"] = counts["rows_in"] - counts["scored"]
        flood = too_many_invalid(counts["rows_in"], counts["rejected"], args.max_invalid)
        rejects.commit()
        if not flood:  # a flood's scores (and their capture) are discarded
            output.commit()
        if capture:
            if not flood:
                capture.commit()
            counts["captured"] = 0 if flood else capture.rows
    return counts, model


class Progress:
    """``\\r  1,234,567 / 10,000,000 rows (12%)  1,050,000 rows/s`` on stderr, rewritten in
    place, when stderr is a terminal."""

    def __init__(self, total: int | None, stream: TextIO | None = None):
        self.total, self.stream = total, stream or sys.stderr
        self.started = self.shown_at = time.perf_counter()
        self.drawn = False

    def update(self, done: int) -> None:
        now = time.perf_counter()
        if not self.stream.isatty() or now - self.shown_at < REFRESH_SECONDS:
            return
        self.shown_at, self.drawn = now, True
        of = f" / {self.total:,} rows ({done * 100 // self.total}%)" if self.total else " rows"
        rate = done / max(now - self.started, 1e-9)
        print(f"\r  {done:,}{of}  {rate:,.0f} rows/s ", end="", file=self.stream, flush=True)

    def close(self) -> None:
        if self.drawn:
            print(file=self.stream, flush=True)
