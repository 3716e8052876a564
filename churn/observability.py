"""Prometheus metrics and the request facts they and the logs share (request id, timing).

Metrics work across gunicorn's worker processes through prometheus_client's multiprocess mode:
gunicorn.conf.py sets PROMETHEUS_MULTIPROC_DIR before the app is imported, each worker writes its
samples to files there, and /metrics adds them up. Without that variable (tests, `python
predict.py`) the process's own registry is used.
"""

from __future__ import annotations

import functools
import os
import re
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from flask import Response, g, request
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
    given = environ.get("HTTP_X_REQUEST_ID")
    if given and _SAFE_REQUEST_ID.match(given):
        return given
    return next(_fresh_ids, None) or _refill_ids()


# New request ids: 16 random bytes each, drawn from os.urandom 256 ids at a time (one system call
# instead of one per request). next() on a list iterator is atomic, so threads never share one.
_IDS_PER_DRAW = 256
_fresh_ids: Iterator[str] = iter(())


def _refill_ids() -> str:
    global _fresh_ids
    drawn = os.urandom(16 * _IDS_PER_DRAW).hex()
    ids = [drawn[start : start + 32] for start in range(0, len(drawn), 32)]
    _fresh_ids = iter(ids[1:])
    return ids[0]


def _forget_ids() -> None:
    global _fresh_ids
    _fresh_ids = iter(())  # a forked worker draws its own: never the ids its parent had left


os.register_at_fork(after_in_child=_forget_ids)


def start_request() -> None:
    g.started = time.perf_counter()


def finish_request(response: Response) -> None:
    """Count a request Flask answered: route, method, status and latency."""
    route = request.url_rule.rule if request.url_rule else "unmatched"
    count_request(route, request.method, response.status_code, g.get("started"))


def count_request(
    route: str,
    method: str,
    status: int,
    started: float | None,
    prediction: Prediction | None = None,
) -> None:
    """Count one answered request; ``started`` is its ``time.perf_counter()`` at arrival.

    ``prediction``: the one customer it answered, counted as ``record_predictions`` would and
    with its drift bins, in the same tally update as the request (one lock instead of three).
    """
    # Unknown methods share one label so a client cannot grow the metric without bound.
    method = method if method in KNOWN_METHODS else "other"
    counter, latency = _request_metrics(route, method, status)
    now = time.perf_counter()
    observed = (latency, now - (now if started is None else started))
    if prediction is None:
        TALLY.add_each((counter,), None, observed)
        return
    result, bins = prediction
    decision = _decision_counter("churn" if result["churn"] else "no_churn")
    sums = {PROBABILITY_SUM: result["churn_probability"]}
    TALLY.add_each((counter, decision, *bins), sums, observed)


class Prediction(NamedTuple):
    """One customer's answer and the drift counters of its bins (empty without drift)."""

    result: dict[str, Any]
    bins: Sequence[Any]
