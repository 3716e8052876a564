"""/predict's fast paths, for batches (churn/fastbatch.py) and single customers
(churn/fastpath.py), against the pydantic validator, the scorer and the drift monitor.

A fast path may decline (the request then goes through the validator); when it answers, the
answer must be exactly the validator's (and scorer's), and it must never accept what the
validator refuses.
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from churn.fastpath import SingleCustomerPath
from churn.features import EXAMPLE_CUSTOMER, FEATURE_FIELDS
from churn.monitor import BINS
from churn.schema import RequestValidationError
from churn.scorer import VECTORIZE_FROM
from tests.conftest import make_app
from tests.synthetic import RAW_COLUMNS

APP = make_app()
PREDICTOR = APP.extensions["churn.predictor"]
DRIFT = APP.extensions["churn.drift"]
SINGLE = SingleCustomerPath(PREDICTOR.rules, PREDICTOR.scorer, DRIFT)
SCHEMA = PREDICTOR.metadata["schema"]
RAW_KEYS = {column.lower(): column for column in RAW_COLUMNS}
CHECKS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def spellings(value: str) -> st.SearchStrategy[str]:
    """The course's spelling and the ways a CSV export or a person writes the same value."""
    raw = value.replace("_", " ")
    return st.sampled_from([value, value.upper(), raw.title(), raw.capitalize(), f" {value} "])


def number_forms(value: float, integer: bool, text: bool) -> st.SearchStrategy:
    forms = [value, float(value)] + ([str(value), f" {value}"] if text else [])
    return st.sampled_from([int(value), *forms] if integer else forms)


@st.composite
def valid_customers(draw, numbers_as_text: bool = True) -> dict:
    customer: dict = {}
    for field, values in SCHEMA["categorical"].items():
        customer[field] = draw(st.sampled_from(values).flatmap(spellings))
    customer["seniorcitizen"] = draw(st.sampled_from([0, 1, "0", "1", "Yes", "no", True, 1.0]))
    for field, limits in SCHEMA["numeric"].items():
        if limits["integer"]:
            value = draw(st.integers(0, 72))
        else:
            value = draw(st.floats(0, 9000, allow_nan=False).map(lambda x: round(x, 2)))
        customer[field] = draw(number_forms(value, limits["integer"], numbers_as_text))
    if numbers_as_text and draw(st.booleans()):
        customer["totalcharges"] = draw(st.sampled_from(["", " "]))  # blank: a new customer
    id_key = draw(st.sampled_from([None, "customerID", "customer_id", "customerid"]))
    if id_key:
        customer[id_key] = draw(st.text(max_size=10) | st.integers(0, 10**6))
    if draw(st.booleans()):  # the raw export's column names
        customer = {RAW_KEYS.get(key, key): value for key, value in customer.items()}
    return customer


weird = (
    st.sampled_from([None, True, False, "", " ", "NaN", "inf", "-0", "1e3", "1_000", "０", [], {}])
    | st.sampled_from([-1, -0.5, 0.5, 1.5, 1201, 1e7 + 1, 2**70, 1e300])
    | st.text(max_size=5)
)


@st.composite
def batches_with_one_defect(draw) -> list:
    """A valid batch, numbers as JSON numbers or text, with one field of one customer spoiled."""
    batch = draw(batches(valid_customers(numbers_as_text=draw(st.booleans()))))
    spoil_one_field(draw, draw(st.sampled_from(batch)))
    return batch


@st.composite
def customers_with_one_defect(draw) -> dict:
    customer = draw(valid_customers(numbers_as_text=draw(st.booleans())))
    spoil_one_field(draw, customer)
    return customer


def spoil_one_field(draw: st.DrawFn, customer: dict) -> None:
    """Spoil, drop or shadow (a second spelling of the key) one field of ``customer``."""
    field = draw(st.sampled_from(FEATURE_FIELDS) | st.sampled_from(list(SCHEMA["numeric"])))
    key = next((k for k in customer if k.lower() == field), field)
    action = draw(st.sampled_from(["spoil", "spoil", "drop", "shadow"]))
    if action == "spoil":
        customer[key] = draw(weird)
    elif action == "drop":
        customer.pop(key, None)
    else:  # a second spelling of a known key, which wins in the validator
        customer[draw(st.sampled_from(["Contract", "TENURE", "customerID"]))] = draw(weird)


def batches(customers: st.SearchStrategy[dict]) -> st.SearchStrategy[list]:
    """Batches long enough for the fast path: a few customers, repeated (generating is slow)."""
    return st.lists(customers, min_size=1, max_size=5).map(
        lambda distinct: [copy.deepcopy(c) for c in (distinct * VECTORIZE_FROM)[:VECTORIZE_FROM]]
    )


def validator_answer(batch: list) -> list | None:
    try:
        return PREDICTOR.predict(PREDICTOR.validator.many(batch))
    except RequestValidationError:
        return None


@CHECKS
@given(batches(valid_customers()))
def test_valid_batches_in_any_spelling_take_the_fast_path_with_the_same_answers(batch):
    fast = PREDICTOR.fast_batch.answer(copy.deepcopy(batch))
    assert fast is not None
    assert json.dumps(fast) == json.dumps(validator_answer(batch))


@CHECKS
@given(batches_with_one_defect())
def test_the_fast_path_accepts_only_what_the_validator_accepts(batch):
    fast = PREDICTOR.fast_batch.answer(copy.deepcopy(batch))
    expected = validator_answer(batch)
    if expected is None:
        assert fast is None
    elif fast is not None:
        assert json.dumps(fast) == json.dumps(expected)


def test_a_batch_with_one_bad_member_still_gets_the_validators_422(client):
    batch = [dict(EXAMPLE_CUSTOMER)] * VECTORIZE_FROM + [{**EXAMPLE_CUSTOMER, "tenure": -1}]
    assert PREDICTOR.fast_batch.answer(batch) is None
    body = client.post("/predict", json=batch).get_json()
    assert [(p["index"], p["field"]) for p in body["problems"]] == [(VECTORIZE_FROM, "tenure")]


def validator_customer(customer: Any) -> dict | None:
    try:
        return PREDICTOR.validator.one(customer)
    except RequestValidationError:
        return None


def typed(customer: dict) -> dict:
    """Values with their types: 24 and 24.0 are equal in Python but not in the JSON answer."""
    return {key: (type(value), value) for key, value in customer.items()}


def drift_bins(customer: dict) -> Counter:
    """The counter of each feature's bin, as the drift monitor finds it for a column."""
    found: Counter = Counter()
    for name, feature in DRIFT.reference.items():
        (index,) = [i for i, n in enumerate(feature.counts([customer[name]])) if n]
        found[BINS.labels(name, feature.bins[index])] += 1
    return found


def assert_scored_as_the_validator_would(scored: Any, expected: dict) -> None:
    assert typed(scored.customer) == typed(expected)
    # The same float to the last bit as the scorer's: the answer's JSON is the same.
    assert scored.probability.hex() == PREDICTOR.scorer.probabilities([expected])[0].hex()
    assert Counter(scored.bins) == drift_bins(expected)


@CHECKS
@given(valid_customers())
def test_a_valid_customer_in_any_spelling_takes_the_single_customer_path_unchanged(customer):
    scored = SINGLE.score(copy.deepcopy(customer))
    expected = validator_customer(customer)
    assert scored is not None and expected is not None
    assert_scored_as_the_validator_would(scored, expected)


@CHECKS
@given(customers_with_one_defect() | weird)
def test_the_single_customer_path_accepts_only_what_the_validator_accepts(payload):
    scored = SINGLE.score(copy.deepcopy(payload))
    expected = validator_customer(payload)
    if expected is None:
        assert scored is None
    elif scored is not None:
        assert_scored_as_the_validator_would(scored, expected)


def test_without_drift_counting_the_single_customer_path_names_no_bins():
    scored = SingleCustomerPath(PREDICTOR.rules, PREDICTOR.scorer).score(dict(EXAMPLE_CUSTOMER))
    assert scored is not None and scored.bins == ()
    assert scored.probability == PREDICTOR.scorer.probabilities([scored.customer])[0]


def test_a_bad_single_customer_gets_the_validators_own_422(client):
    for bad in ({**EXAMPLE_CUSTOMER, "tenure": 1e9}, {**EXAMPLE_CUSTOMER, "contract": "weekly"}):
        assert SINGLE.score(bad) is None
        with pytest.raises(RequestValidationError) as refused:
            PREDICTOR.validator.one(bad)
        response = client.post("/predict", json=bad)
        assert response.status_code == 422
        assert response.get_json()["problems"] == refused.value.problems
