"""``python -m churn.outcomes init|load|report``: the outcomes tables, loading outcomes, and the
realized-performance report (docs/outcomes.md).

Exit codes as score.py's: 2 for a file, option or database that cannot be used, 3 when more than
``--max-invalid`` of a file's rows are rejected (then nothing is loaded).
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

import orjson

from churn.batch.cli import (
    DEFAULT_MAX_INVALID,
    EXIT_BAD_INPUT,
    EXIT_TOO_MANY_INVALID,
    too_many_invalid,
)
from churn.config import DEFAULT_MODEL_FILE, metadata_path
from churn.outcomes import OutcomesError, loading, open_database, realized
from churn.profit import add_cost_options, costs_from

PROG = "python -m churn.outcomes"
SQL_FILE = Path(__file__).resolve().parent.parent / "sql" / "outcomes.sql"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    database = argparse.ArgumentParser(add_help=False)
    database.add_argument(
        "--database", required=True, metavar="URL", help="postgresql://user:password@host/db"
    )

    commands.add_parser("init", parents=[database], help="create the tables (safe to repeat)")

    load = commands.add_parser("load", parents=[database], help="load a file of outcomes")
    load.add_argument("file", type=Path, help=".csv or .parquet: customer_id, churned, observed_on")
    load.add_argument(
        "--rejects", type=Path, help="rejected rows (default: beside the file, NAME.rejects.csv)"
    )
    load.add_argument(
        "--max-invalid",
        type=float,
        default=DEFAULT_MAX_INVALID,
        metavar="FRACTION",
        help=f"refuse the file (exit 3) when a larger share of rows is bad ({DEFAULT_MAX_INVALID})",
    )

    report = commands.add_parser("report", parents=[database], help="realized performance")
    report.add_argument("--output", required=True, type=Path, metavar="DIR")
    report.add_argument(
        "--window-days",
        type=int,
        default=realized.DEFAULT_WINDOW_DAYS,
        help=f"days after a prediction its outcome counts ({realized.DEFAULT_WINDOW_DAYS})",
    )
    report.add_argument("--since", type=date.fromisoformat, help="predictions from DATE on")
    report.add_argument(
        "--model",
        type=Path,
        action="append",
        help=f"a model whose metadata says what AUC it promised; repeatable ({DEFAULT_MODEL_FILE})",
    )
    add_cost_options(report, "realized profit, with the training report's costs")
    args = parser.parse_args(argv)
    if args.command == "report":
        if args.window_days < 0:
            parser.error("--window-days must be 0 or more")
        args.costs = costs_from(args, parser)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.command == "init":
            with open_database(args.database) as connection:
                connection.execute(SQL_FILE.read_text())  # CREATE ... IF NOT EXISTS: repeatable
            print(f"{PROG}: the tables are ready", file=sys.stderr)
            return 0
        if args.command == "load":
            return load(args)
        return report(args)
    except OutcomesError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT


def load(args: argparse.Namespace) -> int:
    rejects = args.rejects or loading.default_rejects_path(args.file)
    checked = loading.check_file(args.file)
    loading.write_rejects(rejects, checked.problems)
    flood = too_many_invalid(checked.rows_in, checked.rejected, args.max_invalid)
    stored = {} if flood else loading.store(args.database, checked.good)
    summary = {
        "status": "too_many_invalid" if flood else "ok",
        "input": str(args.file),
        "rows_in": checked.rows_in,
        "loaded": 0 if flood else len(checked.good),
        **stored,
        "rejected": checked.rejected,
        "rejects": str(rejects),
    }
    print(orjson.dumps(summary).decode(), flush=True)
    if flood:
        print(
            f"{PROG}: error: {checked.rejected:,} of {checked.rows_in:,} rows rejected, more than "
            f"--max-invalid {args.max_invalid}; nothing loaded, see {rejects}",
            file=sys.stderr,
        )
        return EXIT_TOO_MANY_INVALID
    return 0


def report(args: argparse.Namespace) -> int:
    default = Path(DEFAULT_MODEL_FILE)
    models = args.model or ([default] if metadata_path(default).exists() else [])
    promised = realized.promises(models)
    rows, outcomes = realized.fetch(args.database, args.window_days, args.since)
    metrics = realized.compute(rows, outcomes, args.window_days, args.since, args.costs, promised)
    realized.write_report(metrics, args.output)
    live = metrics["live_version"]
    line = metrics["versions"][live]["verdict"] if live else "no captured predictions"
    print(f"{PROG}: live model {live[: realized.SHORT] if live else '-'}: {line}", file=sys.stderr)
    print(orjson.dumps({"output": str(args.output), "versions": len(metrics["versions"])}).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
