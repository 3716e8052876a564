"""Prometheus metrics and structured JSON logs.

Metrics work across gunicorn's worker processes through prometheus_client's multiprocess mode:
gunicorn.conf.py sets PROMETHEUS_MULTIPROC_DIR before the app is imported, each worker writes its
samples to files there, and /metrics adds them up. Without that variable (tests, `python
predict.py`) the process's own registry is used.
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import re
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from flask import Flask, Response, g, has_request_context, request
from gunicorn.glogging import Logger as GunicornLogger
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.samples import Sample

from churn.tally import Tally, flush_all

REQUESTS = Counter(
    "churn_http_requests_total", "HTTP requests answered", ["route", "method", "status"]
)
LATENCY = Histogram(
    "churn_http_request_duration_seconds",
    "Time from request start to response, in the app",
    ["route"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0),
)
PREDICTIONS = Counter("churn_predictions_total", "Customers scored", ["decision"])
# Mean churn probability = churn_probability_sum_total / churn_predictions_total (summed over
# decisions); two counters cost O(1) per request even for a batch of a thousand.
PROBABILITY_SUM = Counter("churn_probability_sum", "Sum of predicted churn probabilities")
# 1 for each model the service has loaded. Its version is a label, but one series per role at a
# time: a deploy restarts the service (and empties the metrics folder), so it never piles up.
MODEL_INFO = Gauge(
    "churn_model_info",
    "The models being served: the live one answers, a shadow is only compared",
    ["role", "version", "threshold"],
    multiprocess_mode="livemax",
)

REQUEST_ID_HEADER = "X-Request-ID"
# How often a worker writes its gathered access lines, and how many bytes make it write sooner.
ACCESS_FLUSH_SECONDS = 1.0
ACCESS_BUFFER_BYTES = 64 * 1024
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:/+=-]{1,128}$")


# Counted per worker in plain Python, flushed to the shared counters about once a second.
TALLY = Tally()


def record_predictions(results: list[dict[str, Any]]) -> None:
    """Count scored customers by the decision already made for them, and sum probabilities."""
    churned = sum(1 for result in results if result["churn"])
    if churned:
        TALLY.add(_decision_counter("churn"), churned)
    if len(results) - churned:
        TALLY.add(_decision_counter("no_churn"), len(results) - churned)
    TALLY.add(PROBABILITY_SUM, sum(result["churn_probability"] for result in results))


def publish_model_info(models: dict[str, Any]) -> None:
    """One ``churn_model_info`` series per role (``live``, ``shadow``) for the models given."""
    forget_series(MODEL_INFO)  # a process that builds a second app (tests): the latest models
    for role, model in models.items():
        MODEL_INFO.labels(role, model.version, f"{model.threshold:g}").set(1)


def forget_series(metric: Any) -> None:
    """Drop a metric's labelled series: in one process only (workers start with none anyway)."""
    if values.ValueClass is values.MutexValue:  # not multiprocess mode, where clear() warns
        metric.clear()


def current_registry(multiprocess_dir: Path | None) -> CollectorRegistry:
    """Every gunicorn worker's metrics when they share ``multiprocess_dir``, else ours."""
    flush_all()  # this worker's own counts are current; other workers' lag by a flush interval
    if multiprocess_dir is not None:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(multiprocess_dir))
        return registry
    return REGISTRY


def metric_samples(sample_name: str, multiprocess_dir: Path | None) -> list[Sample]:
    """The samples named ``sample_name`` (e.g. ``churn_predictions_total``), over all workers."""
    return [
        sample
        for family in current_registry(multiprocess_dir).collect()
        for sample in family.samples
        if sample.name == sample_name
    ]


def render_metrics(multiprocess_dir: Path | None) -> Response:
    return Response(
        generate_latest(current_registry(multiprocess_dir)), mimetype=CONTENT_TYPE_LATEST
    )


KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


@functools.lru_cache(maxsize=4)
def _decision_counter(decision: str) -> Any:
    return PREDICTIONS.labels(decision)


@functools.lru_cache(maxsize=512)
def _request_metrics(route: str, method: str, status: int) -> tuple[Any, Any]:
    """The labelled children, looked up once per label set instead of on every request."""
    return REQUESTS.labels(route, method, str(status)), LATENCY.labels(route)


# Keys in the WSGI environ through which the app hands values to the response-header middleware
# and the access log.
REQUEST_ID_KEY = "churn.request_id"
SERVER_TIMING_KEY = "churn.server_timing_ms"
MODEL_VERSION_KEY = "churn.model_version"


def request_id_for(environ: dict) -> str:
    """The caller's X-Request-ID if it is sane (so logs join up across services), else a new one."""
    given = environ.get("HTTP_X_REQUEST_ID", "")
    return given if _SAFE_REQUEST_ID.match(given) else os.urandom(16).hex()


def start_request() -> None:
    g.started = time.perf_counter()


def finish_request(response: Response) -> None:
    """Count a request Flask answered: route, method, status and latency."""
    route = request.url_rule.rule if request.url_rule else "unmatched"
    count_request(route, request.method, response.status_code, g.get("started"))


def count_request(route: str, method: str, status: int, started: float | None) -> None:
    """Count one answered request; ``started`` is its ``time.perf_counter()`` at arrival."""
    # Unknown methods share one label so a client cannot grow the metric without bound.
    method = method if method in KNOWN_METHODS else "other"
    counter, latency = _request_metrics(route, method, status)
    now = time.perf_counter()
    TALLY.add(counter)
    TALLY.observe(latency, now - (now if started is None else started))


def use_gunicorn_logging(app: Flask) -> None:
    """Send the app's log records through gunicorn's (JSON) error log when under gunicorn."""
    gunicorn_error = logging.getLogger("gunicorn.error")
    if gunicorn_error.handlers:
        app.logger.handlers = gunicorn_error.handlers
        app.logger.setLevel(gunicorn_error.level)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: what log shippers (CloudWatch, Loki) parse without rules."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        # A record logged while serving a request names it: Flask routes have a request context,
        # the /predict endpoint passes the id as ``extra={"request_id": ...}``.
        request_id = getattr(record, "request_id", None)
        if request_id is None and has_request_context():
            request_id = request.environ.get(REQUEST_ID_KEY)
        if request_id is not None:
            entry["request_id"] = request_id
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


class JsonLogger(GunicornLogger):
    """gunicorn's logger with JSON lines for both the error log and the access log.

    Access lines are gathered in the worker and written about once a second (or when 64 KiB
    are waiting), and all of them when the worker exits.
    """

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        self._pending: list[str] = []
        self._pending_bytes = 0
        self._pending_lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._flusher_pid: int | None = None
        for handler in self.error_log.handlers:
            handler.setFormatter(JsonFormatter())
        for handler in self.access_log.handlers:
            handler.setFormatter(logging.Formatter("%(message)s"))

    def access(self, resp: Any, req: Any, environ: dict, request_time: Any) -> None:
        if not self.access_log_enabled:
            return
        entry = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "level": "info",
            "logger": "access",
            "remote_addr": environ.get("REMOTE_ADDR"),
            "method": environ.get("REQUEST_METHOD"),
            "path": environ.get("PATH_INFO"),
            "query": environ.get("QUERY_STRING") or None,
            "status": resp.status_code,
            "bytes": getattr(resp, "sent", None),
            "duration_ms": round(request_time.total_seconds() * 1000, 3),
            "user_agent": environ.get("HTTP_USER_AGENT"),
            "request_id": environ.get(REQUEST_ID_KEY),
            "model_version": environ.get(MODEL_VERSION_KEY),
            "pid": os.getpid(),
        }
        self._write_access_line(orjson.dumps(entry).decode())

    def _write_access_line(self, line: str) -> None:
        handlers = self.access_log.handlers
        if not all(isinstance(handler, logging.StreamHandler) for handler in handlers):
            self.access_log.info(line)  # syslog and other non-stream handlers take records
            return
        # Gathered, then written about once a second: in a container every write is a trip
        # through the engine's log pipe, and one per request cost ~43% of throughput (issue 11).
        # logging.info per line (a LogRecord, level checks, a formatter) cost twice as much as
        # building the line, so the lines go straight to the streams (docs/performance.md).
        with self._pending_lock:
            if self._flusher_pid != os.getpid():
                self._start_flusher()
            self._pending.append(line)
            self._pending_bytes += len(line) + 1
            full = self._pending_bytes >= ACCESS_BUFFER_BYTES
        if full:
            self.flush_access_lines()

    def _start_flusher(self) -> None:
        """One flushing thread per process (threads do not survive gunicorn's fork)."""
        self._flusher_pid = os.getpid()
        threading.Thread(target=self._flush_forever, name="access-log", daemon=True).start()
        atexit.register(self.flush_access_lines)  # a worker's last lines, at SIGTERM too

    def _flush_forever(self) -> None:
        while True:
            time.sleep(ACCESS_FLUSH_SECONDS)
            self.flush_access_lines()

    def flush_access_lines(self) -> None:
        """Write every gathered access line, in order, with one write per stream."""
        # One flush at a time keeps the lines in order; requests only wait for the swap.
        with self._flush_lock:
            with self._pending_lock:
                lines, self._pending, self._pending_bytes = self._pending, [], 0
            if not lines:
                return
            text = "\n".join(lines) + "\n"
            # gunicorn reopens these streams on SIGUSR1, so they are looked up on every flush.
            for handler in self.access_log.handlers:
                if not isinstance(handler, logging.StreamHandler):  # added since the lines came
                    for line in lines:
                        handler.handle(
                            self.access_log.makeRecord(
                                "access", logging.INFO, "", 0, line, (), None
                            )
                        )
                    continue
                with handler.lock:
                    handler.stream.write(text)
                    handler.stream.flush()
