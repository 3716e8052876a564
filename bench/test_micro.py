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
CUSTOMER = PREDICTOR.validator.one(EXAMPLE_CUSTOMER)
BODY = orjson.dumps(EXAMPLE_CUSTOMER)

with open(MODEL, "rb") as handle:
    DV, SKLEARN_MODEL = pickle.load(handle)


def test_sklearn_per_customer(benchmark):
    probability = benchmark(lambda: SKLEARN_MODEL.predict_proba(DV.transform([EXAMPLE_CUSTOMER])))
    assert 0 < probability[0, 1] < 1


def test_compiled_scorer_per_customer(benchmark):
    probability = benchmark(PREDICTOR.scorer.probabilities, [CUSTOMER])
    assert 0 < probability[0] < 1


@pytest.mark.parametrize("size", [1_000, 100_000])
def test_compiled_scorer_batch(benchmark, size):
    batch = [CUSTOMER] * size
    probabilities = benchmark(PREDICTOR.scorer.probabilities, batch)
    assert len(probabilities) == size


def test_parse_and_validate_one_request(benchmark):
    customer = benchmark(lambda: PREDICTOR.validator.one(orjson.loads(BODY)))
    assert customer["tenure"] == 24


def test_parse_validate_and_score_a_1000_batch(benchmark):
    body = orjson.dumps([EXAMPLE_CUSTOMER] * 1000)
    results = benchmark(lambda: PREDICTOR.predict(PREDICTOR.validator.many(orjson.loads(body))))
    assert len(results) == 1000
