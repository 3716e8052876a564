"""The one scorer: churn probabilities for checked customers (churn/columns.py ``Checked``).

A logistic regression over DictVectorizer's one-hot and numeric features is a sum of weights: a
category adds its value's weight, a number its value times its weight. Each row's terms sit in
one row of a matrix, in one fixed order, and numpy sums every row alike whatever the number of
rows, so a customer scores to the same bits alone, in a batch, in a file or on Spark
(tests/test_one_rule.py holds this). A shadow model is this class with its own weights over the
live model's vocabularies.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from churn.artifact import ModelWeights
from churn.columns import NUMBER_FIELDS, Checked
from churn.features import CATEGORICAL_FIELDS


@dataclass(frozen=True)
class Scorer:
    intercept: float
    number_weights: tuple[float, ...]  # one per ``NUMBER_FIELDS``
    code_weights: tuple[np.ndarray, ...]  # per CATEGORICAL_FIELDS: a weight per vocabulary code

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
                np.array([weight.get(f"{field}{separator}{v}", 0.0) for v in vocabularies[field]])
                for field in CATEGORICAL_FIELDS
            ),
        )

    @functools.cached_property
    def _arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The numbers' weights; every category's weights in one array, and each field's first
        position in it."""
        sizes = [len(weights) for weights in self.code_weights]
        first = np.cumsum([0, *sizes[:-1]])
        return np.array(self.number_weights), np.concatenate(self.code_weights), first

    def logits(self, checked: Checked) -> np.ndarray:
        number_weights, code_weights, first = self._arrays
        numbers = len(number_weights)
        terms = np.empty((len(checked.numbers), numbers + len(self.code_weights)))
        terms[:, :numbers] = checked.numbers * number_weights
        terms[:, numbers:] = code_weights[checked.codes + first]
        return terms.sum(axis=1) + self.intercept

    def probabilities(self, checked: Checked) -> np.ndarray:
        # The logistic function written with tanh: no overflow for any logit.
        return 0.5 * (1.0 + np.tanh(0.5 * self.logits(checked)))

    def explain(self, checked: Checked, row: int, vocabularies: Mapping[str, Sequence[str]]) -> Any:
        """Each feature's contribution to one row's log-odds (weight × value), largest first."""
        parts = [
            {"feature": f"{field}={vocabularies[field][code]}", "value": 1.0,
             "contribution": float(weights[code])}
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
