"""Drift against the training data: the frozen reference bins, counting into them, and PSI.

Training records, per feature, the bins a customer can fall in and the training share of each
(``reference_from``): about ten quantile bins plus below/above the training range for a numeric
field, the known values for a categorical one; they never move after training. ``psi``, the
population stability index over those bins, is computed the same way by GET /drift, the report
(``python -m churn.drift``) and monitoring/rules/drift.yml (tests/test_monitoring_rules.py
checks that promtool's answer equals this one on the same counts).
"""

from __future__ import annotations

import itertools
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from churn.features import CATEGORICAL_FIELDS, FLAG_FIELDS, NUMBER_FIELDS, NUMERIC_FIELDS

# Both shares of a bin are floored at this before PSI is computed, so an empty bin counts as
# 1e-4 of the rows instead of making ln(0) infinite. monitoring/rules/drift.yml uses it too.
EMPTY_SHARE = 1e-4
# No PSI below this many rows in the window: with 10 bins and 100 rows PSI reaches 0.17 by chance
# one time in twenty. monitoring/rules/drift.yml uses it too.
MIN_ROWS = 500
QUANTILE_BINS = 10
BELOW, ABOVE = "below", "above"


def psi(counts: Sequence[float], reference: Sequence[float]) -> float | None:
    """Σ (live − ref) · ln(live / ref) over the bins; None under ``MIN_ROWS`` rows."""
    rows = sum(counts)
    if rows < MIN_ROWS:
        return None
    total = 0.0
    for count, ref_share in zip(counts, reference, strict=True):
        live = max(count / rows, EMPTY_SHARE)
        ref = max(ref_share, EMPTY_SHARE)
        total += (live - ref) * math.log(live / ref)
    return total


@dataclass(frozen=True)
class NumericBins:
    """Below the training minimum, ~10 quantile bins inside the range, above the maximum."""

    low: float
    high: float
    cuts: tuple[float, ...]  # inner bin i holds low <= x < cuts[i] (the last one up to high)

    @property
    def names(self) -> list[str]:
        edges = [self.low, *self.cuts, self.high]
        inner = [f"[{a:g}, {b:g})" for a, b in itertools.pairwise(edges)]
        inner[-1] = inner[-1][:-1] + "]"
        return [BELOW, *inner, ABOVE]

    def indices(self, values: np.ndarray) -> np.ndarray:
        """Each value's bin: below the minimum 0, inside 1 + the cuts passed, above the last."""
        inner = 1 + np.searchsorted(np.asarray(self.cuts), values, side="right")
        above = np.where(values > self.high, len(self.cuts) + 2, inner)
        return np.where(values < self.low, 0, above)

    @classmethod
    def from_column(cls, column: np.ndarray) -> NumericBins:
        quantiles = np.quantile(column, np.linspace(0, 1, QUANTILE_BINS + 1))
        low, high = float(quantiles[0]), float(quantiles[-1])
        cuts = sorted({float(q) for q in quantiles[1:-1] if low < q < high})
        return cls(low, high, tuple(cuts))


@dataclass(frozen=True)
class FeatureReference:
    """One feature's frozen bins: their names, training shares and (numeric) boundaries."""

    bins: tuple[str, ...]
    shares: tuple[float, ...]
    numeric: NumericBins | None = None

    @classmethod
    def from_json(cls, entry: Mapping[str, Any]) -> FeatureReference:
        """From its entry in the metadata's ``drift_reference`` (``reference_from``)."""
        numeric = None
        if "cuts" in entry:
            numeric = NumericBins(float(entry["low"]), float(entry["high"]), tuple(entry["cuts"]))
        return cls(tuple(entry["bins"]), tuple(entry["shares"]), numeric)


def feature_drift(feature: FeatureReference, counts: Sequence[float], unseen: float) -> dict:
    """One feature's drift view: PSI, rows, share outside the training data, counts per bin.

    For a numeric feature "outside" is below or above the training range; for a categorical one
    it is a value never seen in training, which validation refuses (``unseen`` such rows).
    """
    rows = sum(counts)
    view: dict[str, Any] = {"psi": psi(counts, feature.shares), "rows": int(rows)}
    if feature.numeric is not None:
        outside, seen = counts[0] + counts[-1], rows
    else:
        outside, seen = unseen, rows + unseen
        view["unseen_values"] = int(unseen)
    view["outside_share"] = outside / seen if seen else 0.0
    view["bins"] = dict(zip(feature.bins, map(int, counts), strict=True))
    return view


def reference_from(frame: Any) -> dict[str, Any]:
    """The ``drift_reference`` section of the model metadata, from the cleaned training frame."""
    features: dict[str, Any] = {}
    for field in CATEGORICAL_FIELDS + FLAG_FIELDS:
        column = frame[field].astype(str)
        bins = sorted(column.unique())
        shares = column.value_counts(normalize=True).reindex(bins)
        features[field] = {"bins": bins, "shares": [float(share) for share in shares]}
    for field in NUMERIC_FIELDS:
        column = frame[field].to_numpy(dtype=np.float64)
        numeric = NumericBins.from_column(column)
        counts = np.bincount(numeric.indices(column), minlength=len(numeric.names))
        features[field] = {
            "bins": numeric.names,
            "shares": [float(count) / len(column) for count in counts],
            "low": numeric.low,
            "high": numeric.high,
            "cuts": list(numeric.cuts),
        }
    return {"rows": len(frame), "features": features}


class DriftBins:
    """Every feature's frozen bins numbered one after the other (``names``), and ``counts``:
    how many checked customers fall in each. The service, GET /drift and the drift report
    all count with it."""

    def __init__(self, reference: Mapping[str, FeatureReference], vocabularies: Mapping[str, Any]):
        self.reference = dict(reference)
        self.names = [(name, b) for name, feature in self.reference.items() for b in feature.bins]
        sizes = itertools.accumulate((len(f.bins) for f in self.reference.values()), initial=0)
        self._first = dict(zip(self.reference, sizes, strict=False))  # each feature's first bin
        # A category's bin number by its vocabulary code; a flag's by its value (0 or 1).
        known: dict[str, Any] = dict.fromkeys(FLAG_FIELDS, (0, 1))
        known.update((field, vocabularies[field]) for field in CATEGORICAL_FIELDS)
        self._by_code = {
            field: self._first[field]
            + np.array([self.reference[field].bins.index(str(v)) for v in values])
            for field, values in known.items()
        }
        self._numeric = {f: bins for f in NUMERIC_FIELDS if (bins := self.reference[f].numeric)}

    def by_feature(self, counts: np.ndarray) -> dict[str, list[int]]:
        """``counts`` (in the order of ``names``) split into each feature's list."""
        return {
            name: counts[first : first + len(self.reference[name].bins)].tolist()
            for name, first in self._first.items()
        }

    def counts(self, checked: Any) -> np.ndarray:
        """Customers per bin, in the order of ``names``, for a ``churn.columns.Checked``."""
        columns = dict(zip(CATEGORICAL_FIELDS, checked.codes.T, strict=True))
        columns.update(zip(NUMBER_FIELDS, checked.numbers.T, strict=True))
        numbered = [
            table[columns[field].astype(np.intp, copy=False)]
            for field, table in self._by_code.items()
        ]
        numbered += [self._first[f] + bins.indices(columns[f]) for f, bins in self._numeric.items()]
        return np.bincount(np.concatenate(numbered), minlength=len(self.names))


if __name__ == "__main__":
    from churn.drift_report import main

    sys.exit(main())
