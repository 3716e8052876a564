"""Validation rules for many customers at once, taken from the one pydantic model in schema.py.

A column of a customer base holds a handful of spellings per field ("Fiber optic",
"fiber_optic"), so checking each *distinct* value once with that field's own pydantic validator,
and remembering the answer, validates the whole column. Numbers are checked as arrays against the
bounds the same schema declares. Whatever these checks cannot vouch for goes back to the pydantic
model (``CustomerValidator``), which stays the only author of error messages. Used by /predict
(churn/fastpath.py: batches and single customers) and by batch scoring (churn/batch/).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import TypeAdapter, ValidationError

from churn.schema import ID_KEYS, MAX_ID_LENGTH, CustomerValidator

INVALID: Any = type("Invalid", (), {"__repr__": lambda self: "INVALID"})()
# Remembered answers per field: a file's spellings are few; a flood of distinct junk must not
# grow memory without bound, so past this many the rest are checked without being remembered.
MEMO_LIMIT = 4096


class ValueRule:
    """One field's validator for single values, remembering its answer for each text and int."""

    def __init__(self, adapter: TypeAdapter):
        self._adapter = adapter
        self._text: dict[str, Any] = {}
        self._ints: dict[int, Any] = {}

    def __call__(self, value: Any) -> Any:
        """The value as the model would store it, or ``INVALID``."""
        kind = type(value)  # exact types: True must not find the answer remembered for 1
        memo = self._text if kind is str else self._ints if kind is int else None
        if memo is None:
            return self._check(value)
        found = memo.get(value)
        if found is None:
            found = self._check(value)
            if len(memo) < MEMO_LIMIT:
                memo[value] = found
        return found

    def column(self, values: Sequence[Any]) -> list[Any]:
        """Each value as the model would store it, or ``INVALID``; known values in one pass."""
        kinds = set(map(type, values))  # exact types: True must not find the answer for 1
        memo = self._text if kinds == {str} else self._ints if kinds == {int} else None
        if memo is not None:
            found = list(map(memo.get, values))
            if None not in found:
                return found
        return list(map(self, values))

    def _check(self, value: Any) -> Any:
        try:
            return self._adapter.validate_python(value)
        except ValidationError:
            return INVALID


@dataclass(frozen=True)
class Bounds:
    """A numeric field's range (and whether it must be whole), as the schema declares it."""

    low: float
    high: float
    integer: bool

    def admits(self, value: int | float) -> bool:
        """Whether the model accepts one JSON number: ``accepts`` for a single value."""
        if not self.low <= value <= self.high:  # NaN fails every comparison
            return False
        return not self.integer or type(value) is int or value.is_integer()  # type: ignore[union-attr]

    def accepts(self, values: np.ndarray) -> np.ndarray:
        """Which values the model accepts: finite, in range, whole where it must be."""
        with np.errstate(invalid="ignore"):
            ok = np.isfinite(values) & (values >= self.low) & (values <= self.high)
            if self.integer:
                ok &= values == np.floor(values)
        return ok


@dataclass(frozen=True)
class CustomerRules:
    """Per-field rules for categorical, flag, numeric and id fields, built from one validator."""

    validator: CustomerValidator
    categorical: Mapping[str, ValueRule]
    flags: Mapping[str, ValueRule]
    numeric: Mapping[str, ValueRule]
    bounds: Mapping[str, Bounds]
    customer_id: ValueRule

    @classmethod
    def build(cls, validator: CustomerValidator) -> CustomerRules:
        schema = validator.schema

        def rules(section: str) -> dict[str, ValueRule]:
            return {field: ValueRule(validator.field_adapter(field)) for field in schema[section]}

        limits = schema["numeric"]
        return cls(
            validator=validator,
            categorical=rules("categorical"),
            flags=rules("flags"),
            numeric=rules("numeric"),
            bounds={
                field: Bounds(float(spec["min"]), float(spec["max"]), bool(spec["integer"]))
                for field, spec in limits.items()
            },
            customer_id=ValueRule(validator.field_adapter(ID_KEYS[0])),
        )

    @property
    def id_keys(self) -> tuple[str, ...]:
        return ID_KEYS

    @property
    def max_id_length(self) -> int:
        return MAX_ID_LENGTH
