"""Property-based attacks on the validation layer and the service: never a 500, never nonsense.

Whatever a client sends, the answer is a 4xx JSON error or a prediction that equals
scikit-learn's for the validated customer.
"""

from __future__ import annotations

import json
import math
import pickle

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from churn.features import EXAMPLE_CUSTOMER, FEATURE_FIELDS
from tests.conftest import COMMITTED_MODEL, make_app

APP = make_app(max_batch_size=50)
CLIENT = APP.test_client()
VALIDATOR = APP.extensions["churn.predictor"].validator
with open(COMMITTED_MODEL, "rb") as handle:
    DV, MODEL = pickle.load(handle)

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=300)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=20), children, max_size=5)
    ),
    max_leaves=30,
)
weird_values = (
    json_scalars
    | st.sampled_from(["", " ", "NaN", "inf", "-0", "1e309", "０", "Yes\u0000", "🙂", "DSL " * 40])
    | st.lists(json_scalars, max_size=3)
    | st.dictionaries(st.text(max_size=5), json_scalars, max_size=3)
)


@st.composite
def mutated_customers(draw) -> dict:
    """The course's customer with some fields replaced, removed, re-cased or added."""
    customer = dict(EXAMPLE_CUSTOMER)
    for field in draw(st.lists(st.sampled_from(FEATURE_FIELDS), max_size=5, unique=True)):
        action = draw(st.sampled_from(["replace", "delete", "upper"]))
        if action == "replace":
            customer[field] = draw(weird_values)
        elif action == "delete":
            del customer[field]
        elif isinstance(customer[field], str):
            customer[field] = customer[field].upper()
    customer.update(draw(st.dictionaries(st.text(max_size=15), json_scalars, max_size=3)))
    return customer


def assert_sound(response, payload) -> None:
    """A 4xx JSON error, or probabilities equal to sklearn's for what was validated."""
    assert response.status_code != 500
    assert response.mimetype == "application/json"
    body = response.get_json()
    if response.status_code >= 400:
        assert 400 <= response.status_code < 500 and body["error"] and body["message"]
        return
    members = payload if isinstance(payload, list) else [payload]
    results = body if isinstance(body, list) else [body]
    assert len(results) == len(members)
    for member, result in zip(members, results, strict=True):
        checked = VALIDATOR.check_json([member])  # accepted by the service, so valid here too
        assert not checked.problems
        features = checked.customer(0, VALIDATOR.vocabularies)
        expected = MODEL.predict_proba(DV.transform([features]))[0, 1]
        assert math.isclose(result["churn_probability"], expected, abs_tol=1e-12)
        assert result["churn"] == (result["churn_probability"] >= 0.5)


@FUZZ
@given(json_values)
def test_any_json_value_gets_a_sound_answer(payload):
    response = CLIENT.post("/predict", data=json.dumps(payload), content_type="application/json")
    assert_sound(response, payload)


@FUZZ
@given(mutated_customers())
def test_mutated_customers_get_a_sound_answer(customer):
    response = CLIENT.post("/predict", data=json.dumps(customer), content_type="application/json")
    assert_sound(response, customer)


@FUZZ
@given(st.lists(mutated_customers() | json_values, min_size=0, max_size=8))
def test_batches_with_bad_members_get_a_sound_answer(batch):
    response = CLIENT.post("/predict", data=json.dumps(batch), content_type="application/json")
    assert_sound(response, batch)
    if response.status_code == 422 and batch:
        for problem in response.get_json()["problems"]:
            assert problem.get("index") is None or 0 <= problem["index"] < len(batch)


@FUZZ
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_crash(body):
    response = CLIENT.post("/predict?explain=true", data=body, content_type="application/json")
    assert response.status_code < 500 and response.mimetype == "application/json"


@FUZZ
@given(st.integers(1, 200_000), st.sampled_from("[{"))
def test_deep_nesting_of_any_depth(depth, bracket):
    response = CLIENT.post("/predict", data=bracket * depth, content_type="application/json")
    assert response.status_code == 400


@FUZZ
@given(mutated_customers())
def test_the_validator_either_accepts_cleanly_or_names_fields(customer):
    checked = VALIDATOR.check_json([customer])
    if checked.problems:
        assert all(p.field and p.message for p in checked.problems)
        return
    assert np.isfinite(checked.numbers).all()
