"""``python -m churn.outcomes init|load|report``: the outcomes tables, loading outcomes from the
CRM, and the realized performance of each model version (docs/outcomes.md).

Exit codes as score.py's: 2 for a file, option or database that cannot be used, 3 when more than
``--max-invalid`` of a file's rows are rejected (then nothing is loaded).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from functools import partial
from itertools import groupby
from operator import attrgetter
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import psycopg
from psycopg.rows import namedtuple_row

from churn import charts
from churn.artifact import ModelFileError, load_metadata, metadata_path, write_atomically
from churn.batch import cli as score_py
from churn.batch.columns import InputFileError
from churn.capture import connect, one_line
from churn.config import DEFAULT_MODEL_FILE, ConfigError
from churn.evaluation import DEFAULT_AUC_TOLERANCE, bootstrap_auc, scores
from churn.profit import Costs, add_cost_options, costs_from, offers_profit
from churn.report import Report

PROG = "python -m churn.outcomes"
SQL_FILE = Path(__file__).resolve().parent.parent / "sql" / "outcomes.sql"
DEFAULT_WINDOW_DAYS = 90
SHORT = 12  # characters of a version (a SHA-256) shown in charts and headings
# Column names in any case and spacing: the docs' name first, then CRM's and Telco's.
COLUMNS = {
    "customer_id": ("customerid", "customer"),
    "churned": ("churned", "churn"),
    "observed_on": ("observedon", "observed", "observeddate", "date"),
}
WORDS = {"yes": True, "true": True, "1": True, "no": False, "false": False, "0": False}
MAX_ID_LENGTH = 128
REJECT_COLUMNS = ("row", "customer_id", "field", "message")
Outcome = tuple[str, date, bool]  # customer id, observed on, churned
Problem = tuple[int, str, str, str]  # row, customer id as given, field, why
Promise = tuple[str, float]  # a model file, the test AUC its training promised
# A customer has one outcome per date: loading again adds nothing, a change corrects the row.
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
# A prediction joins its customer's outcomes observed from its (UTC) date to the window's end;
# the customer churned if any says so. None in the window (or no id): no outcome, not a stayer.
WINDOW = """o.observed_on BETWEEN (p.predicted_at AT TIME ZONE 'UTC')::date
                         AND (p.predicted_at AT TIME ZONE 'UTC')::date + %(window)s"""
# One row per prediction with its week's Monday and its outcome; the versions grouped, the live
# one (that answered last) first, then the others latest first.
JOINED = f"""
SELECT p.model_version, p.predicted_at, p.customer_id, p.probability, p.churn, p.threshold,
       date_trunc('week', p.predicted_at AT TIME ZONE 'UTC')::date AS week,
       (SELECT bool_or(o.churned) FROM churn_outcomes o
        WHERE o.customer_id = p.customer_id AND {WINDOW}) AS churned
FROM churn_predictions p WHERE p.predicted_at >= %(since)s
ORDER BY max(p.predicted_at) OVER (PARTITION BY p.model_version) DESC, p.model_version,
         p.predicted_at
"""  # noqa: S608 (constant text only, as in OUTCOMES)
# Outcomes loaded, and those some prediction in the report joined.
OUTCOMES = f"""
SELECT count(*), count(*) FILTER (WHERE EXISTS (SELECT 1 FROM churn_predictions p
    WHERE p.customer_id = o.customer_id AND p.predicted_at >= %(since)s AND {WINDOW}))
FROM churn_outcomes o
"""  # noqa: S608


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
        default=score_py.DEFAULT_MAX_INVALID,
        metavar="FRACTION",
        help="refuse the file (exit 3) when a larger share of rows is bad (%(default)s)",
    )
    report = commands.add_parser("report", parents=[database], help="realized performance")
    report.add_argument("--output", required=True, type=Path, metavar="DIR")
    report.add_argument(
        "--window-days",
        type=int,
        default=DEFAULT_WINDOW_DAYS,
        help="days after a prediction its outcome counts (%(default)s)",
    )
    report.add_argument("--since", type=date.fromisoformat, help="predictions from DATE on")
    promise = f"a model whose training promised an AUC; repeatable ({DEFAULT_MODEL_FILE})"
    report.add_argument("--model", type=Path, action="append", help=promise)
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
    return score_py.EXIT_BAD_INPUT


def init(args: argparse.Namespace) -> int:
    with connect(args.database) as connection:
        connection.execute(SQL_FILE.read_text())  # CREATE ... IF NOT EXISTS: repeatable
    print(f"{PROG}: the tables are ready", file=sys.stderr)
    return 0


def load(args: argparse.Namespace) -> int:
    """Bad rows to the rejects file, as score.py's; the good ones in one statement, or none."""
    rejects = args.rejects or args.file.with_name(args.file.stem + ".rejects.csv")
    rows_in, good, problems = check_file(args.file)
    rejected = len({problem[0] for problem in problems})
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows([REJECT_COLUMNS, *problems])
    write_atomically(rejects, text.getvalue().encode("utf-8"))
    flood = score_py.too_many_invalid(rows_in, rejected, args.max_invalid)
    status = "too_many_invalid" if flood else "ok"
    summary = {"status": status, "input": str(args.file), "rows_in": rows_in, "loaded": 0}
    if not flood:
        with connect(args.database) as connection:
            columns = [list(column) for column in zip(*good, strict=True)] or [[], [], []]
            new, corrected = connection.execute(STORE, columns).fetchone() or (0, 0)
        unchanged = len(good) - new - corrected
        summary |= {"loaded": len(good), "new": new, "corrected": corrected, "unchanged": unchanged}
    summary |= {"rejected": rejected, "rejects": str(rejects)}
    print(orjson.dumps(summary).decode(), flush=True)
    if flood:
        print(
            f"{PROG}: error: {rejected:,} of {rows_in:,} rows rejected, more than --max-invalid "
            f"{args.max_invalid}; nothing loaded, see {rejects}",
            file=sys.stderr,
        )
        return score_py.EXIT_TOO_MANY_INVALID
    return 0


def check_file(path: Path) -> tuple[int, list[Outcome], list[Problem]]:
    """Rows read, the good outcomes, and the problems; ``InputFileError`` if unusable."""
    header, lines = read(path)
    positions = find_columns(path, header)
    latest = datetime.now(UTC).date() + timedelta(days=1)  # a day of slack for time zones
    parsers: list[Callable[[Any], Any]] = [customer, churned, partial(day, latest=latest)]
    good: dict[tuple[str, date], tuple[int, bool]] = {}  # (customer, day) -> (its row, churned)
    problems: list[Problem] = []
    number = 0
    for number, line in enumerate(lines, start=1):
        given = [line[i] if i < len(line) else None for i in positions]
        values: list[Any] = []
        wrong: list[tuple[str, str]] = []
        for name, value, parse in zip(COLUMNS, given, parsers, strict=True):
            try:
                values.append(parse(value))
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


def customer(value: Any) -> str:
    text = text_of(value)
    if isinstance(value, bool) or not isinstance(value, str | int | None):
        raise ValueError("must be text")
    if not text:
        raise ValueError("is missing")
    if len(text) > MAX_ID_LENGTH:
        raise ValueError(f"is longer than {MAX_ID_LENGTH} characters")
    return text


def churned(value: Any) -> bool:
    text = text_of(value)
    if text.lower() not in WORDS:
        raise ValueError(f"must be yes/no, true/false or 1/0, got {quoted(text)}")
    return WORDS[text.lower()]


def day(value: Any, latest: date) -> date:
    """The date ``value`` holds, at most ``latest`` (the file's check of the future)."""
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
            return table.column_names, zip(*(c.to_pylist() for c in table.columns), strict=True)
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
    """Each version's figures, the live one first, in metrics.json and report.html."""
    default = Path(DEFAULT_MODEL_FILE)
    promised = promises(args.model or ([default] if metadata_path(default).exists() else []))
    params = {"window": args.window_days, "since": args.since or date(1970, 1, 1)}
    with connect(args.database) as connection:
        rows = connection.cursor(row_factory=namedtuple_row).execute(JOINED, params).fetchall()
        loaded, joined = connection.execute(OUTCOMES, params).fetchone() or (0, 0)
    by_version = groupby(rows, attrgetter("model_version"))
    versions = {v: version_figures(list(r), args.costs, promised.get(v)) for v, r in by_version}
    live = next(iter(versions), None)  # the query's first: the live one
    metrics = {
        "window_days": args.window_days,
        "since": args.since.isoformat() if args.since else None,
        "live_version": live,
        "outcomes": {"loaded": loaded, "joined": joined},
        "costs": dataclasses.asdict(args.costs) if args.costs else None,
        "versions": versions,
    }
    write_report(metrics, args.output)
    line = versions[live]["verdict"] if live else "no captured predictions"
    print(f"{PROG}: live model {live[:SHORT] if live else '-'}: {line}", file=sys.stderr)
    print(orjson.dumps({"output": str(args.output), "versions": len(versions)}).decode())
    return 0


def promises(model_files: list[Path]) -> dict[str, Promise]:
    """Model version (artifact SHA-256) -> its promise, from each model's metadata."""
    found = {}
    for model_file in model_files:
        try:
            metadata = load_metadata(model_file)
            auc = float(metadata["metrics"]["test_auc"])
            found[metadata["artifact_sha256"]] = (model_file.name, auc)
        except (ModelFileError, KeyError, TypeError, ValueError) as error:
            raise ConfigError(f"--model {model_file}: cannot use its metadata ({error})") from None
    return found


def version_figures(rows: list[Any], costs: Costs | None, promise: Promise | None) -> dict:
    """One version's figures over all its predictions, and week by week."""
    identified = [row.customer_id for row in rows if row.customer_id is not None]
    figures = pair_figures(rows, costs) | {
        "first_prediction": rows[0].predicted_at.isoformat(),
        "last_prediction": rows[-1].predicted_at.isoformat(),
        "without_customer_id": len(rows) - len(identified),
        "distinct_customers": len(set(identified)),
        "thresholds": sorted({row.threshold for row in rows}),
        "weeks": [
            {"week": week.isoformat()} | pair_figures(list(in_week), None)
            for week, in_week in groupby(rows, attrgetter("week"))
        ],
        "promised_auc": promise[1] if promise else None,
    }
    return figures | {"verdict": verdict(figures, promise)}


def pair_figures(rows: list[Any], costs: Costs | None) -> dict[str, Any]:
    """Counts, AUC with its bootstrap interval, Brier, calibration, precision and recall of the
    decisions taken, and profit, over the predictions in ``rows`` that have an outcome."""
    joined = [row for row in rows if row.churned is not None]
    figures: dict[str, Any] = {"customers": len(rows), "with_outcome": len(joined)}
    if not joined:
        return figures | dict.fromkeys(("auc", "auc_low", "auc_high", "brier", "churn_rate"))
    churned = np.array([row.churned for row in joined], dtype=np.float64)
    probabilities = np.array([row.probability for row in joined], dtype=np.float64)
    flagged = np.array([row.churn for row in joined], dtype=bool)
    figures |= scores(churned, probabilities, flagged)
    interval = bootstrap_auc(churned, probabilities) if figures["auc"] is not None else None
    figures["auc_low"], figures["auc_high"] = interval or (None, None)
    caught, offers, churners = figures["confusion"]["true_positive"], flagged.sum(), churned.sum()
    figures["precision"] = float(caught / offers) if offers else None
    figures["recall"] = float(caught / churners) if churners else None
    if costs is not None:
        figures["realized"] = offers_profit(costs, churned, flagged)
    return figures


def verdict(figures: dict[str, Any], promise: Promise | None) -> str:
    """Whether the model still earns its place: its realized AUC against its promised one."""
    auc, low, high = figures["auc"], figures["auc_low"], figures["auc_high"]
    if auc is None:
        return "not enough outcomes yet: the AUC needs customers who churned and who stayed"
    interval = f" (95% CI {low:.3f}-{high:.3f})" if low is not None else ""
    realized = f"realized AUC {auc:.3f}{interval}"
    if promise is None:
        no_promise = "no training metadata for this version to compare with"
        return f"{realized}; {no_promise} (pass its model with --model)"
    promised = f"the {promise[1]:.3f} its training promised ({promise[0]})"
    floor = promise[1] - DEFAULT_AUC_TOLERANCE
    if auc >= floor:
        return f"earns its place: {realized} against {promised}"
    if high is not None and high < floor:
        return f"falls short: {realized} is below {promised}; retrain it or roll back"
    return f"below its promise but within noise: {realized} against {promised}"


def write_report(metrics: dict[str, Any], folder: Path) -> None:
    """``folder/report.html`` with its PNGs in ``folder/report/``, and ``folder/metrics.json``."""
    scored = {v[:SHORT]: f for v, f in metrics["versions"].items() if f.get("calibration")}
    images = {}
    if scored:
        series = [charts.Series(label, figures, {}) for label, figures in scored.items()]
        title = "Calibration on realized outcomes (10 equal-width bins)"
        images["calibration.png"] = charts.calibration(series, title)
        promised = {k: auc for k, f in scored.items() if (auc := f["promised_auc"]) is not None}
        weeks = {label: figures["weeks"] for label, figures in scored.items()}
        images["weekly_auc.png"] = charts.weekly_auc(weeks, promised)
    Report.of("outcomes.html", images, metrics=metrics, short=SHORT).write(folder / "report.html")
    data = orjson.dumps(metrics, option=orjson.OPT_INDENT_2) + b"\n"
    write_atomically(folder / "metrics.json", data)


if __name__ == "__main__":
    sys.exit(main())
