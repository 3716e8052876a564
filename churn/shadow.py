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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Counter, Histogram

from churn.observability import TALLY

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


@dataclass
class Shadow:
    """The candidate model (a ``Predictor``) and the share of requests it sees."""

    predictor: Any
    sample: float
    logger: logging.Logger
    _agreement: dict[tuple[bool, bool], Any] = field(init=False)
    _warned: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        # Every cell of the 2x2 exists from the start, so a rate() of zero agreement is 0.
        self._agreement = {
            (live, shadow): DECISIONS.labels(DECISION_NAMES[live], DECISION_NAMES[shadow])
            for live in (True, False)
            for shadow in (True, False)
        }

    def compare(
        self, customers: Sequence[Mapping[str, Any]], live_results: Sequence[Mapping[str, Any]]
    ) -> None:
        """Score ``customers`` with the shadow and count how it differs from ``live_results``."""
        if self.sample < 1.0 and random.random() >= self.sample:  # noqa: S311 - not a secret
            return
        try:
            probabilities = self.predictor.scorer.probabilities(customers)
            threshold = self.predictor.threshold
            pairs = list(zip(live_results, probabilities, strict=True))
            cells = [self._agreement[live["churn"], p >= threshold] for live, p in pairs]
            differences = [abs(p - live["churn_probability"]) for live, p in pairs]
        except Exception:
            TALLY.add(ERRORS)
            if not self._warned:  # once per worker: a broken shadow would flood the log
                self._warned = True
                self.logger.exception("the shadow model failed; answers are unaffected")
            return
        TALLY.add_each(cells)
        TALLY.observe_each(DIFFERENCE, differences)

    def compare_columns(
        self, columns: Mapping[str, Sequence[Any]], live_results: Sequence[Mapping[str, Any]]
    ) -> None:
        """``compare`` for customers given as one sequence of canonical values per feature."""
        names = list(columns)
        rows = zip(*columns.values(), strict=True)
        self.compare([dict(zip(names, row, strict=True)) for row in rows], live_results)

    def describe(self) -> dict[str, Any]:
        return {**self.predictor.describe(), "role": "shadow", "sample": self.sample}
