"""Every route of the service through Flask's test client: results, errors and limits."""

from __future__ import annotations

import json
import math
import pickle

import pytest

from churn.features import FEATURE_FIELDS
from tests.conftest import COMMITTED_MODEL, make_app

with open(COMMITTED_MODEL, "rb") as _handle:
    DV, MODEL = pickle.load(_handle)


def sklearn_probability(customer: dict) -> float:
    return float(MODEL.predict_proba(DV.transform([customer]))[0, 1])


def assert_json_error(response, status: int, error: str | None = None) -> dict:
    assert response.status_code == status
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert isinstance(body["message"], str) and body["message"]
    if error:
        assert body["error"] == error
    return body


# --- predictions ---------------------------------------------------------------------------


def test_the_course_customer_gets_the_course_response(client, customer):
    response = client.post("/predict", json=customer)
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"churn_probability", "churn"}
    assert body["churn_probability"] == pytest.approx(sklearn_probability(customer), abs=1e-12)
    assert body["churn"] == (body["churn_probability"] >= 0.5)


def test_raw_csv_form_gives_the_same_probability(client, customer, raw_customer):
    normalized = client.post("/predict", json=customer).get_json()
    raw = client.post("/predict", json=raw_customer).get_json()
    assert raw["churn_probability"] == pytest.approx(normalized["churn_probability"], abs=1e-12)
    assert raw["customer_id"] == "7590-VHVEG"


def test_mixed_case_and_numeric_strings_are_accepted(client, customer):
    shouted = {
        key.upper(): (v.upper() if isinstance(v, str) else str(v)) for key, v in customer.items()
    }
    body = client.post("/predict", json=shouted).get_json()
    assert body["churn_probability"] == pytest.approx(sklearn_probability(customer), abs=1e-12)


def test_blank_totalcharges_means_zero(client, customer):
    blank = client.post("/predict", json={**customer, "totalcharges": " "}).get_json()
    zero = sklearn_probability({**customer, "totalcharges": 0.0})
    assert blank["churn_probability"] == pytest.approx(zero, abs=1e-12)


def test_seniorcitizen_accepts_yes_no(client, customer):
    yes = client.post("/predict", json={**customer, "seniorcitizen": "Yes"}).get_json()
    assert yes["churn_probability"] == pytest.approx(
        sklearn_probability({**customer, "seniorcitizen": 1}), abs=1e-12
    )


def test_unknown_extra_fields_are_ignored(client, customer):
    body = client.post("/predict", json={**customer, "favourite_colour": "blue"}).get_json()
    assert body["churn_probability"] == pytest.approx(sklearn_probability(customer), abs=1e-12)


@pytest.mark.parametrize("key", ["customerID", "customer_id"])
def test_customer_id_is_echoed(client, customer, key):
    body = client.post("/predict", json={**customer, key: "abc-1"}).get_json()
    assert body["customer_id"] == "abc-1"


def test_a_batch_answers_in_order(client, customer):
    batch = [{**customer, "tenure": tenure, "customer_id": str(tenure)} for tenure in (1, 30, 70)]
    body = client.post("/predict", json=batch).get_json()
    assert [item["customer_id"] for item in body] == ["1", "30", "70"]
    for item, member in zip(body, batch, strict=True):
        assert item["churn_probability"] == pytest.approx(sklearn_probability(member), abs=1e-12)


def test_a_batch_with_bad_members_lists_every_problem_with_its_index(client, customer):
    batch = [customer, {**customer, "tenure": -1}, "not a customer", {**customer, "contract": "x"}]
    body = assert_json_error(client.post("/predict", json=batch), 422, "validation_error")
    found = {(p["index"], p["field"]) for p in body["problems"]}
    assert found == {(1, "tenure"), (2, "(customer)"), (3, "contract")}


def test_batch_size_limit(customer):
    client = make_app(max_batch_size=3).test_client()
    assert client.post("/predict", json=[customer] * 3).status_code == 200
    body = assert_json_error(client.post("/predict", json=[customer] * 4), 422)
    assert "3" in body["message"]
    assert_json_error(client.post("/predict", json=[]), 422)


def test_threshold_setting_overrides_the_metadata(customer):
    probability = sklearn_probability(customer)
    low = make_app(threshold=probability - 0.01).test_client()
    high = make_app(threshold=probability + 0.01).test_client()
    assert low.post("/predict", json=customer).get_json()["churn"] is True
    assert high.post("/predict", json=customer).get_json()["churn"] is False


def test_explanation_adds_up_to_the_logit(client, customer):
    body = client.post("/predict?explain=true", json=customer).get_json()
    explanation = body["explanation"]
    total = explanation["intercept"] + math.fsum(
        part["contribution"] for part in explanation["contributions"]
    )
    probability = body["churn_probability"]
    assert total == pytest.approx(math.log(probability / (1 - probability)), abs=1e-9)
    sizes = [abs(part["contribution"]) for part in explanation["contributions"]]
    assert sizes == sorted(sizes, reverse=True)
    assert {"tenure", "contract=month-to-month"} <= {
        p["feature"] for p in explanation["contributions"]
    }


def test_explain_flag_must_be_boolean(client, customer):
    assert_json_error(
        client.post("/predict?explain=maybe", json=customer), 400, "invalid_parameter"
    )


# --- validation ----------------------------------------------------------------------------


def test_an_empty_object_lists_every_required_field(client):
    body = assert_json_error(client.post("/predict", json={}), 422, "validation_error")
    assert {p["field"] for p in body["problems"]} == set(FEATURE_FIELDS)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("tenure", 1e20),
        ("tenure", -1),
        ("tenure", 2.5),
        ("tenure", True),
        ("tenure", "soon"),
        ("monthlycharges", "NaN"),
        ("monthlycharges", "Infinity"),
        ("totalcharges", -5),
        ("totalcharges", [1]),
        ("seniorcitizen", 2),
        ("seniorcitizen", "maybe"),
        ("contract", "weekly"),
        ("contract", 3),
        ("contract", None),
        ("gender", "x" * 1000),
        ("customer_id", "y" * 1000),
        ("customer_id", False),
        ("customer_id", 1.5),
    ],
)
def test_a_bad_value_gets_422_naming_the_field(client, customer, field, value):
    body = assert_json_error(client.post("/predict", json={**customer, field: value}), 422)
    assert [p["field"] for p in body["problems"]] == [field]


def test_every_problem_is_reported_not_just_the_first(client, customer):
    bad = {**customer, "tenure": -1, "gender": "robot", "monthlycharges": "lots"}
    del bad["contract"]
    body = assert_json_error(client.post("/predict", json=bad), 422)
    assert {p["field"] for p in body["problems"]} == {
        "tenure",
        "gender",
        "monthlycharges",
        "contract",
    }


def test_categorical_error_names_the_allowed_values(client, customer):
    body = assert_json_error(client.post("/predict", json={**customer, "contract": "weekly"}), 422)
    assert "month-to-month" in body["problems"][0]["message"]


@pytest.mark.parametrize("payload", ["5", '"text"', "null", "true", "[[1]]"])
def test_json_that_is_not_a_customer_gets_422(client, payload):
    response = client.post("/predict", data=payload, content_type="application/json")
    assert_json_error(response, 422, "validation_error")


# --- HTTP errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [b"{", b"{'a': 1}", b"NaN", b"\xff\xfe\xfd", b"[" * 100_000, b"{" * 100_000, b""],
)
def test_malformed_json_gets_400(client, body):
    response = client.post("/predict", data=body, content_type="application/json")
    assert_json_error(response, 400, "invalid_json")


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_wrong_content_type_gets_415(client, customer, content_type):
    response = client.post("/predict", data=json.dumps(customer), content_type=content_type)
    assert_json_error(response, 415, "unsupported_media_type")


def test_json_with_charset_is_accepted(client, customer):
    response = client.post(
        "/predict", data=json.dumps(customer), content_type="application/json; charset=utf-8"
    )
    assert response.status_code == 200


def test_body_over_the_limit_gets_413_before_it_is_read(customer):
    client = make_app(max_body_bytes=2048).test_client()
    big = json.dumps([customer] * 50)
    assert_json_error(client.post("/predict", data=big, content_type="application/json"), 413)


def test_wrong_method_gets_405_with_allow(client):
    response = client.get("/predict")
    assert_json_error(response, 405, "method_not_allowed")
    assert "POST" in response.headers["Allow"]


def test_unknown_path_gets_404_json(client):
    assert_json_error(client.get("/nope"), 404, "not_found")


# --- other routes --------------------------------------------------------------------------


def test_health_is_cheap_and_names_the_model(client, app):
    body = client.get("/health").get_json()
    assert body["status"] == "ok"
    assert body["model_version"] == app.extensions["churn.predictor"].version


def test_model_endpoint_shows_version_metrics_threshold_and_schema(client):
    metadata = json.loads(COMMITTED_MODEL.with_suffix(".json").read_text())
    body = client.get("/model").get_json()
    assert body["version"] == metadata["artifact_sha256"]
    assert body["trained_at"] == metadata["created_at"]
    assert body["metrics"] == metadata["metrics"]
    assert body["threshold"] == 0.5
    assert body["schema"] == metadata["schema"]


def test_openapi_spec_uses_the_live_vocabulary(client):
    spec = client.get("/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    assert {"/predict", "/health", "/model"} <= set(spec["paths"])
    customer_schema = spec["components"]["schemas"]["Customer"]
    metadata = json.loads(COMMITTED_MODEL.with_suffix(".json").read_text())
    contract = customer_schema["properties"]["contract"]
    assert sorted(contract["enum"]) == metadata["schema"]["categorical"]["contract"]
    assert set(customer_schema["required"]) == set(FEATURE_FIELDS)
    assert (
        customer_schema["properties"]["tenure"]["maximum"]
        == metadata["schema"]["numeric"]["tenure"]["max"]
    )


def test_security_headers_are_set(client):
    headers = client.get("/health").headers
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"


# --- API key -------------------------------------------------------------------------------


@pytest.fixture()
def keyed_client():
    return make_app(api_key="s3cret").test_client()


def test_api_key_guards_predict_and_model_but_not_health(keyed_client, customer):
    assert_json_error(keyed_client.post("/predict", json=customer), 401, "unauthorized")
    assert_json_error(keyed_client.get("/model"), 401, "unauthorized")
    assert keyed_client.get("/health").status_code == 200


@pytest.mark.parametrize(
    ("method", "path"), [("POST", "/predict"), ("GET", "/model"), ("GET", "/metrics")]
)
def test_a_401_names_the_bearer_scheme(keyed_client, customer, method, path):
    response = keyed_client.open(path, method=method, json=customer if method == "POST" else None)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer ")


@pytest.mark.parametrize("headers", [{"Authorization": "Bearer s3cret"}, {"X-API-Key": "s3cret"}])
def test_either_header_carries_the_key(keyed_client, customer, headers):
    assert keyed_client.post("/predict", json=customer, headers=headers).status_code == 200


@pytest.mark.parametrize("headers", [{"Authorization": "Bearer wrong"}, {"X-API-Key": ""}])
def test_a_wrong_key_is_refused(keyed_client, customer, headers):
    assert_json_error(keyed_client.post("/predict", json=customer, headers=headers), 401)


# --- observability -------------------------------------------------------------------------


def test_metrics_count_predictions_by_decision(client, customer):
    def count(decision: str) -> float:
        text = client.get("/metrics").get_data(as_text=True)
        prefix = f'churn_predictions_total{{decision="{decision}"}} '
        return sum(
            float(line[len(prefix) :]) for line in text.splitlines() if line.startswith(prefix)
        )

    before = count("no_churn")
    client.post("/predict", json=[customer, customer])
    assert count("no_churn") - before == 2  # the course's customer is below 0.5


def test_metrics_need_the_key_when_one_is_set(keyed_client):
    assert_json_error(keyed_client.get("/metrics"), 401)
    response = keyed_client.get("/metrics", headers={"X-API-Key": "s3cret"})
    assert response.status_code == 200 and "churn_http_requests_total" in response.get_data(
        as_text=True
    )


def test_request_id_is_generated_or_kept(client):
    generated = client.get("/health").headers["X-Request-ID"]
    assert len(generated) == 32
    assert (
        client.get("/health", headers={"X-Request-ID": "abc-1"}).headers["X-Request-ID"] == "abc-1"
    )
    unsafe = client.get("/health", headers={"X-Request-ID": "bad id\\n"}).headers["X-Request-ID"]
    assert unsafe != "bad id\\n" and len(unsafe) == 32


def test_server_timing_header_on_predict(client, customer):
    timing = client.post("/predict", json=customer).headers["Server-Timing"]
    assert timing.startswith("app;dur=") and float(timing.split("=")[1]) >= 0


def test_unknown_http_methods_share_one_metric_label(client):
    assert client.open("/predict", method="BREW").status_code == 405
    text = client.get("/metrics").get_data(as_text=True)
    assert 'method="other"' in text and 'method="BREW"' not in text


def test_an_internal_error_is_json_without_a_stack_trace(app, customer, monkeypatch, caplog):
    def broken(*_args, **_kwargs):
        raise RuntimeError("secret internals at /srv/app.py line 42")

    monkeypatch.setattr(type(app.extensions["churn.predictor"]), "predict", broken)
    response = app.test_client().post("/predict", json=customer)
    body = assert_json_error(response, 500, "internal_error")
    assert "secret" not in response.get_data(as_text=True) and "Traceback" not in body["message"]
    assert "secret internals" in caplog.text  # the details go to the error log instead


def test_a_falsy_customer_id_is_still_echoed(client, customer):
    body = client.post("/predict", json={**customer, "customerID": 0}).get_json()
    assert body["customer_id"] == "0"
    both = client.post("/predict", json={**customer, "customerID": "a", "customer_id": "b"})
    assert both.get_json()["customer_id"] == "a"
