"""Drift counting in the service: each scored customer's bin per feature, and rejections by field.

Counts go through a per-worker tally (churn/tally.py): ~19 increments per customer cost a
dictionary update each instead of a locked file write. The series are bounded by the model's
frozen bins (about 80) and the fields (rejections); the model version is never a label, since
a deploy restarts the service and empties the metrics folder. GET /drift reads the counts back
from the shared counters (all workers, since the service started) and computes PSI with
churn/drift.py; Prometheus computes the same over its own windows (monitoring/rules/drift.yml).
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from prometheus_client import Counter, Gauge

from churn.drift import (
    EMPTY_SHARE,
    MIN_ROWS,
    UNSEEN_VALUE,
    FeatureReference,
    feature_drift,
    rejection_reason,
)
from churn.features import FEATURE_FIELDS
from churn.observability import TALLY, forget_series, metric_samples

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
OTHER_FIELD = "other"
# Below this many customers a loop is cheaper than building columns.
COLUMNS_FROM = 16


class DriftMonitor:
    """Counts live customers into the model's frozen bins; reads the totals back for /drift."""

    def __init__(self, reference: Mapping[str, FeatureReference]):
        self.reference = dict(reference)
        self._numeric = []
        self._categorical = []
        forget_series(REFERENCE)
        self._children: dict[str, list[Any]] = {}
        for name, feature in self.reference.items():
            # Every series exists from the start (at 0): Prometheus's increase() needs that.
            children = self._children[name] = [BINS.labels(name, b) for b in feature.bins]
            for bin_name, share in zip(feature.bins, feature.shares, strict=True):
                REFERENCE.labels(name, bin_name).set(share)
            if feature.numeric is not None:
                self._numeric.append((name, feature.numeric, children))
            else:
                self._categorical.append((name, dict(zip(feature.keys, children, strict=True))))
        # The categorical lookups run in C (itemgetter, map): this is on every request's path.
        self._categorical_values = operator.itemgetter(*(name for name, _ in self._categorical))
        self._categorical_tables = tuple(table for _, table in self._categorical)

    def count(self, customers: Sequence[Mapping[str, Any]]) -> None:
        """Count validated customers (as the validator returns them) into their bins."""
        if len(customers) >= COLUMNS_FROM:
            self.count_columns({f: [c[f] for c in customers] for f in self.reference})
            return
        keys: list[Any] = []
        tables, values = self._categorical_tables, self._categorical_values
        for customer in customers:
            keys += map(operator.getitem, tables, values(customer))
            for field, bins, children in self._numeric:
                keys.append(children[bins.index(customer[field])])
        TALLY.add_each(keys)

    def bin_counter(self, field: str) -> Callable[[Any], Any]:
        """The counter of the bin a validated value of ``field`` falls in (churn/fastpath.py
        looks a categorical value's up once per spelling, a number's per customer)."""
        feature, children = self.reference[field], self._children[field]
        if feature.numeric is None:
            return dict(zip(feature.keys, children, strict=True)).__getitem__
        index = feature.numeric.index
        return lambda value: children[index(value)]

    def count_columns(
        self,
        columns: Mapping[str, Sequence[Any]],
        value_counts: Mapping[str, Mapping[Any, int]] | None = None,
    ) -> None:
        """The same for customers given as one sequence of canonical values per feature.

        ``value_counts``: for the features it has, the customers per value, already counted
        (the batch fast path counts codes with numpy): those columns are not read.
        """
        counted: dict[Any, int] = {}
        value_counts = value_counts or {}
        for name, feature in self.reference.items():
            if name in value_counts:
                bins = feature.counts_of(value_counts[name])
            else:
                bins = feature.counts(columns[name])
            for child, count in zip(self._children[name], bins, strict=True):
                if count:
                    counted[child] = count
        TALLY.add_counts(counted)

    def snapshot(self, multiprocess_dir: Path | None) -> dict[str, Any]:
        """Rows, share outside the training range and PSI per feature, since the service started."""
        counted = _by_labels(
            metric_samples("churn_drift_bin_rows_total", multiprocess_dir), "feature", "bin"
        )
        unseen = _by_labels(
            metric_samples("churn_validation_rejections_total", multiprocess_dir), "field", "reason"
        )
        features = {}
        for name, feature in self.reference.items():
            counts = [counted.get((name, bin_name), 0.0) for bin_name in feature.bins]
            features[name] = feature_drift(feature, counts, unseen.get((name, UNSEEN_VALUE), 0))
        return {
            "window": "since the service started, all workers",
            "min_rows": MIN_ROWS,
            "empty_share": EMPTY_SHARE,
            "features": features,
        }


def count_rejections(problems: Sequence[Mapping[str, Any]], kinds: Sequence[str]) -> None:
    """Count a refused request's problems by field and reason (unseen_value, missing, invalid)."""
    for problem, kind in zip(problems, kinds, strict=False):
        field = problem.get("field", "")
        field = field if field in FEATURE_FIELDS else OTHER_FIELD
        TALLY.add(_rejection_counter(field, rejection_reason(kind)))


@functools.lru_cache(maxsize=256)
def _rejection_counter(field: str, reason: str) -> Any:
    return REJECTIONS.labels(field, reason)


def _by_labels(samples: list[Any], first: str, second: str) -> dict[tuple[str, str], float]:
    totals: dict[tuple[str, str], float] = {}
    for sample in samples:
        key = (sample.labels.get(first, ""), sample.labels.get(second, ""))
        totals[key] = totals.get(key, 0.0) + sample.value
    return totals
