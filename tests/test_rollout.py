"""The model version in every answer, drift counting and the shadow model, in process.

tests/test_monitoring.py runs the same under gunicorn with two workers and real Prometheus.
"""

from __future__ import annotations

import json
import pickle
import shutil
from collections import Counter
from pathlib import Path

import pytest

from churn.artifact import ModelFileError
from churn.drift import FeatureReference, psi
from churn.features import FEATURE_FIELDS
from churn.training import main as train_main
from tests.conftest import COMMITTED_MODEL, make_app
from tests.liveserver import samples
from tests.synthetic import raw_frame, write_csv

METADATA = json.loads(COMMITTED_MODEL.with_suffix(".json").read_text())
VERSION = METADATA["artifact_sha256"]


def synthetic_customers(rows: int, seed: int) -> list[dict]:
    return raw_frame(rows=rows, seed=seed).drop(columns=["Churn"]).to_dict(orient="records")


# --- the version everywhere ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "status"), [("course", 200), ("batch", 200), ("bad", 422), ("bad json", 400)]
)
def test_every_predict_answer_names_the_model_and_threshold(client, customer, payload, status):
    bodies = {"course": customer, "batch": [customer, customer], "bad": {**customer, "tenure": -1}}
    if payload == "bad json":
        response = client.post("/predict", data="{", content_type="application/json")
    else:
        response = client.post("/predict", json=bodies[payload])
    assert response.status_code == status
    assert response.headers["X-Model-Version"] == f"{VERSION}; threshold=0.5"


def test_the_header_shows_the_threshold_in_force(customer):
    client = make_app(threshold=0.3).test_client()
    header = client.post("/predict", json=customer).headers["X-Model-Version"]
    assert header == f"{VERSION}; threshold=0.3"


def test_the_body_stays_the_course_shape(client, customer):
    assert set(client.post("/predict", json=customer).get_json()) == {"churn_probability", "churn"}


def test_metrics_name_the_live_model(client):
    text = client.get("/metrics").get_data(as_text=True)
    assert f'churn_model_info{{role="live",threshold="0.5",version="{VERSION}"}} 1.0' in text
    assert 'role="shadow"' not in text


# --- drift counting --------------------------------------------------------------------------


def validated_customers(client, customers: list[dict]) -> list[dict]:
    """The customers in the course's form, as the service's validator reads them."""
    validator = client.application.extensions["churn.predictor"].validator
    checked = validator.check_json(customers)
    assert not checked.problems
    return [checked.customer(row, validator.vocabularies) for row in range(len(customers))]


def bin_of(feature: FeatureReference, value) -> str:
    """The bin a value belongs in, read from the bins' definition: below the training minimum,
    inner bin i holding low <= x < cuts[i] (the last up to high), above the maximum."""
    if feature.numeric is None:
        return str(int(value)) if isinstance(value, float) else value
    bins = feature.numeric
    if value < bins.low:
        return feature.bins[0]
    if value > bins.high:
        return feature.bins[-1]
    return feature.bins[1 + sum(1 for cut in bins.cuts if cut <= value)]


def drift_bins(client) -> dict[str, dict[str, int]]:
    body = client.get("/drift").get_json()
    return {name: view["bins"] for name, view in body["features"].items()}


def test_the_service_counts_each_customer_in_the_models_bins(client):
    """Single customers and a batch (two counting paths) land where the report puts them."""
    customers = synthetic_customers(60, seed=11)
    validated = validated_customers(client, customers)
    before = drift_bins(client)
    for one in customers[:10]:
        assert client.post("/predict", json=one).status_code == 200
    assert client.post("/predict", json=customers[10:]).status_code == 200
    after = drift_bins(client)
    for name, entry in METADATA["drift_reference"]["features"].items():
        feature = FeatureReference.from_json(entry)
        landed = Counter(bin_of(feature, c[name]) for c in validated)
        expected = [landed[b] for b in feature.bins]
        counted = [after[name][b] - before[name][b] for b in feature.bins]
        assert counted == expected, name


def test_drift_shows_psi_only_from_the_minimum_rows(client, customer):
    body = client.get("/drift").get_json()
    assert body["min_rows"] == 500 and body["empty_share"] == 1e-4
    assert body["model_version"] == VERSION
    assert set(body["features"]) == set(FEATURE_FIELDS)
    rows = body["features"]["tenure"]["rows"]  # the counters are per process, shared by tests
    if rows < 500:
        assert body["features"]["tenure"]["psi"] is None
    client.post("/predict", json=[customer] * max(500 - rows, 1))
    tenure = client.get("/drift").get_json()["features"]["tenure"]
    reference = FeatureReference.from_json(METADATA["drift_reference"]["features"]["tenure"])
    counts = [tenure["bins"][b] for b in reference.bins]
    assert tenure["rows"] >= 500 and tenure["psi"] == pytest.approx(psi(counts, reference.shares))


def test_an_unseen_contract_type_is_counted_not_silent(client, customer):
    before = client.get("/drift").get_json()["features"]["contract"]
    response = client.post("/predict", json={**customer, "contract": "three_year"})
    assert response.status_code == 422
    assert response.get_json()["problems"][0]["field"] == "contract"
    after = client.get("/drift").get_json()["features"]["contract"]
    assert after["unseen_values"] == before["unseen_values"] + 1
    assert after["outside_share"] > 0
    text = client.get("/metrics").get_data(as_text=True)
    assert 'churn_validation_rejections_total{field="contract",reason="unseen_value"}' in text


def test_refusals_are_counted_by_field_and_reason(client, customer):
    """A missing field, a value never seen in training and any other broken rule each count
    under their own reason (docs/monitoring.md)."""

    def rejections() -> dict[tuple[str, str], float]:
        text = client.get("/metrics").get_data(as_text=True)
        return {
            (sample.labels["field"], sample.labels["reason"]): sample.value
            for sample in samples(text, "churn_validation_rejections_total")
        }

    without_tenure = {field: value for field, value in customer.items() if field != "tenure"}
    unseen_contract = {**customer, "contract": "three_year"}
    not_a_number = {**customer, "monthlycharges": "abc"}
    before = rejections()
    response = client.post("/predict", json=[without_tenure, unseen_contract, not_a_number])
    assert response.status_code == 422
    after = rejections()
    grown = {key: count - before.get(key, 0) for key, count in after.items()}
    assert {key: n for key, n in grown.items() if n} == {
        ("tenure", "missing"): 1,
        ("contract", "unseen_value"): 1,
        ("monthlycharges", "invalid"): 1,
    }


def test_drift_needs_the_key_when_one_is_set(customer):
    keyed = make_app(api_key="s3cret").test_client()
    assert keyed.get("/drift").status_code == 401
    assert keyed.get("/drift", headers={"X-API-Key": "s3cret"}).status_code == 200


# --- the shadow model ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def candidate(tmp_path_factory) -> Path:
    """A retrained candidate: another model, trained on synthetic customers."""
    folder = tmp_path_factory.mktemp("candidate")
    data = write_csv(folder / "customers.csv", raw_frame(rows=600, seed=5))
    output = folder / "candidate.bin"
    assert train_main(["--data", data, "--folds", "2", "--output", str(output)]) == 0
    return output


def sklearn_probabilities(model_file: Path, customers: list[dict]) -> list[float]:
    with open(model_file, "rb") as handle:
        dv, model = pickle.load(handle)
    return model.predict_proba(dv.transform(customers))[:, 1].tolist()


def shadow_counts(client) -> dict[str, float]:
    text = client.get("/metrics").get_data(as_text=True)
    wanted = ("churn_shadow_decisions_total{", "churn_shadow_errors_total ", "churn_shadow_prob")
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(wanted)
    }


def test_the_answer_is_the_live_models_byte_for_byte(candidate, customer):
    plain = make_app().test_client()
    shadowed = make_app(shadow_model_file=candidate).test_client()
    requests = [customer, *synthetic_customers(20, seed=2)]
    for payload, query in [(one, "") for one in requests] + [
        (requests, ""),
        (requests, "?explain=true"),
    ]:
        expected = plain.post("/predict" + query, json=payload)
        answered = shadowed.post("/predict" + query, json=payload)
        assert answered.status_code == expected.status_code == 200
        assert answered.get_data() == expected.get_data()
        assert answered.headers["X-Model-Version"] == expected.headers["X-Model-Version"]


@pytest.mark.parametrize("batched", [True, False], ids=["batch", "single customers"])
def test_agreement_and_differences_are_counted_at_each_models_threshold(candidate, batched):
    client = make_app(shadow_model_file=candidate).test_client()
    customers = synthetic_customers(300 if batched else 60, seed=9)
    validated = validated_customers(client, customers)
    live = sklearn_probabilities(COMMITTED_MODEL, validated)
    shadow = sklearn_probabilities(candidate, validated)
    shadow_threshold = json.loads(candidate.with_suffix(".json").read_text())["threshold"]
    before = shadow_counts(client)
    for request in [customers] if batched else customers:
        assert client.post("/predict", json=request).status_code == 200
    after = shadow_counts(client)
    grown = {key: after[key] - before.get(key, 0.0) for key in after}
    for live_word, live_says in (("churn", True), ("no_churn", False)):
        for shadow_word, shadow_says in (("churn", True), ("no_churn", False)):
            expected = sum(
                1
                for p, q in zip(live, shadow, strict=True)
                if (p >= 0.5) == live_says and (q >= shadow_threshold) == shadow_says
            )
            key = f'churn_shadow_decisions_total{{live="{live_word}",shadow="{shadow_word}"}}'
            assert grown[key] == expected, key
    differences = [abs(p - q) for p, q in zip(live, shadow, strict=True)]
    assert grown["churn_shadow_probability_difference_count"] == len(customers)
    assert grown["churn_shadow_probability_difference_sum"] == pytest.approx(sum(differences))
    small = sum(1 for d in differences if d <= 0.05)
    assert grown['churn_shadow_probability_difference_bucket{le="0.05"}'] == small
    assert grown["churn_shadow_errors_total"] == 0


def test_a_shadow_that_always_fails_leaves_every_answer_intact(candidate, customer):
    """Fault injection: the shadow raises on every request; no request fails."""
    plain = make_app().test_client()
    app = make_app(shadow_model_file=candidate)
    shadow = app.extensions["churn.shadow"]

    class Exploding:
        def probabilities(self, checked):
            raise RuntimeError("shadow model on fire")

    shadow.scorer = Exploding()
    client = app.test_client()
    before = shadow_counts(client)["churn_shadow_errors_total"]
    payloads = [customer, [customer] * 20] * 25
    for payload in payloads:
        answered = client.post("/predict", json=payload)
        assert answered.status_code == 200
        assert answered.get_data() == plain.post("/predict", json=payload).get_data()
    assert shadow_counts(client)["churn_shadow_errors_total"] - before == len(payloads)


@pytest.mark.parametrize("size", [1, 20], ids=["single customers", "batches of 20"])
def test_shadow_sample_sets_the_share_of_requests_compared(candidate, customer, size):
    """Requests are sampled whole: a batch's customers are all compared or none."""
    payload = customer if size == 1 else [customer] * size

    def compared(sample: float, requests: int) -> float:
        client = make_app(shadow_model_file=candidate, shadow_sample=sample).test_client()
        key = "churn_shadow_probability_difference_count"
        before = shadow_counts(client)[key]
        for _ in range(requests):
            client.post("/predict", json=payload)
        customers = shadow_counts(client)[key] - before
        assert customers % size == 0
        return customers / size

    assert compared(0.0, 50) == 0
    assert 60 <= compared(0.5, 200) <= 140  # binomial(200, 0.5): outside this 1 in 10^4


def test_the_model_route_and_metrics_list_both_models(candidate):
    client = make_app(shadow_model_file=candidate, shadow_sample=0.25).test_client()
    body = client.get("/model").get_json()
    candidate_version = json.loads(candidate.with_suffix(".json").read_text())["artifact_sha256"]
    assert body["version"] == VERSION and body["role"] == "live"
    assert body["shadow"]["version"] == candidate_version and body["shadow"]["sample"] == 0.25
    text = client.get("/metrics").get_data(as_text=True)
    assert (
        f'churn_model_info{{role="shadow",threshold="0.5",version="{candidate_version}"}}' in text
    )
    assert make_app().test_client().get("/model").get_json()["shadow"] is None


def test_a_tampered_shadow_stops_start_up_like_a_tampered_live_model(candidate, tmp_path):
    for suffix in (".bin", ".json"):
        shutil.copy(candidate.with_suffix(suffix), tmp_path / f"shadow{suffix}")
    (tmp_path / "shadow.bin").write_bytes((tmp_path / "shadow.bin").read_bytes() + b"\0")
    with pytest.raises(ModelFileError, match=r"shadow\.bin"):
        make_app(shadow_model_file=tmp_path / "shadow.bin")
