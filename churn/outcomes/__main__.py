"""``python -m churn.outcomes init|load|report``: the outcomes tables, loading outcomes, and the
realized-performance report (churn/outcomes/realized.py; docs/outcomes.md).

``load`` rejects a bad row with its 1-based data row number and reason, as score.py does, and
stores the good ones in one statement. Exit codes as score.py's: 2 for a file, option or
database that cannot be used, 3 when more than ``--max-invalid`` of the rows are rejected; then
nothing is loaded. A customer has one outcome per date: loading a file again adds nothing, and
a changed ``churned`` corrects the old row.
"""

from __future__ import annotations

import argparse
import csv
import io
import re
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import psycopg

from churn.artifact import write_atomically
from churn.batch.cli import (
    DEFAULT_MAX_INVALID,
    EXIT_BAD_INPUT,
    EXIT_TOO_MANY_INVALID,
    too_many_invalid,
)
from churn.batch.columns import InputFileError
from churn.capture import connect, one_line
from churn.config import DEFAULT_MODEL_FILE, ConfigError, metadata_path
from churn.outcomes import realized
from churn.profit import add_cost_options, costs_from

PROG = "python -m churn.outcomes"
SQL_FILE = Path(__file__).resolve().parent.parent / "sql" / "outcomes.sql"
# Column names in any case and spacing: the docs' name first, then CRM's and Telco's.
COLUMNS = {
    "customer_id": ("customerid", "customer"),
    "churned": ("churned", "churn"),
    "observed_on": ("observedon", "observed", "observeddate", "date"),
}
WORDS = {"yes": True, "true": True, "1": True, "no": False, "false": False, "0": False}
MAX_ID_LENGTH = 128
Outcome = tuple[str, date, bool]  # customer id, observed on, churned
Problem = tuple[int, str, str, str]  # row, customer id as given, field, why
STORE = """
WITH changed AS (
    INSERT INTO churn_outcomes (customer_id, observed_on, churned)
    SELECT * FROM unnest(%s::text[], %s::date[], %s::boolean[])
    ON CONFLICT (customer_id, observed_on) DO UPDATE
    SET churned = EXCLUDED.churned, loaded_at = now()
    WHERE churn_outcomes.churned IS DISTINCT FROM EXCLUDED.churned
    RETURNING xmax = 0 AS new  -- xmax 0: inserted; otherwise an old row updated
)
SELECT count(*) FILTER (WHERE new), count(*) FILTER (WHERE NOT new) FROM changed
"""


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
        return {"init": init, "load": load, "report": report}[args.command](args)
    except (InputFileError, ConfigError) as error:
        message = str(error)
    except psycopg.errors.UndefinedTable:
        message = f"--database has no capture tables; create them with `{PROG} init --database URL`"
    except psycopg.Error as error:
        message = f"--database: {one_line(error, args.database)}"
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def database(args: argparse.Namespace) -> psycopg.Connection:
    """``--database``, with no statement timeout: a large load or report takes its time."""
    return connect(args.database, statement_timeout_ms=0)


def init(args: argparse.Namespace) -> int:
    with database(args) as connection:
        connection.execute(SQL_FILE.read_text())  # CREATE ... IF NOT EXISTS: repeatable
    print(f"{PROG}: the tables are ready", file=sys.stderr)
    return 0


def load(args: argparse.Namespace) -> int:
    rejects = args.rejects or args.file.with_name(args.file.stem + ".rejects.csv")
    rows_in, good, problems = check_file(args.file)
    rejected = len({problem[0] for problem in problems})
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(
        [("row", "customer_id", "field", "message"), *problems]
    )
    write_atomically(rejects, text.getvalue().encode("utf-8"))
    flood = too_many_invalid(rows_in, rejected, args.max_invalid)
    stored = {}
    if not flood:
        with database(args) as connection:
            columns = [list(column) for column in zip(*good, strict=True)] or [[], [], []]
            new, corrected = connection.execute(STORE, columns).fetchone() or (0, 0)
        stored = {"new": new, "corrected": corrected, "unchanged": len(good) - new - corrected}
    summary = {
        "status": "too_many_invalid" if flood else "ok",
        "input": str(args.file),
        "rows_in": rows_in,
        "loaded": 0 if flood else len(good),
        **stored,
        "rejected": rejected,
        "rejects": str(rejects),
    }
    print(orjson.dumps(summary).decode(), flush=True)
    if flood:
        print(
            f"{PROG}: error: {rejected:,} of {rows_in:,} rows rejected, more than --max-invalid "
            f"{args.max_invalid}; nothing loaded, see {rejects}",
            file=sys.stderr,
        )
        return EXIT_TOO_MANY_INVALID
    return 0


def check_file(path: Path) -> tuple[int, list[Outcome], list[Problem]]:
    """Rows read, the good outcomes, and one line per problem; ``InputFileError`` if the file
    cannot be read or lacks a column."""
    header, lines = read(path)
    positions = find_columns(path, header)
    latest = datetime.now(UTC).date() + timedelta(days=1)  # a day of slack for time zones
    good: dict[tuple[str, date], tuple[int, bool]] = {}  # (customer, day) -> (its row, churned)
    problems: list[Problem] = []
    number = 0
    for number, line in enumerate(lines, start=1):
        given = [line[i] if i < len(line) else None for i in positions]
        values: list[Any] = []
        wrong: list[tuple[str, str]] = []
        for name, value, parse in zip(COLUMNS, given, (customer, churned, day), strict=True):
            try:
                values.append(parse(value, latest))
            except ValueError as error:
                wrong.append((name, str(error)))
        key = None if wrong else (values[0], values[2])
        if key in good:
            message = f"a second outcome for this customer on {values[2]} (first on row "
            wrong = [("observed_on", f"{message}{good[key][0]})")]
        elif key is not None:
            good[key] = (number, values[1])
        shown = "" if given[0] is None else str(given[0])
        problems += [(number, shown, name, why) for name, why in wrong]
    return number, [(id_, on, left) for (id_, on), (_, left) in good.items()], problems


def customer(value: Any, latest: date) -> str:
    text = text_of(value)
    if isinstance(value, bool) or not isinstance(value, str | int | None):
        raise ValueError("must be text")
    if not text:
        raise ValueError("is missing")
    if len(text) > MAX_ID_LENGTH:
        raise ValueError(f"is longer than {MAX_ID_LENGTH} characters")
    return text


def churned(value: Any, latest: date) -> bool:
    word = text_of(value).lower()
    if word not in WORDS:
        raise ValueError(f"must be yes/no, true/false or 1/0, got {quoted(word)}")
    return WORDS[word]


def day(value: Any, latest: date) -> date:
    text = text_of(value)
    try:
        observed = date.fromisoformat(text[:10])  # a time after the date is ignored
    except ValueError:
        raise ValueError(f"must be a date as YYYY-MM-DD, got {quoted(text)}") from None
    if observed > latest:
        raise ValueError(f"{observed} is in the future")
    return observed


def text_of(value: Any) -> str:
    return "" if value is None else str(value).strip()  # Parquet's booleans and dates too


def quoted(text: str) -> str:
    return repr(text) if text else "nothing"


def read(path: Path) -> tuple[list[str], Iterable[Sequence[Any]]]:
    """The file's header and data rows (blank lines skipped)."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            import pyarrow.parquet as pq  # the batch category (score.py's); the service never loads

            table = pq.read_table(path)
            return table.column_names, zip(
                *(column.to_pylist() for column in table.columns), strict=True
            )
        if suffix == ".csv":
            with open(path, newline="", encoding="utf-8-sig") as handle:
                lines = [line for line in csv.reader(handle) if any(cell.strip() for cell in line)]
            if not lines:
                raise InputFileError(f"{path}: the file is empty")
            return lines[0], lines[1:]
    except (OSError, UnicodeDecodeError, csv.Error, ValueError) as error:
        raise InputFileError(f"{path}: cannot read it ({error})") from None
    raise InputFileError(f"{path}: outcomes must be a .csv or .parquet file")


def find_columns(path: Path, header: list[str]) -> list[int]:
    """Where each of ``COLUMNS`` is; ``InputFileError`` naming what is missing or doubled."""
    found: dict[str, int] = {}
    for position, name in enumerate(header):
        token = re.sub(r"[^a-z0-9]", "", name.lower())
        for column in (column for column, names in COLUMNS.items() if token in names):
            if column in found:
                message = f"columns {header[found[column]]!r} and {name!r} are both {column}"
                raise InputFileError(f"{path}: {message}")
            found[column] = position
    if missing := [column for column in COLUMNS if column not in found]:
        raise InputFileError(
            f"{path}: missing column(s) {', '.join(missing)}; the columns are customer_id, "
            "churned (yes/no, true/false, 1/0) and observed_on (YYYY-MM-DD)"
        )
    return [found[column] for column in COLUMNS]


def report(args: argparse.Namespace) -> int:
    default = Path(DEFAULT_MODEL_FILE)
    models = args.model or ([default] if metadata_path(default).exists() else [])
    promised = realized.promises(models)
    with database(args) as connection:
        metrics = realized.compute(connection, args, promised)
    realized.write_report(metrics, args.output)
    live = metrics["live_version"]
    line = metrics["versions"][live]["verdict"] if live else "no captured predictions"
    print(f"{PROG}: live model {live[: realized.SHORT] if live else '-'}: {line}", file=sys.stderr)
    print(orjson.dumps({"output": str(args.output), "versions": len(metrics["versions"])}).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
