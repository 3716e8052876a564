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
    """A file's rows: the good ones, and one line per problem (row, id, field, why)."""

    rows_in: int = 0
    good: list[Outcome] = field(default_factory=list)
    problems: list[tuple[int, str, str, str]] = field(default_factory=list)

    @property
    def rejected(self) -> int:
        return len({problem[0] for problem in self.problems})


def default_rejects_path(source: Path) -> Path:
    """``outcomes.csv`` -> ``outcomes.rejects.csv`` (always CSV: one line per problem)."""
    return source.with_name(source.stem + ".rejects.csv")


def check_file(path: Path) -> Checked:
    """Read ``path`` (.csv or .parquet) and check every row; ``OutcomesError`` if unreadable."""
    today = datetime.now(UTC).date()
    checked = Checked()
    first_seen: dict[tuple[str, date], int] = {}
    for number, record in enumerate(_records(path), start=1):
        checked.rows_in = number
        outcome, problems = _check(record, today)
        if outcome is not None:
            key = outcome[:2]  # the customer and the date
            if key in first_seen:
                first = first_seen[key]
                message = f"a second outcome for this customer on {key[1]} (first on row {first})"
                problems = [("observed_on", message)]
            else:
                first_seen[key] = number
                checked.good.append(outcome)
        shown = "" if record["customer_id"] is None else str(record["customer_id"])
        checked.problems += [(number, shown, name, why) for name, why in problems]
    return checked


def _check(record: dict[str, Any], today: date) -> tuple[Outcome | None, list[tuple[str, str]]]:
    """The row as an outcome, or None and (field, why) for each value that is wrong."""
    parsers = {
        "customer_id": _customer,
        "churned": _churned,
        "observed_on": lambda value: _observed(value, today),
    }
    values: dict[str, Any] = {}
    problems = []
    for name, parse in parsers.items():
        try:
            values[name] = parse(record[name])
        except ValueError as error:
            problems.append((name, str(error)))
    if problems:
        return None, problems
    return (values["customer_id"], values["observed_on"], values["churned"]), []


def _customer(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | None):
        raise ValueError("must be text")
    text = "" if value is None else str(value).strip()
    if not text:
        raise ValueError("is missing")
    if len(text) > MAX_ID_LENGTH:
        raise ValueError(f"is longer than {MAX_ID_LENGTH} characters")
    return text


def _churned(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = "" if value is None else str(value).strip().lower()
    if text in TRUE_WORDS | FALSE_WORDS:
        return text in TRUE_WORDS
    shown = repr(text) if text else "nothing"
    raise ValueError(f"must be yes/no, true/false or 1/0, got {shown}")


def _observed(value: Any, today: date) -> date:
    if isinstance(value, datetime):
        day = value.date()
    elif isinstance(value, date):
        day = value
    else:
        text = "" if value is None else str(value).strip()
        try:
            day = date.fromisoformat(text[:10])  # a time after the date is ignored
        except ValueError:
            shown = repr(text) if text else "nothing"
            raise ValueError(f"must be a date as YYYY-MM-DD, got {shown}") from None
    if day > today + timedelta(days=1):  # a day of slack for time zones
        raise ValueError(f"{day} is in the future")
    return day


def _records(path: Path) -> Iterator[dict[str, Any]]:
    """The file's rows as {customer_id, churned, observed_on}; ``OutcomesError`` if it cannot
    be read or lacks a column."""
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise OutcomesError(f"{path}: outcomes must be a .csv or .parquet file")
    try:
        yield from _csv_records(path) if suffix == ".csv" else _parquet_records(path)
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


def _parquet_records(path: Path) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq  # the batch category (score.py's); the service never loads

    names = pq.read_schema(path).names
    positions = _positions(path, names)
    wanted = [names[i] for i in positions.values()]
    table = pq.read_table(path, columns=wanted).select(wanted)
    return table.rename_columns(list(positions)).to_pylist()


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
            with connection.transaction(), connection.cursor() as cursor:
                cursor.execute(
                    "CREATE TEMP TABLE incoming (customer_id text, observed_on date, "
                    "churned boolean) ON COMMIT DROP"
                )
                copy_in = "COPY incoming (customer_id, observed_on, churned) FROM STDIN"
                with cursor.copy(copy_in) as copy:
                    for outcome in outcomes:
                        copy.write_row(outcome)
                cursor.execute(
                    "INSERT INTO churn_outcomes (customer_id, observed_on, churned) "
                    "SELECT customer_id, observed_on, churned FROM incoming "
                    "ON CONFLICT (customer_id, observed_on) DO UPDATE "
                    "SET churned = EXCLUDED.churned, loaded_at = now() "
                    "WHERE churn_outcomes.churned IS DISTINCT FROM EXCLUDED.churned "
                    "RETURNING (xmax = 0)"  # true: a new row; false: an update of an old one
                )
                changes = [row[0] for row in cursor.fetchall()]
        except psycopg.errors.UndefinedTable:
            raise OutcomesError(
                "--database has no churn_outcomes table; create it with "
                "`python -m churn.outcomes init --database URL`"
            ) from None
    new, corrected = sum(changes), len(changes) - sum(changes)
    return {"new": new, "corrected": corrected, "unchanged": len(outcomes) - new - corrected}
