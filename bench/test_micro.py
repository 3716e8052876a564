"""In-process microbenchmarks (pytest-benchmark): `make bench-micro`.

Not part of the normal test run (they live outside tests/); CI runs them once each with
--benchmark-disable so they cannot rot.
"""

from __future__ import annotations

import pickle

import orjson
import pytest

from churn.config import PROJECT_ROOT
from churn.features import EXAMPLE_CUSTOMER
from churn.predictor import Predictor

MODEL = PROJECT_ROOT / "model_C=1.0.bin"
PREDICTOR = Predictor.load(MODEL)
BODY = orjson.dumps(EXAMPLE_CUSTOMER)

with open(MODEL, "rb") as handle:
    DV, SKLEARN_MODEL = pickle.load(handle)


def test_sklearn_per_customer(benchmark):
    probability = benchmark(lambda: SKLEARN_MODEL.predict_proba(DV.transform([EXAMPLE_CUSTOMER])))
    assert 0 < probability[0, 1] < 1


@pytest.mark.parametrize("size", [1, 1_000, 100_000])
def test_scorer(benchmark, size):
    checked = PREDICTOR.validator.check_json([EXAMPLE_CUSTOMER] * size)
    probabilities = benchmark(PREDICTOR.probabilities, checked)
    assert len(probabilities) == size and 0 < probabilities[0] < 1


@pytest.mark.parametrize("size", [1, 1_000])
def test_parse_validate_and_score(benchmark, size):
    body = orjson.dumps([EXAMPLE_CUSTOMER] * size)

    def answer() -> list:
        checked = PREDICTOR.validator.check_json(orjson.loads(body))
        return PREDICTOR.results(checked, PREDICTOR.probabilities(checked))

    results = benchmark(answer)
    assert len(results) == size
