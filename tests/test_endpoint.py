"""/predict's own WSGI app (churn/app.py Service): the HTTP details Flask used to handle for it.

The predictions and their errors are covered route by route in test_app.py; these tests
pin down methods, body framing, metrics and error logging, which the endpoint now does itself.
"""

from __future__ import annotations

import io
import json
import logging

import pytest
from werkzeug.test import EnvironBuilder

from tests.conftest import make_app


def call(app, environ: dict) -> tuple[str, dict[str, str], bytes]:
    """Call the app as a WSGI server would, with a hand-made environ."""
    answer: dict = {}

    def start_response(status, headers, exc_info=None):
        answer["status"], answer["headers"] = status, dict(headers)

    body = b"".join(app(environ, start_response))
    return answer["status"], answer["headers"], body


def chunked_environ(body: bytes) -> dict:
    """What gunicorn passes for a chunked upload: no CONTENT_LENGTH, input_terminated set."""
    environ = EnvironBuilder(path="/predict", method="POST", content_type="application/json")
    environ = environ.get_environ()
    environ.pop("CONTENT_LENGTH", None)
    environ["wsgi.input"] = io.BytesIO(body)
    environ["wsgi.input_terminated"] = True
    return environ


def test_options_lists_the_allowed_methods(client):
    response = client.options("/predict")
    assert response.status_code == 204 and response.data == b""
    assert set(response.headers["Allow"].replace(" ", "").split(",")) == {"OPTIONS", "POST"}


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH", "HEAD"])
def test_other_methods_get_405_json_with_allow(client, method):
    response = client.open("/predict", method=method)
    assert response.status_code == 405 and "POST" in response.headers["Allow"]
    if method != "HEAD":
        assert response.get_json()["error"] == "method_not_allowed"


def test_a_trailing_slash_is_another_path(client, customer):
    assert client.post("/predict/", json=customer).status_code == 404


@pytest.mark.parametrize(
    "declared", ["12abc", "-1", "\N{SUPERSCRIPT TWO}", "\N{ARABIC-INDIC DIGIT ONE}"]
)
def test_a_content_length_that_is_not_a_number_gets_400(client, customer, declared):
    # Headers arrive as latin-1; str.isdigit() alone would pass a superscript two, and int() fail.
    response = client.post(
        "/predict", json=customer, environ_overrides={"CONTENT_LENGTH": declared}
    )
    assert response.status_code == 400 and "Content-Length" in response.get_json()["message"]


def test_a_body_shorter_than_its_content_length_gets_400(client, customer):
    body = json.dumps(customer)
    response = client.post(
        "/predict",
        data=body,
        content_type="application/json",
        environ_overrides={"CONTENT_LENGTH": str(len(body) + 10)},
    )
    assert response.status_code == 400 and "shorter" in response.get_json()["message"]


def test_a_chunked_body_up_to_the_limit_is_read_and_one_byte_more_is_refused(customer):
    app = make_app(max_body_bytes=2048)
    payload = json.dumps(customer).encode()
    at_limit = payload + b" " * (2048 - len(payload))
    status, _, body = call(app, chunked_environ(at_limit))
    assert status.startswith("200") and json.loads(body)["churn"] in (True, False)
    status, _, body = call(app, chunked_environ(at_limit + b" "))
    assert status.startswith("413") and json.loads(body)["error"] == "request_entity_too_large"


def test_a_body_with_neither_length_nor_chunks_is_empty(client):
    environ = chunked_environ(b'{"ignored": true}')
    environ.pop("wsgi.input_terminated")
    status, _, body = call(client.application, environ)
    assert status.startswith("400") and json.loads(body)["error"] == "invalid_json"


def test_requests_to_predict_are_counted_by_status(client, customer):
    def count(status: int) -> float:
        prefix = f'churn_http_requests_total{{method="POST",route="/predict",status="{status}"}} '
        text = client.get("/metrics").get_data(as_text=True)
        return sum(
            float(line[len(prefix) :]) for line in text.splitlines() if line.startswith(prefix)
        )

    ok, invalid = count(200), count(422)
    client.post("/predict", json=customer)
    client.post("/predict", json={})
    assert (count(200) - ok, count(422) - invalid) == (1, 1)
    latency = client.get("/metrics").get_data(as_text=True)
    assert 'churn_http_request_duration_seconds_count{route="/predict"}' in latency


def test_an_unexpected_error_is_logged_with_the_request_id(app, customer, monkeypatch, caplog):
    def broken(*_args, **_kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(type(app.extensions["churn.predictor"]), "results", broken)
    with caplog.at_level(logging.ERROR):
        response = app.test_client().post(
            "/predict", json=customer, headers={"X-Request-ID": "trace-42"}
        )
    assert response.status_code == 500 and response.headers["X-Request-ID"] == "trace-42"
    (record,) = [r for r in caplog.records if r.exc_info]
    assert record.request_id == "trace-42" and "boom" in caplog.text
