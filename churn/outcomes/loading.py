"""``python -m churn.outcomes load``: a CSV or Parquet file of outcomes into ``churn_outcomes``.

Each row says a customer churned or not, as observed on a date. A bad row is rejected with its
1-based data row number and the reason (the rejects file, as score.py writes one); the rest load
in one transaction, so a refused file (unreadable, missing columns, too many bad rows) leaves
nothing behind. Rows are keyed by customer and date: loading a file again adds nothing, and a
row whose ``churned`` changed corrects the one loaded before.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from churn.artifact import write_atomically
from churn.outcomes import OutcomesError, open_database

# Column names in any spelling (case, spaces, underscores): the first name listed is the one
# the docs use; the others are what CRM exports and the Telco data call them.
COLUMNS = {
    "customer_id": ("customerid", "customer"),
    "churned": ("churned", "churn"),
    "observed_on": ("observedon", "observed", "observeddate", "date"),
}
TRUE_WORDS = frozenset({"yes", "true", "1"})
FALSE_WORDS = frozenset({"no", "false", "0"})
MAX_ID_LENGTH = 128
REJECT_COLUMNS = ("row", "customer_id", "field", "message")

Outcome = tuple[str, date, bool]  # customer id, observed on, churned


@dataclass
class Checked:
    """A file's rows: the good ones (and their row numbers), and one line per problem."""

    rows_in: int = 0
    good: list[Outcome] = field(default_factory=list)
    problems: list[tuple[int, str, str, str]] = field(default_factory=list)  # row, id, field, why

    @property
    def rejected(self) -> int:
        return len({problem[0] for problem in self.problems})


def default_rejects_path(source: Path) -> Path:
    """``outcomes.csv`` -> ``outcomes.rejects.csv`` (always CSV: one line per problem)."""
    return source.with_name(source.stem + ".rejects.csv")


def check_file(path: Path, today: date | None = None) -> Checked:
    """Read ``path`` (.csv or .parquet) and check every row; ``OutcomesError`` if unreadable."""
    today = today or datetime.now(UTC).date()
    checked = Checked()
    first_seen: dict[tuple[str, date], int] = {}
    for number, record in enumerate(_records(path), start=1):
        checked.rows_in = number
        outcome, problems = _check(record, today)
        if outcome is not None:
            key = (outcome[0], outcome[1])
            if key in first_seen:
                message = f"a second outcome for this customer on {outcome[1]} (first on row "
                problems = [("observed_on", message + f"{first_seen[key]})")]
            else:
                first_seen[key] = number
        shown = str(record["customer_id"]) if record["customer_id"] is not None else ""
        if problems:
            checked.problems += [(number, shown, name, why) for name, why in problems]
        elif outcome is not None:
            checked.good.append(outcome)
    return checked


def _check(record: dict[str, Any], today: date) -> tuple[Outcome | None, list[tuple[str, str]]]:
    problems = []
    customer = _customer(record["customer_id"])
    if isinstance(customer, Problem):
        problems.append(("customer_id", customer.message))
    churned = _churned(record["churned"])
    if isinstance(churned, Problem):
        problems.append(("churned", churned.message))
    observed = _observed(record["observed_on"], today)
    if isinstance(observed, Problem):
        problems.append(("observed_on", observed.message))
    if problems:
        return None, problems
    return (customer, observed, churned), []  # type: ignore[return-value]  # checked above


@dataclass(frozen=True)
class Problem:
    message: str


def _customer(value: Any) -> str | Problem:
    if isinstance(value, bool) or not isinstance(value, str | int):
        return Problem("is missing" if value is None else "must be text")
    text = str(value).strip()
    if not text:
        return Problem("is missing")
    if len(text) > MAX_ID_LENGTH:
        return Problem(f"is longer than {MAX_ID_LENGTH} characters")
    return text


def _churned(value: Any) -> bool | Problem:
    if isinstance(value, bool):
        return value
    text = "" if value is None else str(value).strip().lower()
    if text in TRUE_WORDS:
        return True
    if text in FALSE_WORDS:
        return False
    shown = repr(text) if text else "nothing"
    return Problem(f"must be yes/no, true/false or 1/0, got {shown}")


def _observed(value: Any, today: date) -> date | Problem:
    if isinstance(value, datetime):
        day = value.date()
    elif isinstance(value, date):
        day = value
    else:
        text = "" if value is None else str(value).strip()
        try:
            day = date.fromisoformat(text[:10]) if len(text) >= 10 else date.fromisoformat(text)
        except ValueError:
            shown = "nothing" if not text else repr(text)
            return Problem(f"must be a date as YYYY-MM-DD, got {shown}")
    if day > today + timedelta(days=1):  # a day of slack for time zones
        return Problem(f"{day} is in the future")
    return day


def _records(path: Path) -> Iterator[dict[str, Any]]:
    """The file's rows as {customer_id, churned, observed_on}; ``OutcomesError`` if it cannot
    be read or lacks a column."""
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise OutcomesError(f"{path}: outcomes must be a .csv or .parquet file")
    try:
        if suffix == ".csv":
            yield from _csv_records(path)
        else:
            yield from _parquet_records(path)
    except (OSError, UnicodeDecodeError, csv.Error, ValueError) as error:
        raise OutcomesError(f"{path}: cannot read it ({error})") from None


def _csv_records(path: Path) -> Iterator[dict[str, Any]]:
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise OutcomesError(f"{path}: the file is empty")
        positions = _positions(path, header)
        for line in reader:
            if not any(cell.strip() for cell in line):
                continue  # a blank line (often the last): not a row
            yield {name: line[i] if i < len(line) else None for name, i in positions.items()}


def _parquet_records(path: Path) -> Iterator[dict[str, Any]]:
    import pyarrow.parquet as pq  # the batch category (score.py's); the service never loads

    parquet = pq.ParquetFile(path)
    positions = _positions(path, parquet.schema_arrow.names)
    wanted = list(positions.values())
    for batch in parquet.iter_batches(columns=[parquet.schema_arrow.names[i] for i in wanted]):
        columns = dict(zip(positions, batch.columns, strict=True))
        lists = {name: column.to_pylist() for name, column in columns.items()}
        for row in range(batch.num_rows):
            yield {name: values[row] for name, values in lists.items()}


def _positions(path: Path, header: list[str]) -> dict[str, int]:
    """Where each wanted column is; ``OutcomesError`` naming what is missing or doubled."""
    found: dict[str, int] = {}
    for position, name in enumerate(header):
        token = re.sub(r"[^a-z0-9]", "", name.lower())
        for column, spellings in COLUMNS.items():
            if token in spellings:
                if column in found:
                    raise OutcomesError(
                        f"{path}: columns {header[found[column]]!r} and {name!r} are both {column}"
                    )
                found[column] = position
    missing = [column for column in COLUMNS if column not in found]
    if missing:
        raise OutcomesError(
            f"{path}: missing column(s) {', '.join(missing)}; the columns are customer_id, "
            "churned (yes/no, true/false, 1/0) and observed_on (YYYY-MM-DD)"
        )
    return found


def write_rejects(path: Path, problems: list[tuple[int, str, str, str]]) -> None:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(REJECT_COLUMNS)
    writer.writerows(problems)
    write_atomically(path, text.getvalue().encode("utf-8"))


def store(url: str, outcomes: list[Outcome]) -> dict[str, int]:
    """Insert or correct ``outcomes`` in one transaction: {new, corrected, unchanged}."""
    with open_database(url) as connection:
        try:
            return _store(connection, outcomes)
        except psycopg.errors.UndefinedTable:
            raise OutcomesError(
                "--database has no churn_outcomes table; create it with "
                "`python -m churn.outcomes init --database URL`"
            ) from None


def _store(connection: psycopg.Connection, outcomes: list[Outcome]) -> dict[str, int]:
    with connection.transaction(), connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE incoming (customer_id text, observed_on date, churned boolean) "
            "ON COMMIT DROP"
        )
        with cursor.copy("COPY incoming (customer_id, observed_on, churned) FROM STDIN") as copy:
            for outcome in outcomes:
                copy.write_row(outcome)
        cursor.execute(
            "INSERT INTO churn_outcomes (customer_id, observed_on, churned) "
            "SELECT customer_id, observed_on, churned FROM incoming "
            "ON CONFLICT (customer_id, observed_on) DO UPDATE "
            "SET churned = EXCLUDED.churned, loaded_at = now() "
            "WHERE churn_outcomes.churned IS DISTINCT FROM EXCLUDED.churned "
            "RETURNING (xmax = 0)"  # true: a new row; false: an update of one loaded before
        )
        changes = [row[0] for row in cursor.fetchall()]
    new = sum(changes)
    corrected = len(changes) - new
    return {"new": new, "corrected": corrected, "unchanged": len(outcomes) - new - corrected}
