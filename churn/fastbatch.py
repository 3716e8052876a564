"""/predict batches checked and scored column by column, or declined to the pydantic model.

``BatchFastPath.answer`` takes the parsed JSON list and gives exactly what
``Predictor.predict(validator.many(...))`` gives, or None, and the request then goes through
``CustomerValidator``, which writes the 422's messages (naming field and row). The checks come from
churn/rules.py (each field's own pydantic validator, asked once per distinct value, and the
schema's bounds); tests/test_fastpath.py compares both paths on generated batches.

Where a 1,000-customer request's time goes (docs/performance.md): after orjson's parse, most is
touching each of the ~20,000 values once. So each value is touched as few times as possible: one
pass takes a field's column out of the dicts (from whichever key spells the field in this batch:
no dict is rebuilt), one pass turns a categorical column into codes (its index in the field's
vocabulary), and weights, drift counts and canonical values are numpy operations on the codes.
Needs numpy only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from operator import itemgetter, methodcaller
from typing import Any

import numpy as np

from churn.checked import (
    Categories,
    CategoryCodes,
    CheckedColumns,
    number_column,
    value_column,
)
from churn.rules import INVALID, CustomerRules
from churn.schema import ID_KEYS, key_renames, rename_keys
from churn.scorer import VECTORIZE_FROM, CompiledScorer

# Called with the validated columns and the churn probabilities of a batch the fast path answered.
ColumnsWatcher = Callable[[CheckedColumns, np.ndarray], None]


class BatchFastPath:
    """Validates and scores a list of customer dicts with array operations, or declines."""

    def __init__(self, rules: CustomerRules, scorer: CompiledScorer, threshold: float):
        self.rules, self.scorer, self.threshold = rules, scorer, threshold
        self._fields = rules.validator.model.model_fields
        self._known = frozenset(self._fields)
        vocabularies = rules.validator.schema["categorical"]
        self._categories = Categories(
            {
                field: CategoryCodes(rules.categorical[field], vocabularies[field], weights)
                for field, weights in scorer.category_weights.items()
            }
        )

    def answer(
        self, payload: Sequence[Any], watch: ColumnsWatcher | None = None
    ) -> list[dict[str, Any]] | None:
        """Results as ``Predictor.predict`` gives them, or None to use the full validator.

        ``watch``, when given, sees the validated customers (``CheckedColumns``: codes and
        numbers per feature) with their probabilities: drift counting and the shadow model.
        """
        if len(payload) < VECTORIZE_FROM:  # few customers: the scorer's per-customer loop
            return None
        if set(map(type, payload)) != {dict}:
            return None
        try:
            columns = self._columns(payload)
            checked = self._checked(columns, len(payload))
        except KeyError:  # a field is missing: the validator names it
            return None
        ids = self._customer_ids(columns, len(payload))
        if checked is None or ids is None:
            return None
        probabilities = self.scorer.combine(checked.numbers, checked.terms())
        results = self._results(probabilities, ids)
        if watch is not None:
            watch(checked, probabilities)
        return results

    def _columns(self, payload: Sequence[dict]) -> dict[str, Sequence[Any]]:
        """Each field's values, customers in order, under the field's name; KeyError if missing.

        Raw exports spell fields their own way ("Contract", "customerID"): each distinct key is
        spelled out once for the batch, never customer by customer. In the usual batch every
        customer has the same keys in the same order: all columns then come out of one
        transposition of the dicts' values, and where two keys spell one field the later one
        wins, as in the validator. Otherwise each column is read under its key, and only if two
        keys of the batch spell one field is each customer's dict renamed.
        """
        keys = list(payload[0])
        if all(map(keys.__eq__, map(list, payload))):
            spelled = self._fields_spelled(keys)
            names = [spelled.get(key, key) for key in keys]
            return dict(zip(names, zip(*map(dict.values, payload), strict=True), strict=True))
        present = set().union(*payload)
        spelled = self._fields_spelled(present)
        fields = list(spelled.values())
        if len(set(fields)) < len(fields) or not present.isdisjoint(fields):
            renames = key_renames(present, self._fields)
            payload = [rename_keys(customer, renames) for customer in payload]
            present, spelled = set().union(*payload), {}
        key_of = {spelled.get(key, key): key for key in present}
        return {  # a customer without an id has none; one without a feature: KeyError
            field: list(map(self._getter(field, key_of[field]), payload))
            for field in self._known.intersection(key_of)
        }

    def _fields_spelled(self, keys: Iterable[Any]) -> dict[str, str]:
        """The field each key spells another way ("Contract": "contract")."""
        renames = key_renames(set(keys) - self._known, self._fields)
        return {key: field for key, field in renames.items() if field in self._known}

    @staticmethod
    def _getter(field: str, key: str) -> Callable[[dict], Any]:
        return methodcaller("get", key) if field in ID_KEYS else itemgetter(key)

    def _checked(self, columns: Mapping[str, Sequence[Any]], size: int) -> CheckedColumns | None:
        """Every feature validated; None when a value fails or needs the validator's say."""
        rules = self.rules
        numbers = np.empty((size, len(self.scorer.numeric_fields)))
        for index, field in enumerate(self.scorer.numeric_fields):
            column = columns[field]
            values: Any  # a list of flags or a float64 array
            if field in rules.flags:
                values = value_column(rules.flags[field], column)
            else:
                values = number_column(rules.numeric[field], rules.bounds[field], column)
            if values is None:
                return None
            numbers[:, index] = values
        codes = self._categories.code_matrix(columns, size)
        if codes is None:
            return None
        return CheckedColumns(
            numbers, self.scorer.numeric_fields, frozenset(rules.flags), codes, self._categories
        )

    def _customer_ids(
        self, columns: Mapping[str, Sequence[Any]], size: int
    ) -> list[str | None] | None:
        """The id each result echoes: ``customerid`` (the CSV's) wins over ``customer_id``."""
        chosen: list[Any] = [None] * size
        for field in reversed(ID_KEYS):
            if field not in columns:  # no customer of the batch has it
                continue
            column = self._valid_ids(list(columns[field]))
            if column is None:
                return None
            chosen = [c if v is None else v for c, v in zip(chosen, column, strict=True)]
        if set(map(type, chosen)) <= {str, type(None)}:
            return chosen
        return [v if v is None or type(v) is str else str(v) for v in chosen]

    def _valid_ids(self, column: list[Any]) -> list[Any] | None:
        kinds = set(map(type, column))
        if kinds == {str}:
            return column if max(map(len, column)) <= self.rules.max_id_length else None
        if kinds == {type(None)}:
            return column
        # Integers, floats, mixes: the field's own validator, one value at a time.
        values = list(map(self.rules.customer_id, column))
        return None if any(v is INVALID for v in values) else values

    def _results(self, probabilities: np.ndarray, ids: list[str | None]) -> list[dict[str, Any]]:
        churn = (probabilities >= self.threshold).tolist()
        if ids.count(None) == len(ids):  # no customer has an id
            return [
                {"churn_probability": p, "churn": c}
                for p, c in zip(probabilities.tolist(), churn, strict=True)
            ]
        return [
            {"churn_probability": p, "churn": c, "customer_id": i}
            if i is not None
            else {"churn_probability": p, "churn": c}
            for p, c, i in zip(probabilities.tolist(), churn, ids, strict=True)
        ]
