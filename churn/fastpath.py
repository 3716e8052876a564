"""/predict's single-customer fast path: checked, scored and binned for drift in one pass.

Batches have their own (churn/fastbatch.py). The usual request is one customer.

Each categorical field has a table from the text a request carries ("Fiber optic", "dsl") to all
a request needs to know about it: the value as the pydantic model stores it, its weight in the
compiled scorer and the drift counter of its bin. A table learns a text the first time it comes,
from churn/rules.py (the pydantic model's own field validator), so a customer in a known spelling
costs one lookup per field, done in C, instead of a validator, a scorer and a drift pass one
after the other (docs/performance.md). Flags and numbers are checked by the same rules and the
schema's bounds and added in the scorer's order, so the probability is the scorer's to the bit.

Anything these checks cannot vouch for gives None, and /predict validates the customer with
``CustomerValidator``, which writes the 422's messages. tests/test_fastpath.py checks on
generated customers that the customer, its probability and its drift bins are exactly what the
validator, the scorer and the drift monitor give, and that nothing the validator refuses passes.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Sequence
from operator import getitem, itemgetter
from typing import Any, NamedTuple, Protocol

from churn.rules import INVALID, MEMO_LIMIT, CustomerRules
from churn.schema import normalize_keys
from churn.scorer import CompiledScorer

NUMBER_TYPES = frozenset({int, float})  # JSON numbers, as orjson gives them
# A feature's value (as validated) -> the drift counter of its bin.
BinCounter = Callable[[Any], Any]


class DriftBins(Protocol):
    """Where a customer's values count for drift (churn/monitor.py ``DriftMonitor``)."""

    def bin_counter(self, field: str) -> BinCounter:
        """A categorical value's bin counter (looked up once per spelling)."""

    def number_bins(self, field: str) -> tuple[tuple[float, ...], tuple[Any, ...]]:
        """A number's or flag's edges and the bin counter at each ``bisect_right`` position."""


class Scored(NamedTuple):
    """One customer as the single-customer path saw it."""

    fields: tuple[str, ...]  # the features' names, in the order of ``values``
    values: tuple[Any, ...]  # each feature's value as the validator gives it
    customer_id: str | None
    probability: float  # as ``CompiledScorer.probabilities`` gives it
    bins: Sequence[Any]  # the drift counter of each feature's bin; empty without drift counting

    @property
    def customer(self) -> dict[str, Any]:
        """The customer as ``CustomerValidator.one`` gives it (built only when asked for)."""
        return {**dict(zip(self.fields, self.values, strict=True)), "customer_id": self.customer_id}


class Entry(NamedTuple):
    """What one categorical text means: its validated value, its weight, its drift counter."""

    value: str
    weight: float
    counter: Any


class SingleCustomerPath:
    """Checks and scores one customer dict with precomputed tables, or declines (None).

    ``drift``, when given, names the drift counter of each feature's bin (``DriftMonitor``).
    """

    def __init__(
        self, rules: CustomerRules, scorer: CompiledScorer, drift: DriftBins | None = None
    ):
        self._fields = rules.validator.model.model_fields
        self._known = frozenset(self._fields)
        self._counting = drift is not None
        counter = drift.bin_counter if drift is not None else lambda field: lambda value: None
        categorical = tuple(scorer.category_weights)  # the scorer adds them in this order
        self._texts = itemgetter(*categorical)
        self._tables: tuple[dict[Any, Entry], ...] = tuple({} for _ in categorical)
        self._learners = tuple(
            (rules.categorical[f], scorer.category_weights[f], counter(f)) for f in categorical
        )
        # Flags and numbers, in the order the scorer adds them: (field, rule, bounds), where a
        # flag has no bounds (its rule checks it alone).
        numeric = tuple(field for field, _ in scorer.numeric_terms)
        self._numbers = tuple(
            (f, rules.flags[f], None)
            if f in rules.flags
            else (f, rules.numeric[f], rules.bounds[f])
            for f in numeric
        )
        # Each number's bin: bisect_right in its edges, then the counter at that position.
        bins = [drift.number_bins(field) for field in numeric] if drift is not None else []
        self._number_edges = tuple(edges for edges, _ in bins)
        self._number_counters = tuple(counters for _, counters in bins)
        self._names = categorical + numeric
        self._probability = scorer.probability_from
        self._customer_id = rules.customer_id
        self._id_keys = rules.id_keys
        self._max_id_length = rules.max_id_length

    def score(self, payload: Any) -> Scored | None:
        """The validated customer, its churn probability and drift bins; None to validate fully."""
        if type(payload) is not dict:
            return None
        if not self._known.issuperset(payload):  # other spellings of the keys, or extra keys
            payload = normalize_keys(payload, self._fields)
        try:
            texts = self._texts(payload)
            entries: list[Any] = list(map(dict.get, self._tables, texts))
        except (KeyError, TypeError):  # a field is missing, or a value is a list or a dict
            return None
        try:
            values, weights, counters = zip(*entries, strict=False)
        except TypeError:  # None: a text not seen before, for its field's rule to check
            if (learned := self._learn(texts)) is None:
                return None
            values, weights, counters = zip(*learned, strict=False)
        numbers = self._numbers_of(payload)
        customer_id = self._id_of(payload)
        if numbers is None or customer_id is INVALID:
            return None
        probability = self._probability(weights, numbers)
        bins = (*counters, *self._number_bins(numbers)) if self._counting else ()
        return Scored(self._names, values + numbers, customer_id, probability, bins)

    def _learn(self, texts: tuple[Any, ...]) -> list[Entry] | None:
        """Each text's entry, asking the field's rule about texts not seen before."""
        entries = []
        for table, (rule, weights, counter), text in zip(
            self._tables, self._learners, texts, strict=True
        ):
            entry = table.get(text)
            if entry is None:
                value = rule(text)
                if value is INVALID:
                    return None
                entry = Entry(value, weights.get(value, 0.0), counter(value))
                # Texts only: 1 and True look alike to a dict but not to the validator.
                if type(text) is str and len(table) < MEMO_LIMIT:
                    table[text] = entry
            entries.append(entry)
        return entries

    def _number_bins(self, numbers: tuple[Any, ...]) -> map:
        """The drift counters of the numbers' bins, found in C (bisect, getitem)."""
        return map(getitem, self._number_counters, map(bisect_right, self._number_edges, numbers))

    def _numbers_of(self, payload: dict[str, Any]) -> tuple[Any, ...] | None:
        """The flags' and the numbers' values as the validator gives them, or None."""
        numbers = []
        try:
            for field, rule, bounds in self._numbers:
                value = payload[field]
                if bounds is not None and type(value) in NUMBER_TYPES and bounds.admits(value):
                    numbers.append(int(value) if bounds.integer else float(value))
                elif (value := rule(value)) is INVALID:  # a flag, or a number written as text
                    return None
                else:
                    numbers.append(value)
        except KeyError:  # a field is missing: the validator names it
            return None
        return tuple(numbers)

    def _id_of(self, payload: dict[str, Any]) -> Any:
        """``customer_id`` as the validator sets it (``customerid`` wins), or ``INVALID``."""
        chosen = None
        for key in self._id_keys:
            value = payload.get(key)
            if value is None:
                continue
            if type(value) is not str or len(value) > self._max_id_length:
                value = self._customer_id(value)  # integers and the rest: the field's validator
                if value is INVALID:
                    return INVALID
            if chosen is None:
                chosen = value
        return None if chosen is None else str(chosen)
