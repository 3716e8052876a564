"""The compiled scorer gives sklearn's probabilities without calling sklearn."""

from __future__ import annotations

import math
import pickle

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from churn.artifact import load_metadata, load_weights
from churn.features import CATEGORICAL_FIELDS, FLAG_FIELDS, NUMERIC_FIELDS
from churn.scorer import CompiledScorer
from tests.conftest import COMMITTED_MODEL

# sklearn's own objects, the reference; the scorer is compiled from the restricted loader's view.
with open(COMMITTED_MODEL, "rb") as handle:
    DV, MODEL = pickle.load(handle)
SCHEMA = load_metadata(COMMITTED_MODEL)["schema"]
SCORER = CompiledScorer.compile(
    load_weights(COMMITTED_MODEL), FLAG_FIELDS + NUMERIC_FIELDS, CATEGORICAL_FIELDS
)


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


@settings(max_examples=500, deadline=None)
@given(customers)
def test_compiled_probability_equals_sklearn(customer):
    expected = MODEL.predict_proba(DV.transform([customer]))[0, 1]
    assert abs(SCORER.probabilities([customer])[0] - expected) <= 1e-12


@settings(max_examples=50, deadline=None)
@given(st.lists(customers, min_size=1, max_size=40))
def test_a_batch_scores_like_its_members_one_by_one(batch):
    together = SCORER.probabilities(batch)
    expected = MODEL.predict_proba(DV.transform(batch))[:, 1]
    assert np.allclose(together, expected, rtol=0, atol=1e-12)


@settings(max_examples=100, deadline=None)
@given(customers)
def test_explanation_sums_to_the_logit(customer):
    contributions = SCORER.explain(customer)
    total = SCORER.intercept + math.fsum(part["contribution"] for part in contributions)
    probability = MODEL.predict_proba(DV.transform([customer]))[0, 1]
    assert math.isclose(total, math.log(probability / (1 - probability)), abs_tol=1e-9)
    sizes = [abs(part["contribution"]) for part in contributions]
    assert sizes == sorted(sizes, reverse=True)


def test_every_model_weight_is_compiled():
    compiled = sum(len(table) for table in SCORER.category_weights.values())
    assert compiled + len(SCORER.numeric_fields) == len(DV.feature_names_)
