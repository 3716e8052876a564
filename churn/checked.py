"""Column checks for /predict batches (churn/fastbatch.py) and the columns they produce.

Each check either vouches for a whole column, giving the values the pydantic model would store,
or says it cannot (None), and the request then goes through the model itself. Categorical
columns become codes (a value's index in the field's vocabulary), so the weights the scorer adds,
the drift bins (churn/monitor.py) and the shadow model's weights (churn/shadow.py) are numpy
operations on the codes instead of more passes over the customers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import cached_property
from itertools import chain
from typing import Any, cast

import numpy as np

from churn.fastpath import NUMBER_TYPES
from churn.rules import INVALID, MEMO_LIMIT, Bounds, ValueRule
from churn.schema import MAX_TEXT_LENGTH

# A code is an index in a field's vocabulary (a handful of values): 16 bits hold any.
CODE_TYPE = np.int16


class CategoryCodes:
    """One categorical field: each spelling's code, its index in the field's vocabulary.

    The field's pydantic validator normalizes a spelling ("Fiber optic", " DSL ") once; the
    code of every text spelling seen is remembered, so a known column costs one lookup a value.
    """

    def __init__(self, rule: ValueRule, vocabulary: Sequence[str], weights: Mapping[str, float]):
        self.vocabulary = tuple(vocabulary)
        if len(self.vocabulary) > np.iinfo(CODE_TYPE).max:
            raise ValueError(f"a vocabulary of {len(self.vocabulary)} values is too large")
        self.weights = np.array([weights.get(value, 0.0) for value in self.vocabulary])
        self._rule = rule
        self._code = {value: code for code, value in enumerate(self.vocabulary)}
        self.known: dict[str, int] = {}  # spelling -> code, for every spelling seen so far

    def codes(self, column: Sequence[Any]) -> list[int | None]:
        """Each value's code (learning new spellings); None for a value not of the field."""
        return list(map(self._learn, column))

    def _learn(self, value: Any) -> int | None:
        if type(value) is str and value in self.known:
            return self.known[value]
        normalized = self._rule(value)
        if normalized is INVALID:
            return None
        code = self._code[normalized]
        if type(value) is str and len(self.known) < MEMO_LIMIT:
            self.known[value] = code
        return code


class Categories(Mapping[str, CategoryCodes]):
    """A fast path's categorical fields (in the scorer's order) with their vocabularies numbered
    one after the other: a code plus its field's offset is the value's number among all the
    fields' values. A table with an entry per such number (a weight, a drift bin) then gives
    every field of a batch at once, in one ``take`` instead of a numpy call per field.
    """

    def __init__(self, fields: Mapping[str, CategoryCodes]):
        self._fields = dict(fields)
        sizes = [len(category.vocabulary) for category in self._fields.values()]
        self.value_count = sum(sizes)  # a table's length
        self._offsets = np.cumsum([0, *sizes[:-1]], dtype=np.intp).reshape(-1, 1)
        self.weights = self.table(lambda field, category: category.weights)

    def table(self, per_field: Callable[[str, CategoryCodes], Any]) -> np.ndarray:
        """One table by value number, from each field's entries by code."""
        return np.concatenate([per_field(field, c) for field, c in self._fields.items()])

    def numbered(self, code_matrix: np.ndarray) -> np.ndarray:
        """Each code's value number, for a codes matrix (``code_matrix``) of these fields."""
        return code_matrix + self._offsets

    def code_matrix(self, columns: Mapping[str, Sequence[Any]], size: int) -> np.ndarray | None:
        """Every field's codes as one matrix, a row per field, or None when a value is not one
        of its field's.

        One matrix, not an array per field: a batch's codes are kept until the drift and
        shadow flush (churn/watch.py), and copying 19 arrays into one cost ~13 µs a request
        under load.
        """
        fields = self._fields.items()
        try:  # the usual case, every spelling seen before: all fields in one pass in C
            known = (map(category.known.__getitem__, columns[field]) for field, category in fields)
            flat = np.fromiter(chain.from_iterable(known), CODE_TYPE, len(self) * size)
            return flat.reshape(len(self), size)
        except (KeyError, TypeError):  # a spelling not seen yet, or an unhashable value
            pass
        matrix = np.empty((len(self), size), CODE_TYPE)
        for index, (field, category) in enumerate(fields):
            codes = category.codes(columns[field])
            if None in codes:
                return None
            matrix[index] = cast(list[int], codes)
        return matrix

    def __getitem__(self, field: str) -> CategoryCodes:
        return self._fields[field]

    # Identity, not contents: the tables others build for a fast path's fields are kept by
    # these objects (a Mapping would compare, and refuse to hash, by contents).
    def __eq__(self, other: object) -> bool:
        return self is other

    def __hash__(self) -> int:
        return id(self)

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)


def number_column(rule: ValueRule, bounds: Bounds, column: Sequence[Any]) -> np.ndarray | None:
    """A numeric field's values as float64, or None when one is refused or needs the model.

    JSON numbers are bounds-checked as one array. Numbers written as text go through Python's
    ``float``, which the model's own validator applies to them (schema.py ``_number``: a
    finite ``float`` of the stripped text). ``float`` strips the same spaces but U+001C-U+001F,
    which it refuses: what it refuses (those, blanks, words) is asked of the field's
    validator, text by text, so ``float`` never accepts what the validator would not.
    """
    kinds = set(map(type, column))
    if kinds <= NUMBER_TYPES:
        try:
            values = np.array(column, dtype=np.float64)
        except OverflowError:  # an integer beyond float64: the validator refuses it
            return None
    elif kinds == {str} and max(map(len, column)) <= MAX_TEXT_LENGTH:
        try:
            values = np.fromiter(map(float, column), np.float64, len(column))
        except ValueError:
            checked = [_text_number(rule, text) for text in column]
            if INVALID in checked:
                return None
            values = np.array(checked, dtype=np.float64)
    else:  # booleans, mixes of numbers and text: the field's validator, value by value
        checked_values = value_column(rule, column)
        return None if checked_values is None else np.array(checked_values, dtype=np.float64)
    return values if bounds.accepts(values).all() else None


def _text_number(rule: ValueRule, text: str) -> Any:
    try:
        return float(text)
    except ValueError:  # a blank TotalCharges (a new customer), or not a number
        return rule(text)


def value_column(rule: ValueRule, column: Sequence[Any]) -> list[Any] | None:
    """Each value as the field's validator gives it (remembered), or None if one is refused."""
    values = rule.column(column)
    return None if INVALID in values else values


class CheckedColumns(Mapping[str, Sequence[Any]]):
    """A batch's validated features: one column per feature, as the validator gives values.

    Numeric fields (flags included) are a float64 matrix; categorical fields are codes into
    their ``CategoryCodes``'s vocabulary, a row per field of ``code_matrix`` in the order of
    ``categories`` (``codes``: each field's row). Drift counting and the
    shadow model work on these directly (code -> bin, code -> weight). As a mapping it gives a
    column of canonical values (``columns[field]``: flags as ints, numbers as a float64 array,
    categories as their course spelling), built only when asked for: the service never asks,
    tests/test_fastbatch.py compares it with the validator's customers.
    """

    def __init__(
        self,
        numbers: np.ndarray,
        numeric_fields: Sequence[str],
        flags: frozenset[str],
        code_matrix: np.ndarray,
        categories: Categories,
    ):
        self.numbers = numbers
        self.column_of = {field: index for index, field in enumerate(numeric_fields)}
        self.flags = flags
        self.code_matrix = code_matrix
        self.categories = categories

    @cached_property
    def codes(self) -> dict[str, np.ndarray]:
        """Each categorical field's codes (its row of ``code_matrix``)."""
        return dict(zip(self.categories, self.code_matrix, strict=True))

    @staticmethod
    def joined(parts: Sequence[CheckedColumns]) -> CheckedColumns:
        """Batches checked by one fast path (the same fields and vocabularies) as one batch:
        customers in the order given."""
        first = parts[0]
        return CheckedColumns(
            np.concatenate([part.numbers for part in parts]),
            list(first.column_of),
            first.flags,
            np.concatenate([part.code_matrix for part in parts], axis=1),
            first.categories,
        )

    def terms(self) -> np.ndarray:
        """Each categorical field's weight per customer: a row per field, in the scorer's
        order of fields."""
        return self.categories.weights.take(self.categories.numbered(self.code_matrix))

    def __getitem__(self, field: str) -> Sequence[Any]:
        if field in self.codes:
            vocabulary = self.categories[field].vocabulary
            return list(map(vocabulary.__getitem__, self.codes[field].tolist()))
        column = self.numbers[:, self.column_of[field]]
        if field in self.flags:
            return column.astype(np.int64).tolist()
        return cast(Sequence[Any], column)  # a float64 array: what numpy code wants here

    def __iter__(self) -> Iterator[str]:
        return iter((*self.column_of, *self.codes))

    def __len__(self) -> int:
        return len(self.column_of) + len(self.codes)
