"""A shadow model: scores the same customers as the live one, is compared, never answers.

``SHADOW_MODEL_FILE`` loads a candidate exactly as the live model is loaded (safe unpickler,
SHA-256, schema). For a share of requests (``SHADOW_SAMPLE``) it scores the customers the live
model just scored, and the service counts where the two decisions agree (each model at its own
threshold), how far apart the probabilities are, and the shadow's errors. Whatever the shadow
does, the answer is the live model's: ``compare`` never raises.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from operator import itemgetter
from typing import Any

import numpy as np
from prometheus_client import Counter, Histogram

from churn.checked import Categories, CheckedColumns
from churn.fastpath import Scored
from churn.observability import TALLY
from churn.scorer import VECTORIZE_FROM
from churn.tally import histogram_parts

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
ERRORS = Counter("churn_shadow_errors", "Requests the shadow model failed to score")
DECISION_NAMES = {True: "churn", False: "no_churn"}
Customer = Mapping[str, Any]
# The shadow's numeric features' columns in the checked matrix; its weight per live value number
# (``Categories.numbered``); the live fields' rows in the order the shadow's scorer adds them.
_Gathering = tuple[list[int], np.ndarray, list[int]]


@dataclass
class Shadow:
    """The candidate model (a ``Predictor``) and the share of requests it sees."""

    predictor: Any
    sample: float
    logger: logging.Logger
    _cells: list[Any] = field(init=False)  # the 2x2's counters: index 2 * live + shadow
    _fields: tuple[str, ...] = field(init=False)  # the features in the order its scorer adds
    _warned: bool = field(default=False, init=False)
    _bounds: np.ndarray = field(init=False)  # the |Δp| histogram's bucket bounds
    _counted: tuple[Any, ...] = field(init=False)  # the 2x2's counters, then |Δp|'s buckets
    _difference_sum: Any = field(init=False)  # the |Δp| histogram's sum counter
    # per live fast path's fields: where the shadow's features are, its weights by value number
    _gatherings: dict[Categories, _Gathering] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        scorer = self.predictor.scorer
        self._fields = (*scorer.category_weights, *scorer.numeric_fields)
        # Every cell of the 2x2 exists from the start, so a rate() of zero agreement is 0.
        self._cells = [
            DECISIONS.labels(DECISION_NAMES[live], DECISION_NAMES[shadow])
            for live in (False, True)
            for shadow in (False, True)
        ]
        difference = histogram_parts(DIFFERENCE)
        self._bounds = np.asarray(difference.bounds)
        self._counted = (*self._cells, *difference.buckets)
        self._difference_sum = difference.total

    def compare(self, customers: Sequence[Customer], live: Sequence[Customer]) -> None:
        """Score validated ``customers`` with the shadow; count how it differs from ``live``."""
        if not self.sampled():
            return
        if len(customers) >= VECTORIZE_FROM:
            columns = {f: [c[f] for c in customers] for f in customers[0]}
            self._guarded(self._count_columns, columns, live)
        else:
            self._guarded(self._count_few, customers, live)

    def compare_one(self, scored: Scored, live: Customer) -> None:
        """``compare`` for the customer the single-customer path scored (churn/fastpath.py)."""
        if self.sampled():
            self._guarded(self._count_one, scored, live)

    def compare_checked(
        self,
        checked: CheckedColumns,
        probabilities: np.ndarray,
        churn: np.ndarray,
        requests: int,
    ) -> None:
        """Compare batches the fast path checked (churn/checked.py) and ``sampled`` chose, as
        one (churn/watch.py joins a second's), given the live model's probabilities and
        decisions as arrays; a failure counts one error for each of the ``requests``."""
        self._guarded(self._count_checked, checked, probabilities, churn, requests=requests)

    def describe(self) -> dict[str, Any]:
        return {**self.predictor.describe(), "role": "shadow", "sample": self.sample}

    def sampled(self) -> bool:
        """Whether this request is compared: SHADOW_SAMPLE's share of them, drawn each time."""
        return self.sample >= 1.0 or random.random() < self.sample  # noqa: S311 - not a secret

    def _guarded(self, count: Callable[..., None], *args: Any, requests: int = 1) -> None:
        try:
            count(*args)
        except Exception:
            TALLY.add(ERRORS, requests)
            if not self._warned:  # once per worker: a broken shadow would flood the log
                self._warned = True
                self.logger.exception("the shadow model failed; answers are unaffected")

    def _count_one(self, scored: Scored, live: Customer) -> None:
        """One customer from its values: no dict, and one tally update for both metrics."""
        scorer = self.predictor.scorer
        if scored.fields != self._fields:  # another order of features: the general way
            self._count_few([scored.customer], [live])
            return
        split = len(scorer.category_weights)
        probability = scorer.probability_of(scored.values[:split], scored.values[split:])
        cell = self._cells[2 * live["churn"] + (probability >= self.predictor.threshold)]
        difference = abs(probability - live["churn_probability"])
        TALLY.add_each((cell,), None, (DIFFERENCE, difference))

    def _count_few(self, customers: Sequence[Customer], live: Sequence[Customer]) -> None:
        """Plain Python for a few customers: numpy's call overhead would cost more."""
        probabilities = self.predictor.scorer.probabilities(customers)
        threshold, cells = self.predictor.threshold, self._cells
        agreement, differences = [], []
        for result, probability in zip(live, probabilities, strict=True):
            agreement.append(cells[2 * result["churn"] + (probability >= threshold)])
            differences.append(abs(probability - result["churn_probability"]))
        TALLY.add_each(agreement)
        TALLY.observe_each(DIFFERENCE, differences)

    def _count_columns(
        self, columns: Mapping[str, Sequence[Any]], live: Sequence[Customer]
    ) -> None:
        """Customers given as one sequence of canonical values per feature (validated batches)."""
        scorer, size = self.predictor.scorer, len(live)
        numbers = np.column_stack(
            [np.asarray(columns[f], np.float64) for f in scorer.numeric_fields]
        )
        terms = [  # map() calls get(value, 0.0) in C: no Python loop per customer
            np.fromiter(map(table.get, columns[name], repeat(0.0)), np.float64, size)
            for name, table in scorer.category_weights.items()
        ]
        live_p = np.fromiter(map(itemgetter("churn_probability"), live), np.float64, size)
        live_churn = np.fromiter(map(itemgetter("churn"), live), np.bool_, size)
        self._count_arrays(scorer.combine(numbers, terms), live_p, live_churn)

    def _count_checked(
        self, checked: CheckedColumns, live_p: np.ndarray, live_churn: np.ndarray
    ) -> None:
        """Codes and numbers as the fast path checked them: the shadow's weights by code."""
        numeric_columns, weights, rows = self._gathering(checked.categories, checked.column_of)
        terms = weights.take(checked.categories.numbered(checked.code_matrix))
        shadow = self.predictor.scorer.combine(checked.numbers[:, numeric_columns], terms[rows])
        self._count_arrays(shadow, live_p, live_churn)

    def _gathering(self, categories: Categories, column_of: Mapping[str, int]) -> _Gathering:
        """Where the shadow's features are in the checked columns, and its weight per live value.

        The live model's validator made the codes, so they index the live vocabulary; a value
        the shadow never saw in training weighs 0 for it (what ``table.get(value, 0.0)`` and
        DictVectorizer give), so a shadow with another vocabulary is scored as the general way
        scores it. Built once per live fast path (its fields and vocabularies are fixed).
        """
        known = self._gatherings.get(categories)
        if known is not None:
            return known
        scorer = self.predictor.scorer
        columns = [column_of[f] for f in scorer.numeric_fields]
        weights = categories.table(
            lambda field, category: [
                scorer.category_weights.get(field, {}).get(value, 0.0)
                for value in category.vocabulary
            ]
        )
        rows = [list(categories).index(field) for field in scorer.category_weights]
        self._gatherings[categories] = (columns, weights, rows)
        return columns, weights, rows

    def _count_arrays(self, shadow: np.ndarray, live_p: np.ndarray, live_churn: np.ndarray) -> None:
        """The 2x2 cells and the |Δp| histogram's buckets counted by one ``np.bincount`` (cells
        0-3, buckets from 4 on: ``_counted``), in one tally update."""
        cells = 2 * live_churn + (shadow >= self.predictor.threshold)
        differences = np.abs(shadow - live_p)
        buckets = np.searchsorted(self._bounds, differences, side="left")  # Histogram's bucket
        counts = np.bincount(np.concatenate((cells, buckets + 4)), minlength=len(self._counted))
        TALLY.add_array(self._counted, counts, {self._difference_sum: float(differences.sum())})
