"""The scorer gives sklearn's probabilities without calling sklearn."""

from __future__ import annotations

import math
import pickle

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from churn.predictor import Predictor
from tests.conftest import COMMITTED_MODEL

# sklearn's own objects, the reference; the scorer is built from the restricted loader's view.
with open(COMMITTED_MODEL, "rb") as handle:
    DV, MODEL = pickle.load(handle)
PREDICTOR = Predictor.load(COMMITTED_MODEL)
SCHEMA = PREDICTOR.metadata["schema"]


def scored(customers: list[dict]) -> np.ndarray:
    return PREDICTOR.probabilities(PREDICTOR.validator.check_json(customers))


def _customer_strategy() -> st.SearchStrategy[dict]:
    fields = {field: st.sampled_from(values) for field, values in SCHEMA["categorical"].items()}
    fields["seniorcitizen"] = st.sampled_from([0, 1])
    for field, limits in SCHEMA["numeric"].items():
        top = limits["observed_max"] * 2
        if limits["integer"]:
            fields[field] = st.integers(0, int(top))
        else:
            fields[field] = st.floats(0, top, allow_nan=False, allow_infinity=False)
    return st.fixed_dictionaries(fields)


customers = _customer_strategy()
SCHEMA_EXAMPLE = {field: values[0] for field, values in SCHEMA["categorical"].items()} | {
    "seniorcitizen": 1,
    "tenure": 1,
    "monthlycharges": 1.0,
    "totalcharges": 1.0,
}


@settings(max_examples=500, deadline=None)
@given(customers)
def test_compiled_probability_equals_sklearn(customer):
    expected = MODEL.predict_proba(DV.transform([customer]))[0, 1]
    assert abs(scored([customer])[0] - expected) <= 1e-12


@settings(max_examples=50, deadline=None)
@given(st.lists(customers, min_size=1, max_size=40))
def test_a_batch_scores_like_its_members_one_by_one(batch):
    together = scored(batch)
    expected = MODEL.predict_proba(DV.transform(batch))[:, 1]
    assert np.allclose(together, expected, rtol=0, atol=1e-12)


@settings(max_examples=100, deadline=None)
@given(customers)
def test_explanation_sums_to_the_logit(customer):
    checked = PREDICTOR.validator.check_json([customer])
    (result,) = PREDICTOR.results(checked, PREDICTOR.probabilities(checked), explain=True)
    contributions = result["explanation"]["contributions"]
    total = result["explanation"]["intercept"] + math.fsum(
        part["contribution"] for part in contributions
    )
    probability = MODEL.predict_proba(DV.transform([customer]))[0, 1]
    assert math.isclose(total, math.log(probability / (1 - probability)), abs_tol=1e-9)
    sizes = [abs(part["contribution"]) for part in contributions]
    assert sizes == sorted(sizes, reverse=True)


def test_every_model_weight_is_used():
    checked = PREDICTOR.validator.check_json([{**SCHEMA_EXAMPLE}])
    (result,) = PREDICTOR.results(checked, PREDICTOR.probabilities(checked), explain=True)
    shown = {part["feature"] for part in result["explanation"]["contributions"]}
    vocabulary = sum(len(values) for values in SCHEMA["categorical"].values())
    assert vocabulary + len(SCHEMA["numeric"]) + len(SCHEMA["flags"]) == len(DV.feature_names_)
    assert shown <= set(DV.feature_names_)
