"""A shadow model: scores the customers the live model answered, is compared, never answers.

``SHADOW_MODEL_FILE`` loads a candidate exactly as the live model is loaded (safe unpickler,
SHA-256, schema). For a share of requests (``SHADOW_SAMPLE``) it scores the same checked
customers with its own weights, and the service counts where the two decisions agree (each
model at its own threshold) and how far apart the probabilities are (churn/metrics.py ``Watch``
calls ``compare`` about once a second).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from churn.columns import Checked
from churn.metrics import DECISION_NAMES, DECISIONS, DIFFERENCE
from churn.predictor import Predictor
from churn.scorer import Scorer


@dataclass
class Shadow:
    predictor: Predictor  # the candidate
    scorer: Scorer  # its weights over the live model's vocabularies (unknown values weigh 0)
    sample: float  # the share of requests it sees
    live_threshold: float

    @classmethod
    def of(cls, candidate: Predictor, live: Predictor, sample: float) -> Shadow:
        scorer = Scorer.of(candidate.weights, live.validator.vocabularies)
        for live_decision in DECISION_NAMES:  # every cell exists from the start, at 0
            for shadow_decision in DECISION_NAMES:
                DECISIONS.labels(live_decision, shadow_decision)
        return cls(candidate, scorer, sample, live.threshold)

    def compare(self, checked: Checked, live: np.ndarray) -> None:
        """Count the 2x2 of decisions and |Δp| for customers the live model scored ``live``."""
        shadow = self.scorer.probabilities(checked)
        live_churn = live >= self.live_threshold
        cells = 2 * live_churn + (shadow >= self.predictor.threshold)
        for cell, count in enumerate(np.bincount(cells, minlength=4).tolist()):
            if count:
                DECISIONS.labels(DECISION_NAMES[cell // 2], DECISION_NAMES[cell % 2]).inc(count)
        for difference in np.abs(shadow - live).tolist():
            DIFFERENCE.observe(difference)

    def describe(self) -> dict[str, Any]:
        return {**self.predictor.describe(), "role": "shadow", "sample": self.sample}
