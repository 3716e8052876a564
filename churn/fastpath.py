"""/predict's fast paths: customers checked by precomputed rules instead of the pydantic model.

Batches are checked and scored column by column (``BatchFastPath``), a single customer field by
field (``CustomerFastPath``).

The checks come from churn/rules.py (the pydantic model's own field validators, asked once per
distinct value, and the schema's bounds). When every customer passes, the answers are exactly
what the pydantic path gives (tests/test_fastpath.py checks this on generated batches); when
anything fails or cannot be decided here, ``answer`` returns None and the request goes through
``CustomerValidator``, which then writes the 422's messages. Needs numpy only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from operator import itemgetter
from typing import Any

import numpy as np

from churn.rules import INVALID, MEMO_LIMIT, CustomerRules, ValueRule
from churn.schema import key_renames, normalize_keys, rename_keys
from churn.scorer import VECTORIZE_FROM, CompiledScorer

NUMBER_TYPES = frozenset({int, float})
# Called with the validated columns and the results of a batch the fast path answered.
ColumnsWatcher = Callable[[Mapping[str, Sequence[Any]], list[dict[str, Any]]], None]


class BatchFastPath:
    """Validates and scores a list of customer dicts with array operations, or declines."""

    def __init__(self, rules: CustomerRules, scorer: CompiledScorer, threshold: float):
        self.rules, self.scorer, self.threshold = rules, scorer, threshold
        self._fields = rules.validator.model.model_fields
        self._known = frozenset(self._fields)
        self._features = (*scorer.numeric_fields, *scorer.category_weights)
        self._row = itemgetter(*self._features)
        # Raw value -> its weight, per categorical field: one dict lookup per customer and field.
        self._weights: dict[str, dict[str, float]] = {f: {} for f in scorer.category_weights}

    def answer(
        self, payload: Sequence[Any], watch: ColumnsWatcher | None = None
    ) -> list[dict[str, Any]] | None:
        """Results as ``Predictor.predict`` gives them, or None to use the full validator.

        ``watch``, when given, sees the validated customers (one column of canonical values per
        feature) with their results: drift counting and the shadow model (endpoint.py).
        """
        if len(payload) < VECTORIZE_FROM:  # few customers: the scorer's per-customer loop
            return None
        customers = self._with_course_keys(payload)
        if customers is None:
            return None
        try:
            rows = list(map(self._row, customers))
        except KeyError:  # a field is missing: the validator names it
            return None
        columns = dict(zip(self._features, zip(*rows, strict=True), strict=True))
        numbers = self._numbers(columns)
        categories = [self._category_terms(field, columns[field]) for field in self._weights]
        ids = self._customer_ids(customers)
        if numbers is None or ids is None or any(terms is None for terms in categories):
            return None
        probabilities = self.scorer.combine(numbers, categories).tolist()  # type: ignore[arg-type]
        threshold = self.threshold
        results = [
            {"churn_probability": p, "churn": p >= threshold, "customer_id": i}
            if i is not None
            else {"churn_probability": p, "churn": p >= threshold}
            for p, i in zip(probabilities, ids, strict=True)
        ]
        if watch is not None:
            watch(self._canonical(columns, numbers), results)
        return results

    def _canonical(self, columns: dict[str, tuple], numbers: np.ndarray) -> dict[str, Sequence]:
        """Each feature's values as the validator would give them (flags as ints)."""
        canonical: dict[str, Any] = {}  # numpy columns and validator columns alike
        for index, field in enumerate(self.scorer.numeric_fields):
            column = numbers[:, index]
            canonical[field] = (
                column.astype(np.int64).tolist() if field in self.rules.flags else column
            )
        for field in self._weights:
            canonical[field] = self.rules.categorical[field].column(columns[field])
        return canonical

    def _with_course_keys(self, payload: Sequence[Any]) -> Sequence[dict[str, Any]] | None:
        if set(map(type, payload)) != {dict}:
            return None
        # An unknown key may be a known field in another spelling ("Contract", "customerID"):
        # each distinct key is spelled out once for the whole batch.
        renames = key_renames(set().union(*payload) - self._known, self._fields)
        if any(name in self._known for name in renames.values()):
            return [rename_keys(customer, renames) for customer in payload]
        return payload

    def _numbers(self, columns: dict[str, tuple]) -> np.ndarray | None:
        arrays = []
        for field in self.scorer.numeric_fields:
            if field in self.rules.flags:
                values = _checked(self.rules.flags[field], columns[field])
            else:
                values = self._numeric(field, columns[field])
            if values is None:
                return None
            arrays.append(values)
        return np.column_stack(arrays)

    def _numeric(self, field: str, column: tuple) -> np.ndarray | None:
        if set(map(type, column)) <= NUMBER_TYPES:  # JSON numbers: checked as one array
            try:
                values = np.array(column, dtype=np.float64)
            except OverflowError:
                return None
            return values if self.rules.bounds[field].accepts(values).all() else None
        return _checked(self.rules.numeric[field], column)  # numbers written as text

    def _category_terms(self, field: str, column: tuple) -> np.ndarray | None:
        memo = self._weights[field]
        try:  # the usual case: every value seen before, one lookup each
            terms = np.fromiter(map(memo.get, column), dtype=np.float64, count=len(column))
            if not np.isnan(terms).any():  # a value not seen before: get's None became NaN
                return terms
        except TypeError:  # an unhashable value
            pass
        learned = [self._learn(field, value) for value in column]
        return None if None in learned else np.array(learned, dtype=np.float64)

    def _learn(self, field: str, value: Any) -> float | None:
        memo = self._weights[field]
        if type(value) is str and value in memo:
            return memo[value]
        normalized = self.rules.categorical[field](value)
        if normalized is INVALID:
            return None
        weight = self.scorer.category_weights[field].get(normalized, 0.0)
        if type(value) is str and len(memo) < MEMO_LIMIT:
            memo[value] = weight
        return weight

    def _customer_ids(self, customers: Sequence[dict[str, Any]]) -> list[str | None] | None:
        """The id each result echoes: ``customerid`` (the CSV's) wins over ``customer_id``."""
        chosen: list[Any] = [None] * len(customers)
        for key in reversed(self.rules.id_keys):
            column = self._valid_ids([customer.get(key) for customer in customers])
            if column is None:
                return None
            chosen = [c if v is None else v for c, v in zip(chosen, column, strict=True)]
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


def _checked(rule: ValueRule, column: Sequence[Any]) -> np.ndarray | None:
    values = rule.column(column)
    if any(v is INVALID for v in values):
        return None
    return np.array(values, dtype=np.float64)


class CustomerFastPath:
    """Checks one customer dict with the same rules, one lookup per field, or declines.

    Most requests are one customer in the course's spelling: each categorical and flag value is
    found in its field's remembered answers, each number checked against its bounds. The result
    is exactly ``CustomerValidator.one``'s (tests/test_fastpath.py checks this on generated
    customers); anything these checks cannot vouch for returns None, and the validator then
    answers, with its own error messages.
    """

    def __init__(self, rules: CustomerRules):
        self._fields = rules.validator.model.model_fields
        self._known = frozenset(self._fields)
        self._value_rules = (*rules.categorical.items(), *rules.flags.items())
        self._numbers = tuple(
            (field, rules.bounds[field], rules.numeric[field]) for field in rules.numeric
        )
        self._customer_id = rules.customer_id
        self._id_keys = rules.id_keys
        self._max_id_length = rules.max_id_length

    def customer(self, payload: Any) -> dict[str, Any] | None:
        """The validated customer, as ``CustomerValidator.one`` gives it, or None."""
        if type(payload) is not dict:
            return None
        if not self._known.issuperset(payload):  # other spellings of the keys, or extra keys
            payload = normalize_keys(payload, self._fields)
        customer: dict[str, Any] = {}
        try:
            for field, rule in self._value_rules:
                value = customer[field] = rule(payload[field])
                if value is INVALID:
                    return None
            for field, bounds, rule in self._numbers:
                value = payload[field]
                if type(value) in NUMBER_TYPES and bounds.admits(value):
                    customer[field] = int(value) if bounds.integer else float(value)
                elif (value := rule(value)) is INVALID:  # numbers written as text
                    return None
                else:
                    customer[field] = value
        except KeyError:  # a field is missing: the validator names it
            return None
        return self._with_id(customer, payload)

    def _with_id(self, customer: dict[str, Any], payload: dict) -> dict[str, Any] | None:
        """``customer_id`` as the validator sets it: ``customerid`` (the CSV's) wins."""
        chosen = None
        for key in self._id_keys:
            value = payload.get(key)
            if value is None:
                continue
            if type(value) is not str or len(value) > self._max_id_length:
                value = self._customer_id(value)  # integers and the rest: the field's validator
                if value is INVALID:
                    return None
            if chosen is None:
                chosen = value
        customer["customer_id"] = None if chosen is None else str(chosen)
        return customer
