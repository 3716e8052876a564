"""The one scorer: churn probabilities for checked customers (churn/columns.py ``Checked``).

A logistic regression over DictVectorizer's one-hot and numeric features is a sum of weights: a
category adds its value's weight, a number its value times its weight. ``_probability`` adds
them up in one fixed order, over numpy columns for a batch or over Python numbers for one
customer. numpy's element-wise arithmetic rounds as Python's does, so a customer scores to the
same bits alone, in a batch, in a file or on Spark (tests/test_one_rule.py holds this). A shadow
model is this class with its own weights over the live model's vocabularies.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from churn.artifact import ModelWeights
from churn.columns import Checked
from churn.features import CATEGORICAL_FIELDS, NUMBER_FIELDS


@dataclass(frozen=True)
class Scorer:
    intercept: float
    number_weights: tuple[float, ...]  # one per ``NUMBER_FIELDS``
    code_weights: tuple[tuple[float, ...], ...]  # per CATEGORICAL_FIELDS: a weight per code

    @classmethod
    def of(cls, model: ModelWeights, vocabularies: Mapping[str, Sequence[str]]) -> Scorer:
        """The pair's weights by field: ``contract=one_year`` is the weight of that code.

        A value the model never saw weighs 0, as DictVectorizer leaves its column at 0.
        """
        weight = model.weights
        separator = model.separator
        return cls(
            intercept=model.intercept,
            number_weights=tuple(weight.get(field, 0.0) for field in NUMBER_FIELDS),
            code_weights=tuple(
                tuple(weight.get(f"{field}{separator}{v}", 0.0) for v in vocabularies[field])
                for field in CATEGORICAL_FIELDS
            ),
        )

    @functools.cached_property
    def _code_arrays(self) -> tuple[np.ndarray, ...]:
        return tuple(np.array(weights) for weights in self.code_weights)

    def probabilities(self, checked: Checked) -> np.ndarray:
        """Every row's probability, a numpy column at a time."""
        return _probability(self, self._code_arrays, checked.codes.T, checked.numbers.T)

    def probability(self, checked: Checked, row: int = 0) -> float:
        """One row's probability in Python's numbers: for one customer, numpy's cost per call
        was most of the time (docs/performance.md)."""
        codes, numbers = checked.codes[row].tolist(), checked.numbers[row].tolist()
        return float(_probability(self, self.code_weights, codes, numbers))

    def explain(self, checked: Checked, row: int, vocabularies: Mapping[str, Sequence[str]]) -> Any:
        """Each feature's contribution to one row's log-odds (weight × value), largest first."""
        parts = [
            {"feature": f"{field}={vocabularies[field][code]}", "value": 1.0,
             "contribution": weights[code]}
            for field, code, weights in zip(
                CATEGORICAL_FIELDS, checked.codes[row].tolist(), self.code_weights, strict=True
            )
        ]  # fmt: skip
        parts += [
            {"feature": field, "value": value, "contribution": weight * value}
            for field, value, weight in zip(
                NUMBER_FIELDS, checked.numbers[row].tolist(), self.number_weights, strict=True
            )
        ]
        return sorted(parts, key=lambda part: -abs(part["contribution"]))


def _probability(scorer: Scorer, code_weights: Sequence[Any], codes: Any, numbers: Any) -> Any:
    """The probability for columns (numpy arrays: a batch) or for one row (Python numbers): the
    log-odds added up term by term in one order, then the logistic function."""
    log_odds = scorer.intercept
    for weights, code in zip(code_weights, codes, strict=True):
        log_odds = log_odds + weights[code]
    for weight, value in zip(scorer.number_weights, numbers, strict=True):
        log_odds = log_odds + value * weight
    # The logistic function written with tanh: no overflow for any log-odds. numpy's tanh for
    # one row too: Python's math.tanh differs from it in the last bit for a quarter of values.
    return 0.5 * (1.0 + np.tanh(0.5 * log_odds))
