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

from churn.fastpath import Scored
from churn.observability import TALLY
from churn.scorer import VECTORIZE_FROM

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


@dataclass
class Shadow:
    """The candidate model (a ``Predictor``) and the share of requests it sees."""

    predictor: Any
    sample: float
    logger: logging.Logger
    _cells: list[Any] = field(init=False)  # the 2x2's counters: index 2 * live + shadow
    _fields: tuple[str, ...] = field(init=False)  # the features in the order its scorer adds
    _warned: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        scorer = self.predictor.scorer
        self._fields = (*scorer.category_weights, *scorer.numeric_fields)
        # Every cell of the 2x2 exists from the start, so a rate() of zero agreement is 0.
        self._cells = [
            DECISIONS.labels(DECISION_NAMES[live], DECISION_NAMES[shadow])
            for live in (False, True)
            for shadow in (False, True)
        ]

    def compare(self, customers: Sequence[Customer], live: Sequence[Customer]) -> None:
        """Score validated ``customers`` with the shadow; count how it differs from ``live``."""
        if len(customers) >= VECTORIZE_FROM:
            self.compare_columns({f: [c[f] for c in customers] for f in customers[0]}, live)
        elif self._sampled():
            self._guarded(self._count_few, customers, live)

    def compare_one(self, scored: Scored, live: Customer) -> None:
        """``compare`` for the customer the single-customer path scored (churn/fastpath.py)."""
        if self._sampled():
            self._guarded(self._count_one, scored, live)

    def compare_columns(
        self, columns: Mapping[str, Sequence[Any]], live: Sequence[Customer]
    ) -> None:
        """``compare`` for customers given as one sequence of canonical values per feature."""
        if self._sampled():
            self._guarded(self._count_many, columns, live)

    def describe(self) -> dict[str, Any]:
        return {**self.predictor.describe(), "role": "shadow", "sample": self.sample}

    def _sampled(self) -> bool:
        return self.sample >= 1.0 or random.random() < self.sample  # noqa: S311 - not a secret

    def _guarded(self, count: Callable[..., None], *args: Any) -> None:
        try:
            count(*args)
        except Exception:
            TALLY.add(ERRORS)
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

    def _count_many(self, columns: Mapping[str, Sequence[Any]], live: Sequence[Customer]) -> None:
        scorer, size = self.predictor.scorer, len(live)
        numbers = np.column_stack(
            [np.asarray(columns[f], np.float64) for f in scorer.numeric_fields]
        )
        terms = [  # map() calls get(value, 0.0) in C: no Python loop per customer
            np.fromiter(map(table.get, columns[name], repeat(0.0)), np.float64, size)
            for name, table in scorer.category_weights.items()
        ]
        shadow = scorer.combine(numbers, terms)
        live_p = np.fromiter(map(itemgetter("churn_probability"), live), np.float64, size)
        live_churn = np.fromiter(map(itemgetter("churn"), live), np.int64, size)
        cells = np.bincount(2 * live_churn + (shadow >= self.predictor.threshold), minlength=4)
        agreement = {child: int(n) for child, n in zip(self._cells, cells, strict=True) if n}
        TALLY.add_counts(agreement)
        TALLY.observe_each(DIFFERENCE, np.abs(shadow - live_p).tolist())
