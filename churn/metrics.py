"""Prometheus metrics, through prometheus_client's public API.

Under gunicorn the workers share their samples through prometheus_client's multiprocess mode
(gunicorn.conf.py sets PROMETHEUS_MULTIPROC_DIR before the app is imported) and /metrics adds
them up; without it (tests, ``python predict.py``) the process's own registry is used.

Requests and predictions are counted as each answer is sent. Drift bins and the shadow model's
comparisons are gathered per worker and counted about once a second (``Watch``): a worker
killed with SIGKILL loses at most that second of drift and shadow counts, never a request's.
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import random
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.metrics_core import Metric

from churn.columns import Checked, Problem
from churn.drift import EMPTY_SHARE, MIN_ROWS, DriftBins, feature_drift
from churn.features import FEATURE_FIELDS

if TYPE_CHECKING:  # only named in a signature: the metrics need no model code
    from churn.predictor import Predictor

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
# Mean churn probability = churn_probability_sum_total / churn_predictions_total.
PROBABILITY_SUM = Counter("churn_probability_sum", "Sum of predicted churn probabilities")
# One series per role: a deploy restarts the service (and empties the metrics folder).
MODEL_INFO = Gauge(
    "churn_model_info",
    "The models being served: the live one answers, a shadow is only compared",
    ["role", "version", "threshold"],
    multiprocess_mode="livemax",
)
BINS = Counter(
    "churn_drift_bin_rows",
    "Scored customers by the reference bin of each feature",
    ["feature", "bin"],
)
REFERENCE = Gauge(
    "churn_drift_reference_share",
    "Share of the training data in each bin (frozen at training)",
    ["feature", "bin"],
    multiprocess_mode="livemax",
)
REJECTIONS = Counter(
    "churn_validation_rejections",
    "Problems found in refused customers, by field and reason",
    ["field", "reason"],
)
DECISIONS = Counter(
    "churn_shadow_decisions",
    "Customers scored by both models, by each model's decision at its own threshold",
    ["live", "shadow"],
)
DIFFERENCE = Histogram(
    "churn_shadow_probability_difference",
    "|live − shadow| churn probability per customer",
    buckets=(0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5),
)
SHADOW_ERRORS = Counter("churn_shadow_errors", "Requests the shadow model failed to score")
CHURNED, STAYING = PREDICTIONS.labels("churn"), PREDICTIONS.labels("no_churn")
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
DECISION_NAMES = ("no_churn", "churn")
# pydantic's error types folded into the few reasons rejections are counted by.
UNSEEN_VALUE = "unseen_value"
REASONS = {"literal_error": UNSEEN_VALUE, "missing": "missing"}


def count_request(route: str, method: str, status: int, seconds: float) -> None:
    requests, latency = _request_series(route, method, status)
    requests.inc()
    latency.observe(seconds)


@functools.lru_cache(maxsize=512)
def _request_series(route: str, method: str, status: int) -> tuple[Any, Any]:
    """The labelled series, looked up once per label set (``labels`` takes a lock each time)."""
    # Unknown methods share one label so a client cannot grow the metric without bound.
    method = method if method in KNOWN_METHODS else "other"
    return REQUESTS.labels(route, method, str(status)), LATENCY.labels(route)


def count_predictions(results: Sequence[dict[str, Any]]) -> None:
    """Count answered customers by decision, and add up their probabilities."""
    churned = sum(1 for result in results if result["churn"])
    if churned:
        CHURNED.inc(churned)
    if len(results) - churned:
        STAYING.inc(len(results) - churned)
    PROBABILITY_SUM.inc(sum(result["churn_probability"] for result in results))


def count_rejections(problems: Sequence[Problem]) -> None:
    """A refused request's problems by field and reason (unseen_value, missing, invalid)."""
    for problem in problems:
        field = problem.field if problem.field in FEATURE_FIELDS else "other"
        REJECTIONS.labels(field, REASONS.get(problem.kind, "invalid")).inc()


def publish_models(
    live: Predictor, shadow: Predictor | None, multiprocess_dir: Path | None
) -> None:
    """``churn_model_info`` for each role (``live``, ``shadow``) and the live drift reference."""
    if multiprocess_dir is None:  # one process (tests): its second app's models replace
        MODEL_INFO.clear()
        REFERENCE.clear()
    for role, model in (("live", live), ("shadow", shadow)):
        if model is not None:
            MODEL_INFO.labels(role, model.version, f"{model.threshold:g}").set(1)
    if live.drift_bins is not None:
        for name, feature in live.drift_bins.reference.items():
            for bin_name, share in zip(feature.bins, feature.shares, strict=True):
                REFERENCE.labels(name, bin_name).set(share)


def registry(multiprocess_dir: Path | None) -> CollectorRegistry:
    """Every gunicorn worker's metrics when they share ``multiprocess_dir``, else ours."""
    if multiprocess_dir is None:
        return REGISTRY
    shared = CollectorRegistry()
    multiprocess.MultiProcessCollector(shared, path=str(multiprocess_dir))
    return shared


def exposition(multiprocess_dir: Path | None) -> bytes:
    return generate_latest(registry(multiprocess_dir))


def live_drift(bins: DriftBins, multiprocess_dir: Path | None) -> dict[str, Any]:
    """/drift: rows, share outside the training data and PSI per feature, since start-up."""
    families = list(registry(multiprocess_dir).collect())
    counted = _summed(families, "churn_drift_bin_rows_total", "feature", "bin")
    refused = _summed(families, "churn_validation_rejections_total", "field", "reason")
    features = {}
    for name, feature in bins.reference.items():
        counts = [counted[name, bin_name] for bin_name in feature.bins]
        features[name] = feature_drift(feature, counts, refused[name, UNSEEN_VALUE])
    return {
        "window": "since the service started, all workers",
        "min_rows": MIN_ROWS,
        "empty_share": EMPTY_SHARE,
        "features": features,
    }


def _summed(
    families: list[Metric], name: str, first: str, second: str
) -> dict[tuple[str, str], float]:
    """The samples called ``name`` over all workers, added up by two of their labels."""
    totals: dict[tuple[str, str], float] = defaultdict(float)
    for family in families:
        for sample in family.samples:
            if sample.name == name:
                totals[sample.labels[first], sample.labels[second]] += sample.value
    return totals


class Watch:
    """Drift bin counts and shadow comparisons of answered customers, counted per worker
    about once a second (and before /metrics or /drift answer, and at exit).

    Per request this is an append; the counting is numpy over a second's customers at once.
    Only arrays, numbers and lists of them are kept, which the garbage collector does not track
    or sees as one object: a second of kept objects that it tracks (a tuple or a ``Checked`` per
    request) set off its collections, which cost more than the counting (docs/performance.md).
    """

    def __init__(self, drift: DriftBins | None, shadow: Any, logger: logging.Logger):
        self.drift, self.shadow, self.logger = drift, shadow, logger
        self.active = drift is not None or shadow is not None
        self._numbers: list[np.ndarray] = []  # each answered batch's matrix
        self._codes: list[np.ndarray] = []
        self._shadowed: list[int] = []  # the batches (by position) the shadow compares
        self._live: list[float] = []  # their live probabilities, one after the other
        self._lock = threading.Lock()
        self._worker_pid = 0  # the process whose thread counts (threads do not survive fork)
        if drift is not None:  # every series exists from the start: increase() needs that
            self._bins = [BINS.labels(feature, b) for feature, b in drift.names]

    def add(self, checked: Checked, probabilities: list[float]) -> None:
        if not self.active:
            return
        compared = self.shadow is not None and random.random() < self.shadow.sample  # noqa: S311
        with self._lock:
            self._numbers.append(checked.numbers)
            self._codes.append(checked.codes)
            if compared:
                self._shadowed.append(len(self._numbers) - 1)
                self._live += probabilities
        if self._worker_pid != os.getpid():
            self._start()

    def flush(self) -> None:
        with self._lock:
            numbers, codes, shadowed, live = self._numbers, self._codes, self._shadowed, self._live
            self._numbers, self._codes, self._shadowed, self._live = [], [], [], []
        if self.drift is not None and numbers:
            counts = self.drift.counts(_stacked(numbers, codes))
            for child, count in zip(self._bins, counts.tolist(), strict=True):
                if count:
                    child.inc(count)
        if self.shadow is not None and shadowed:
            picked = _stacked([numbers[i] for i in shadowed], [codes[i] for i in shadowed])
            try:
                self.shadow.compare(picked, np.array(live))
            except Exception:  # whatever the shadow does, the answers are the live model's
                SHADOW_ERRORS.inc(len(shadowed))
                self.logger.exception("the shadow model failed; answers are unaffected")

    def _start(self) -> None:
        self._worker_pid = os.getpid()
        threading.Thread(target=self._every_second, name="churn-watch", daemon=True).start()
        atexit.register(self.flush)

    def _every_second(self) -> None:
        while True:
            time.sleep(1.0)
            self.flush()


def _stacked(numbers: list[np.ndarray], codes: list[np.ndarray]) -> Checked:
    stacked = np.concatenate(numbers)
    return Checked(stacked, np.concatenate(codes), [None] * len(stacked), [])
