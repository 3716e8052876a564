"""Drift counting and the shadow model on /predict's batch fast path (churn/monitor.py
``BinNumbering``, churn/shadow.py ``compare_checked``, the batches of a flush joined by
churn/watch.py), against ``FeatureReference.counts`` and scikit-learn's ``predict_proba`` of
both pickles; single customers' bins at the same edges.

tests/test_rollout.py checks the same metrics for single customers and through /drift.
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from churn import watch
from churn.checked import CheckedColumns
from churn.fastpath import SingleCustomerPath
from churn.features import CATEGORICAL_FIELDS, NUMERIC_FIELDS
from churn.monitor import BINS
from churn.training import main as train_main
from tests.conftest import COMMITTED_MODEL, make_app
from tests.synthetic import raw_frame, write_csv
from tests.test_rollout import shadow_counts, sklearn_probabilities, synthetic_customers

APP = make_app()
PREDICTOR = APP.extensions["churn.predictor"]
DRIFT = APP.extensions["churn.drift"]
SCHEMA = PREDICTOR.metadata["schema"]


def edge_values(field: str) -> list[float]:
    """Values at and beside every bin edge of a numeric feature, and outside the training
    range as far as the schema's bounds allow."""
    bins = PREDICTOR.drift_reference[field].numeric
    limits = SCHEMA["numeric"][field]
    edges = [bins.low, *bins.cuts, bins.high]
    if limits["integer"]:
        near = [v + step for v in edges for step in (-1, 0, 1)]
    else:
        near = [np.nextafter(v, d) for v in edges for d in (-np.inf, np.inf)] + edges
    near += [limits["min"], limits["max"], (bins.low + bins.high) / 2]
    return sorted({float(v) for v in near if limits["min"] <= v <= limits["max"]})


def generated_batch(rows: int) -> list[dict]:
    """Customers in the course's form with every category and every numeric edge value."""
    customers = PREDICTOR.validator.many(synthetic_customers(rows, seed=21))
    for field in CATEGORICAL_FIELDS:  # every value at least once; the rest as drawn
        for customer, value in zip(customers, SCHEMA["categorical"][field], strict=False):
            customer[field] = value
    for offset, field in enumerate(NUMERIC_FIELDS):
        values = edge_values(field)
        for index, customer in enumerate(customers):
            value = values[(index + offset) % len(values)]
            customer[field] = int(value) if SCHEMA["numeric"][field]["integer"] else value
    return customers


def checked_columns(batch: list[dict]) -> tuple[object, np.ndarray]:
    """The columns and probabilities the fast path hands to drift counting and the shadow."""
    seen: dict = {}
    answer = PREDICTOR.fast_batch.answer(copy.deepcopy(batch), lambda c, p: seen.update(c=c, p=p))
    assert answer is not None, "the batch must take the fast path"
    return seen["c"], seen["p"]


def counted_by_bin(checked) -> dict:
    """What drift counting adds for ``checked``: customers per bin counter."""
    counters, counts = DRIFT.checked_counts(checked)
    return dict(zip(counters, counts.tolist(), strict=True))


def test_the_batch_paths_drift_bins_are_the_references_counts():
    batch = generated_batch(240)
    validated = PREDICTOR.validator.many(batch)
    counted = counted_by_bin(checked_columns(batch)[0])
    outside = 0
    for name, feature in DRIFT.reference.items():
        expected = feature.counts([customer[name] for customer in validated])
        found = [counted.get(BINS.labels(name, bin_name), 0) for bin_name in feature.bins]
        assert found == expected, name
        if feature.numeric is not None:
            outside += expected[0] + expected[-1]
    assert outside > 0  # values above the training range were among them
    assert sum(counted.values()) == len(batch) * len(DRIFT.reference)


def test_batches_joined_for_the_flush_count_as_their_customers_together():
    """What churn/watch.py does once a flush: batches of different sizes, joined, count in
    the reference's bins as all their customers validated together."""
    batch = generated_batch(240)
    pieces = [batch[:97], batch[97:113], batch[113:]]
    checked = [checked_columns(piece)[0] for piece in pieces]
    joined = CheckedColumns.joined(checked)
    counted = counted_by_bin(joined)
    validated = PREDICTOR.validator.many(batch)
    for name, feature in DRIFT.reference.items():
        expected = feature.counts([customer[name] for customer in validated])
        assert [counted.get(BINS.labels(name, b), 0) for b in feature.bins] == expected, name


def drift_counts(client) -> dict[str, float]:
    text = client.get("/metrics").get_data(as_text=True)
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("churn_drift_bin_rows_total{")
    }


@pytest.mark.parametrize("join_rows", [100, watch.JOIN_ROWS])
def test_a_flushs_batches_count_in_groups_as_their_customers_together(monkeypatch, join_rows):
    """The flush joins its batches in groups of about ``JOIN_ROWS`` customers (here 97 + 16,
    then 127, when it is 100): every group is counted, each customer once."""
    monkeypatch.setattr(watch, "JOIN_ROWS", join_rows)
    client = APP.test_client()
    batch = generated_batch(240)
    before = drift_counts(client)
    for piece in (batch[:97], batch[97:113], batch[113:]):
        assert client.post("/predict", json=piece).status_code == 200
    grown = {k: v - before.get(k, 0.0) for k, v in drift_counts(client).items()}
    validated = PREDICTOR.validator.many(batch)
    for name, feature in DRIFT.reference.items():
        expected = feature.counts([customer[name] for customer in validated])
        found = [
            grown.get(f'churn_drift_bin_rows_total{{bin="{b}",feature="{name}"}}', 0)
            for b in feature.bins
        ]
        assert found == expected, name


def test_single_customers_at_the_edges_count_in_the_references_bins():
    """The single-customer path's bins (churn/fastpath.py) on the same edge values."""
    single = SingleCustomerPath(PREDICTOR.rules, PREDICTOR.scorer, DRIFT)
    for customer in generated_batch(120):
        scored = single.score(dict(customer))
        assert scored is not None
        expected = Counter()
        for name, feature in DRIFT.reference.items():
            (index,) = np.flatnonzero(feature.counts([customer[name]]))
            expected[BINS.labels(name, feature.bins[index])] += 1
        assert Counter(scored.bins) == expected, customer


@pytest.fixture(scope="module")
def candidates(tmp_path_factory) -> dict[str, Path]:
    """Two retrained candidates: one with the live vocabulary, one trained on customers
    without two-year contracts (so its vocabulary lacks a value the live model accepts)."""
    folder = tmp_path_factory.mktemp("candidates")
    frame = raw_frame(rows=600, seed=5)
    frames = {"same vocabulary": frame, "narrower vocabulary": frame[frame.Contract != "Two year"]}
    found = {}
    for name, data in frames.items():
        csv = write_csv(folder / f"{len(found)}.csv", data)
        output = folder / f"candidate{len(found)}.bin"
        assert train_main(["--data", csv, "--folds", "2", "--output", str(output)]) == 0
        found[name] = output
    narrow = json.loads(found["narrower vocabulary"].with_suffix(".json").read_text())
    assert "two_year" not in narrow["schema"]["categorical"]["contract"]
    return found


@pytest.mark.parametrize(
    ("vocabulary", "query", "join_rows"),
    [
        ("same vocabulary", "", watch.JOIN_ROWS),
        ("narrower vocabulary", "", watch.JOIN_ROWS),
        ("narrower vocabulary", "", 100),  # the flush's groups: 140, then 17 + 143
        ("narrower vocabulary", "?explain=true", watch.JOIN_ROWS),  # the validator's path
    ],
)
def test_the_batch_shadows_cells_and_differences_are_sklearns(
    monkeypatch, candidates, vocabulary, query, join_rows
):
    monkeypatch.setattr(watch, "JOIN_ROWS", join_rows)
    candidate = candidates[vocabulary]
    client = make_app(shadow_model_file=candidate).test_client()
    batch = generated_batch(300)
    checked_columns(batch)  # the fast path answers this batch (unless asked to explain)
    live = sklearn_probabilities(COMMITTED_MODEL, batch)
    shadow = sklearn_probabilities(candidate, batch)
    threshold = json.loads(candidate.with_suffix(".json").read_text())["threshold"]
    before = shadow_counts(client)
    for piece in (batch[:140], batch[140:157], batch[157:]):  # joined at the flush
        assert client.post("/predict" + query, json=piece).status_code == 200
    grown = {k: v - before.get(k, 0.0) for k, v in shadow_counts(client).items()}
    for live_word, live_says in (("churn", True), ("no_churn", False)):
        for shadow_word, shadow_says in (("churn", True), ("no_churn", False)):
            expected = sum(
                (p >= 0.5) == live_says and (q >= threshold) == shadow_says
                for p, q in zip(live, shadow, strict=True)
            )
            key = f'churn_shadow_decisions_total{{live="{live_word}",shadow="{shadow_word}"}}'
            assert grown[key] == expected, key
    differences = [abs(p - q) for p, q in zip(live, shadow, strict=True)]
    assert grown["churn_shadow_probability_difference_count"] == len(batch)
    assert grown["churn_shadow_probability_difference_sum"] == pytest.approx(sum(differences))
    for bound in ("0.001", "0.005", "0.01", "0.02", "0.05", "0.1", "0.2", "0.3", "0.5"):
        below = sum(d <= float(bound) for d in differences)
        key = f'churn_shadow_probability_difference_bucket{{le="{bound}"}}'
        assert grown[key] == below, key
    assert grown["churn_shadow_errors_total"] == 0
