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

import numpy as np
from prometheus_client import Counter, Gauge

from churn.checked import Categories, CategoryCodes, CheckedColumns
from churn.drift import (
    EMPTY_SHARE,
    MIN_ROWS,
    UNSEEN_VALUE,
    FeatureReference,
    feature_drift,
    rejection_reason,
)
from churn.features import FEATURE_FIELDS, FLAG_FIELDS
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
        self._numbering = BinNumbering(self.reference, self._children)

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
        """The counter of the bin a categorical value falls in (churn/fastpath.py looks a
        value's up once per spelling)."""
        feature = self.reference[field]
        return dict(zip(feature.keys, self._children[field], strict=True)).__getitem__

    def number_bins(self, field: str) -> tuple[tuple[float, ...], tuple[Any, ...]]:
        """For a number or a flag: edges and the counter at each ``bisect_right`` position in
        them, so churn/fastpath.py finds a single customer's bins in C, without a Python call."""
        edges, positions = _positions(self.reference[field])
        return edges, tuple(self._children[field][p] for p in positions)

    def count_columns(self, columns: Mapping[str, Sequence[Any]]) -> None:
        """The same for customers given as one sequence of canonical values per feature."""
        counted: dict[Any, int] = {}
        for name, feature in self.reference.items():
            bins = feature.counts(columns[name])
            for child, count in zip(self._children[name], bins, strict=True):
                if count:
                    counted[child] = count
        TALLY.add_counts(counted)

    def count_checked(self, checked: CheckedColumns) -> None:
        """The same for batches the fast path checked (churn/checked.py): codes and numbers,
        a second's batches joined (churn/watch.py)."""
        TALLY.add_array(*self.checked_counts(checked))

    def checked_counts(self, checked: CheckedColumns) -> tuple[tuple[Any, ...], np.ndarray]:
        """What ``count_checked`` adds: every bin's counter, and its customers in ``checked``."""
        return self._numbering.counters, self._numbering.counts(checked)

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


class BinNumbering:
    """Every feature's bins numbered one after the other, so a batch is counted in one go.

    A categorical value's bin number comes from one array by value number over all the fields
    (``Categories.numbered``, built the first time a fast path's fields are seen); a number's
    or a flag's from its position among the feature's edges (``np.searchsorted``,
    ``_positions``) through an array from position to bin number. Each feature's positions,
    and all the fields' value numbers at once, are counted by ``np.bincount``, and all the
    counts reach the tally as one array (``Tally.add_array``).
    """

    def __init__(self, reference: Mapping[str, FeatureReference], children: Mapping[str, list]):
        self._reference = reference
        self.counters = tuple(child for name in reference for child in children[name])
        self._first: dict[str, int] = {}
        # numeric and flag features: (edges, bin number by searchsorted position)
        self._numbers: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._by_value: dict[Categories, np.ndarray] = {}
        first = 0
        for name, feature in reference.items():
            self._first[name] = first
            if name in FLAG_FIELDS or feature.numeric is not None:
                edges, positions = _positions(feature)
                self._numbers[name] = (np.array(edges), first + np.array(positions))
            first += len(feature.bins)

    def counts(self, checked: CheckedColumns) -> np.ndarray:
        """Customers per bin, in the order of ``counters``: all categorical fields' value numbers
        counted by one ``np.bincount`` and each numeric feature's positions by one each, added
        at their bins' numbers (no array of every customer's bins is built)."""
        total = np.zeros(len(self.counters), dtype=np.int64)
        categories = checked.categories
        values = categories.numbered(checked.code_matrix).ravel()
        total[self._value_bins(categories)] += np.bincount(values, minlength=categories.value_count)
        for field, (edges, numbered) in self._numbers.items():
            column = checked.numbers[:, checked.column_of[field]]
            positions = np.searchsorted(edges, column, side="right")
            total[numbered] += np.bincount(positions, minlength=len(numbered))
        return total

    def _value_bins(self, categories: Categories) -> np.ndarray:
        """Each categorical value's bin number, by its number among a fast path's values."""
        bins = self._by_value.get(categories)
        if bins is None:  # the validator's vocabulary, covered by the bins (predictor.py checks)
            bins = self._by_value[categories] = categories.table(self._code_bins)
        return bins

    def _code_bins(self, field: str, category: CategoryCodes) -> list[int]:
        first, keys = self._first[field], self._reference[field].keys
        return [first + keys.index(value) for value in category.vocabulary]


def _positions(feature: FeatureReference) -> tuple[tuple[float, ...], tuple[int, ...]]:
    """A number's or a flag's bin as a lookup: edges, and the bin index at each position
    ``bisect_right`` (or ``searchsorted(side="right")``) gives in them.

    A number: below the minimum position 0, inside 1 + the cuts passed, from the float after
    the maximum on the last: ``NumericBins.index``. A flag: a validated flag is exactly one of
    its bins' values, so the sorted values but the first are the edges.
    """
    if feature.numeric is not None:
        bins = feature.numeric
        edges = (bins.low, *bins.cuts, float(np.nextafter(bins.high, np.inf)))
        return edges, tuple(range(len(feature.bins)))
    order = sorted(range(len(feature.keys)), key=feature.keys.__getitem__)
    return tuple(float(feature.keys[i]) for i in order[1:]), tuple(order)


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
