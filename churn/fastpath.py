"""/predict's single-customer fast path: checked by precomputed rules, not the pydantic model.

A single customer is checked field by field (``CustomerFastPath``); batches column by column
(churn/fastbatch.py).

The checks come from churn/rules.py (the pydantic model's own field validators, asked once per
distinct value, and the schema's bounds). When every customer passes, the answers are exactly
what the pydantic path gives (tests/test_fastpath.py checks this on generated batches); when
anything fails or cannot be decided here, the fast path returns None and the request goes through
``CustomerValidator``, which then writes the 422's messages. Needs numpy only.
"""

from __future__ import annotations

from typing import Any

from churn.rules import INVALID, CustomerRules
from churn.schema import normalize_keys

NUMBER_TYPES = frozenset({int, float})  # JSON numbers, as orjson gives them


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
