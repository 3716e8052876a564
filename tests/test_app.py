"""Every route but /predict's scoring, through Flask's test client: HTTP errors, the other
routes, security headers on every kind of response, the API key and observability."""

from __future__ import annotations

import json
import os
import re

import pytest

from churn.app import request_id_for
from churn.features import FEATURE_FIELDS
from tests.conftest import COMMITTED_MODEL, assert_json_error, make_app
from tests.liveserver import samples

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


@pytest.mark.parametrize(
    "content_type",
    ["application/json; charset=utf-8", "Application/JSON", "application/problem+json"],
)
def test_any_json_media_type_is_accepted(client, customer, content_type):
    """Parameters, any case, and the structured +json suffix (RFC 6839) all mean JSON."""
    response = client.post("/predict", data=json.dumps(customer), content_type=content_type)
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


# Written out here, not imported: the test states what a browser must receive.
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'",
}


def assert_security_headers(response) -> None:
    assert {name: response.headers.get(name) for name in SECURITY_HEADERS} == SECURITY_HEADERS


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/predict", "customer", 200),
        ("GET", "/health", None, 200),
        ("GET", "/", None, 200),
        ("GET", "/docs", None, 200),
        ("GET", "/static/app.js", None, 200),
        ("POST", "/predict", {}, 422),
        ("POST", "/predict", "not json", 400),
        ("GET", "/predict", None, 405),
        ("POST", "/health", None, 405),
        ("GET", "/nope", None, 404),
    ],
)
def test_security_headers_on_every_kind_of_response(client, customer, method, path, body, status):
    data = json.dumps(customer if body == "customer" else body) if body != "not json" else "{"
    response = client.open(path, method=method, data=data, content_type="application/json")
    assert response.status_code == status
    assert_security_headers(response)


@pytest.mark.parametrize(("path", "method"), [("/predict", "results"), ("/model", "describe")])
def test_security_headers_on_a_500(app, customer, monkeypatch, path, method):
    def broken(*_args, **_kwargs):
        raise RuntimeError("broken")

    monkeypatch.setattr(type(app.extensions["churn.predictor"]), method, broken)
    http_method = "POST" if path == "/predict" else "GET"
    response = app.test_client().open(path, method=http_method, json=customer)
    assert response.status_code == 500
    assert_security_headers(response)


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
        found = samples(text, "churn_predictions_total")
        return sum(sample.value for sample in found if sample.labels["decision"] == decision)

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


def test_new_request_ids_are_unique_and_never_shared_with_a_forked_worker():
    ids = [request_id_for({}) for _ in range(1000)]  # several draws of the id pool
    assert len(set(ids)) == 1000 and all(re.fullmatch("[0-9a-f]{32}", i) for i in ids)
    read, write = os.pipe()
    child = os.fork()  # as gunicorn forks its workers from the preloaded master
    if child == 0:
        os.write(write, " ".join(request_id_for({}) for _ in range(5)).encode())
        os._exit(0)
    os.waitpid(child, 0)
    childs = os.read(read, 4096).decode().split()
    os.close(read), os.close(write)
    assert len(childs) == 5 and not set(childs) & {request_id_for({}) for _ in range(5)}


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

    monkeypatch.setattr(type(app.extensions["churn.predictor"]), "results", broken)
    response = app.test_client().post("/predict", json=customer)
    body = assert_json_error(response, 500, "internal_error")
    assert "secret" not in response.get_data(as_text=True) and "Traceback" not in body["message"]
    assert "secret internals" in caplog.text  # the details go to the error log instead
