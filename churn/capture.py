"""Prediction capture: every answered customer as one row of PostgreSQL's ``churn_predictions``.

A request only queues its results (``submit``); a thread in each process, started at its first
``submit`` (gunicorn's master never submits), writes the queue about once a second in one
``COPY``. A slow or down database, or a full queue, drops rows and counts them: capture never
slows or fails a prediction, and resumes on its own. Stopping writes what is pending
(docs/outcomes.md, with the SIGKILL bound)."""

from __future__ import annotations

import atexit
import logging
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import psycopg
from prometheus_client import Counter
from psycopg.conninfo import conninfo_to_dict
from psycopg.types.json import Jsonb

from churn.config import ConfigError

ROWS = Counter("churn_capture_rows_total", "Predictions captured: written, or dropped", ["outcome"])
WRITE_INTERVAL_SECONDS = 1.0
MAX_QUEUED_ROWS = 10_000  # per process, rows being written included: ten busy seconds
# A slower write is abandoned, its rows dropped: a slow database cannot hold the queue.
STATEMENT_TIMEOUT_MS = 5_000
# An unreachable or vanished database noticed within seconds, not the kernel's ~15 minutes.
CONNECTION: dict[str, Any] = conninfo_to_dict(
    "application_name='churn-serving capture' connect_timeout=5 tcp_user_timeout=5000 "
    "keepalives=1 keepalives_idle=5 keepalives_interval=2 keepalives_count=2"
)
STOP_WAIT_SECONDS = 3.0  # for the last write: within gunicorn's graceful timeout (8 s)
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
        self._lock = threading.Lock()  # guards the queue, its count and the writer's start
        self._items: list[Item] = []
        self._queued = 0  # rows queued or being written: what the bound applies to
        self._connection: psycopg.Connection | None = None
        self._writer: threading.Thread | None = None
        self._stopping = threading.Event()
        self._failing = False  # say once when writes start failing, once when they work again

    @classmethod
    def start_up(
        cls, url: str | None, source: str, features: bool, logger: logging.Logger, name: str
    ) -> Capture | None:
        """None if ``url`` is; ``ConfigError`` naming ``name`` if the database is unusable."""
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
        """Queue one request's results (and ``customers`` as sent, if features are kept)."""
        with self._lock:
            if self._writer is None:
                self._writer = threading.Thread(target=self._run, name="capture", daemon=True)
                self._writer.start()
                atexit.register(self.close)  # gunicorn's workers leave through sys.exit
            if self._queued + len(results) > self.max_rows:
                ROWS.labels("dropped").inc(len(results))
                return
            self._queued += len(results)
            kept = customers if self.features else None
            self._items.append((time.time(), request_id, version, threshold, results, kept))

    def flush(self) -> None:
        """Write what is queued now; on any failure its rows are dropped and counted."""
        with self._lock:
            items, self._items = self._items, []
        rows = sum(len(item[4]) for item in items)
        if not rows:
            return
        failure: Exception | None = None
        try:
            if self._connection is None or self._connection.closed:
                self._connection = connect(self.url, STATEMENT_TIMEOUT_MS)
            with self._connection.transaction():
                copy_rows(self._connection, self.source, items)
        except Exception as error:
            failure = error
            if self._connection is not None:
                self._connection.close()  # the next write starts on a new connection
        with self._lock:
            self._queued -= rows
        ROWS.labels("written" if failure is None else "dropped").inc(rows)
        if failure is not None and not self._failing:
            self.logger.warning(
                "prediction capture: PostgreSQL write failed, rows are dropped and counted "
                "until it works again: %s",
                one_line(failure, self.url),
            )
        elif failure is None and self._failing:
            self.logger.warning("prediction capture: writing to PostgreSQL again")
        self._failing = failure is not None

    def close(self) -> None:
        """Stop the writer and write what is pending (a graceful stop)."""
        if self._writer is not None and self._writer.is_alive():
            self._stopping.set()
            self._writer.join(STOP_WAIT_SECONDS)
        else:
            self.flush()
        if self._connection is not None:
            self._connection.close()

    def _run(self) -> None:
        while not self._stopping.wait(WRITE_INTERVAL_SECONDS):
            self.flush()  # never raises: a failed write is dropped, counted and logged
        self.flush()  # a graceful stop: what is pending


def copy_rows(connection: psycopg.Connection, source: str, items: Iterable[Item]) -> None:
    """``COPY`` one row per answered customer of ``items``."""
    with connection.cursor() as cursor, cursor.copy(COPY) as copy:
        for at, request_id, version, threshold, results, customers in items:
            when = datetime.fromtimestamp(at, UTC)
            sent = [customers] if isinstance(customers, dict) else customers
            for position, result in enumerate(results):
                copy.write_row((
                    when, request_id, result.get("customer_id"), version,
                    result["churn_probability"], result["churn"], threshold, source,
                    Jsonb(sent[position]) if sent else None,
                ))  # fmt: skip


class RunCapture:
    """score.py's scored rows (``--capture-database``) in one transaction, committed with the
    scores or discarded with them. A database failing mid-run abandons the capture with a
    warning (``rows`` 0), never the run."""

    def __init__(self, url: str, version: str, threshold: float, id_column: str | None) -> None:
        check_database(url, "--capture-database")
        self.url, self.version, self.threshold, self.id_column = url, version, threshold, id_column
        self.run_id = "score.py-" + uuid.uuid4().hex  # the rows' request id: one per run
        self.rows = 0
        # No statement timeout: a batch's COPY takes as long as its rows do.
        self._connection = connect(url)

    def write(self, scored: Any) -> None:
        """Add a scored Arrow batch (an id column, ``churn_probability``, ``churn``)."""
        if self._connection.closed:  # capture abandoned
            return
        names = ["customer_id" if name == self.id_column else name for name in scored.schema.names]
        results = scored.rename_columns(names).to_pylist()  # as /predict's results
        item = (time.time(), self.run_id, self.version, self.threshold, results, None)
        try:
            copy_rows(self._connection, "score.py", [item])
            self.rows += len(results)
        except psycopg.Error as error:
            self.discard(error)

    def commit(self) -> None:
        try:
            if not self._connection.closed:
                self._connection.commit()
        except psycopg.Error as error:
            self.discard(error)
        self.discard()

    def discard(self, error: psycopg.Error | None = None) -> None:
        """Roll back what is uncommitted; after ``error``, say that capture is abandoned."""
        if error is not None:
            print(
                "score.py: warning: capture to --capture-database abandoned, the scores are "
                f"still written: {one_line(error, self.url)}",
                file=sys.stderr,
            )
            self.rows = 0
        self._connection.close()


def connect(url: str, statement_timeout_ms: int = 0) -> psycopg.Connection:
    """A connection in UTC, as the outcomes report cuts weeks and windows by its dates."""
    options = f"-c statement_timeout={statement_timeout_ms} -c TimeZone=UTC"
    return psycopg.connect(url, options=options, **CONNECTION)


def check_database(url: str, name: str) -> None:
    """Connect once and look for the table; ``ConfigError`` naming ``name`` if either fails."""
    try:
        with connect(url, STATEMENT_TIMEOUT_MS) as connection:
            found = connection.execute("SELECT to_regclass(%s)", (TABLE,)).fetchone()
    except psycopg.Error as error:
        raise ConfigError(f"{name}: cannot use the database: {one_line(error, url)}") from None
    if found is None or found[0] is None:
        raise ConfigError(
            f"{name}: the database has no {TABLE} table; create it with "
            f"`python -m churn.outcomes init --database URL`"
        )


def one_line(error: BaseException, url: str) -> str:
    """An error's message on one line (libpq's span several), never showing ``url``'s
    password: libpq quotes the part of a malformed URL it could not parse."""
    text = str(error)
    for secret in filter(None, (url, urlsplit(url).password if "://" in url else None)):
        text = text.replace(secret, "***")
    return " ".join(text.split())
