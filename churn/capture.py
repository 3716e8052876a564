"""Prediction capture: every answered customer as one row of PostgreSQL's ``churn_predictions``.

``submit`` is all a request pays: it appends the request's results to an in-memory queue. A
background thread in each process takes what is queued about once a second and writes it in one
``COPY``. Capture never slows or fails a prediction:

- the database slow or down: that second's rows are dropped and counted
  (``churn_capture_rows_total{outcome="dropped"}``) and the next write tries again, so capture
  resumes on its own when the database returns;
- the queue is bounded (``MAX_QUEUED_ROWS`` per process, rows being written included): when full,
  new rows are dropped and counted the same way;
- a graceful stop writes what is pending (``close``, run at exit);
- a SIGKILL loses what was queued and not yet written: at most the rows a worker answered
  since its last write began (about one second's worth, plus the time a write under way takes),
  and never more than ``MAX_QUEUED_ROWS``.

Each process starts its own writer at its first ``submit``: gunicorn's master loads the app and
forks the workers but never submits, so each worker starts with an empty queue and no thread.
"""

from __future__ import annotations

import atexit
import logging
import re
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import psycopg
from prometheus_client import Counter
from psycopg.types.json import Jsonb

from churn.config import ConfigError

ROWS = Counter(
    "churn_capture_rows_total",
    "Predictions captured to PostgreSQL: written, or dropped (database down or slow)",
    ["outcome"],
)
WRITE_INTERVAL_SECONDS = 1.0
MAX_QUEUED_ROWS = 10_000  # per process: a few MB, ten seconds of a busy worker
CONNECT_TIMEOUT_SECONDS = 5
# A write that takes longer is abandoned (its rows dropped): a slow database cannot hold the
# queue. A database that vanished from the network is noticed as fast (TCP_USER_TIMEOUT and
# keepalives) instead of after the kernel's ~15 minutes of retries.
STATEMENT_TIMEOUT_MS = 5_000
# How long a graceful stop waits for the last write: a full queue takes well under a second to a
# healthy database, and gunicorn's graceful timeout (8 s) covers the requests in flight too.
STOP_WAIT_SECONDS = 3.0
TABLE = "churn_predictions"
COPY = (
    f"COPY {TABLE} (predicted_at, request_id, customer_id, model_version, probability, churn, "
    "threshold, source, features) FROM STDIN"
)

# (submitted at, request id, model version, threshold, results, customers as sent or None)
Item = tuple[float, str, str, float, Sequence[Mapping[str, Any]], Any]


class Capture:
    """Queue answered customers and write them to ``churn_predictions`` off the request path."""

    def __init__(
        self,
        url: str,
        source: str,
        features: bool = False,
        logger: logging.Logger | None = None,
        max_rows: int = MAX_QUEUED_ROWS,
    ) -> None:
        self.url, self.source, self.features, self.max_rows = url, source, features, max_rows
        self.logger = logger or logging.getLogger(__name__)
        self._lock = threading.Lock()  # guards the queue and its count
        self._items: list[Item] = []
        self._queued = 0  # rows queued or being written: what the bound applies to
        self._connection: psycopg.Connection | None = None
        self._writer: threading.Thread | None = None
        self._stopping = threading.Event()
        self._failing = False  # the last write failed: say so once, and once when it recovers

    @classmethod
    def start_up(
        cls, url: str | None, source: str, features: bool, logger: logging.Logger, name: str
    ) -> Capture | None:
        """A capture to ``url`` (None: capture off) whose database answers and has the table;
        otherwise ``ConfigError`` naming ``name``, the variable or option that gave the URL."""
        if url is None:
            return None
        check_database(url, name)
        return cls(url, source, features, logger)

    def submit(
        self,
        request_id: str,
        version: str,
        threshold: float,
        results: Sequence[Mapping[str, Any]],
        customers: Any = None,
    ) -> None:
        """Queue one request's results (``customer_id``, ``churn_probability``, ``churn``) and,
        when features are captured, ``customers`` as the request sent them. Never blocks on the
        database; a full queue drops and counts."""
        if self._writer is None:
            self._start_writer()
        with self._lock:
            if self._queued + len(results) > self.max_rows:
                ROWS.labels("dropped").inc(len(results))
                return
            self._queued += len(results)
            kept = customers if self.features else None
            self._items.append((time.time(), request_id, version, threshold, results, kept))

    def flush(self) -> None:
        """Write what is queued now: the writer thread, or ``close`` once it has stopped."""
        with self._lock:
            items, self._items = self._items, []
        rows = sum(len(item[4]) for item in items)
        if not rows:
            return
        try:
            self._write(rows_of(items, self.source))
        except Exception as error:  # whatever failed, the rows are counted, never kept
            ROWS.labels("dropped").inc(rows)
            if not self._failing:  # once per outage, not once a second
                self._failing = True
                self.logger.warning(
                    "prediction capture: PostgreSQL write failed, rows are dropped and counted "
                    "until it works again: %s",
                    one_line(error, self.url),
                )
        else:
            ROWS.labels("written").inc(rows)
            if self._failing:
                self._failing = False
                self.logger.warning("prediction capture: writing to PostgreSQL again")
        finally:
            with self._lock:
                self._queued -= rows

    def close(self) -> None:
        """Stop the writer and write what is pending (a graceful stop)."""
        if self._writer is not None and self._writer.is_alive():
            self._stopping.set()
            self._writer.join(STOP_WAIT_SECONDS)
        else:
            self.flush()
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _start_writer(self) -> None:
        with self._lock:
            if self._writer is not None:
                return
            self._writer = threading.Thread(target=self._run, name="capture-writer", daemon=True)
            self._writer.start()
        atexit.register(self.close)  # gunicorn's workers leave through sys.exit: this runs

    def _run(self) -> None:
        while True:
            stopping = self._stopping.wait(WRITE_INTERVAL_SECONDS)
            try:
                self.flush()
            except Exception:  # a bug here must not end capture for the worker's lifetime
                self.logger.exception("prediction capture: unexpected error")
            if stopping:
                return

    def _write(self, rows: Iterable[tuple[Any, ...]]) -> None:
        connection = self._connection
        if connection is None or connection.closed:
            connection = self._connection = connect(self.url)
        try:
            copy_rows(connection, rows)
            connection.commit()
        except BaseException:
            self._connection = None
            connection.close()
            raise


def rows_of(items: list[Item], source: str) -> Iterator[tuple[Any, ...]]:
    """The table's rows (``COPY``'s columns) for queued items: one per answered customer."""
    for at, request_id, version, threshold, results, customers in items:
        when = datetime.fromtimestamp(at, UTC)
        sent = [customers] if isinstance(customers, dict) else customers
        for position, result in enumerate(results):
            features = Jsonb(sent[position]) if sent else None
            yield (
                when, request_id, result.get("customer_id"), version,
                result["churn_probability"], result["churn"], threshold, source, features,
            )  # fmt: skip


def copy_rows(connection: psycopg.Connection, rows: Iterable[tuple[Any, ...]]) -> None:
    with connection.cursor() as cursor, cursor.copy(COPY) as copy:
        for row in rows:
            copy.write_row(row)


class RunCapture:
    """score.py's scored rows (``--capture-database``), written batch by batch in one
    transaction that commits when the scores do (``commit``) and leaves nothing when they are
    discarded (``discard``), like score.py's output files.

    The database failing mid-run does not fail the run: the scores are written, the capture
    is abandoned with a warning, and ``rows`` says 0 were captured.
    """

    def __init__(self, url: str, version: str, threshold: float, id_column: str | None) -> None:
        check_database(url, "--capture-database")
        self.url, self.version, self.threshold, self.id_column = url, version, threshold, id_column
        self.run_id = "score.py-" + uuid.uuid4().hex  # the rows' request id: one per run
        self.rows = 0
        # No statement timeout: a batch's COPY takes as long as its rows do.
        self._connection: psycopg.Connection | None = connect(url, statement_timeout_ms=0)

    def write(self, scored: Any) -> None:
        """Add a scored Arrow batch (an id column, ``churn_probability``, ``churn``)."""
        if self._connection is None:
            return
        names = ["customer_id" if name == self.id_column else name for name in scored.schema.names]
        results = scored.rename_columns(names).to_pylist()  # as /predict's results
        item = (time.time(), self.run_id, self.version, self.threshold, results, None)
        try:
            copy_rows(self._connection, rows_of([item], "score.py"))
        except psycopg.Error as error:
            self._abandon(error)
            return
        self.rows += len(results)

    def commit(self) -> None:
        if self._connection is None:
            return
        try:
            self._connection.commit()
        except psycopg.Error as error:
            self._abandon(error)
        finally:
            self.discard()

    def discard(self) -> None:
        if self._connection is not None:
            self._connection.close()  # uncommitted: rolled back
            self._connection = None

    def _abandon(self, error: psycopg.Error) -> None:
        print(
            f"score.py: warning: capture to --capture-database abandoned, the scores are still "
            f"written: {one_line(error, self.url)}",
            file=sys.stderr,
        )
        self.rows = 0
        self.discard()


def connect(url: str, statement_timeout_ms: int = STATEMENT_TIMEOUT_MS) -> psycopg.Connection:
    """A connection that gives up on an unreachable or vanished database within seconds;
    ``statement_timeout_ms`` 0: statements may take as long as they need."""
    return psycopg.connect(
        url,
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        # UTC: the outcomes report cuts weeks and windows by UTC dates.
        options=f"-c statement_timeout={statement_timeout_ms} -c TimeZone=UTC",
        application_name="churn-serving capture",
        tcp_user_timeout=STATEMENT_TIMEOUT_MS,
        keepalives=1,
        keepalives_idle=5,
        keepalives_interval=2,
        keepalives_count=2,
    )


def check_database(url: str, name: str) -> None:
    """Connect once and look for the table; ``ConfigError`` naming ``name`` if either fails."""
    try:
        with connect(url) as connection:
            found = connection.execute("SELECT to_regclass(%s)", (TABLE,)).fetchone()
    except psycopg.Error as error:
        raise ConfigError(f"{name}: cannot use the database: {one_line(error, url)}") from None
    if found is None or found[0] is None:
        raise ConfigError(
            f"{name}: the database has no {TABLE} table; create it with "
            f"`python -m churn.outcomes init --database URL`"
        )


def one_line(error: BaseException, url: str | None = None) -> str:
    """An error's message on one line (libpq's span several), never showing ``url``'s
    password: libpq quotes the part of a malformed URL it could not parse."""
    text = str(error)
    if url:
        password = urlsplit(url).password if "://" in url else None
        for secret in filter(None, (url, password)):
            text = text.replace(secret, "***")
    return re.sub(r"\s+", " ", text).strip()
