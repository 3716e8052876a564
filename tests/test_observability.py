"""Log formatting and metric labels, in process (tests/test_e2e.py checks them under gunicorn)."""

from __future__ import annotations

import json
import logging
import sys

from churn.observability import REQUEST_ID_KEY, JsonFormatter


def record(message: str, exc_info=None) -> logging.LogRecord:
    return logging.LogRecord("churn", logging.ERROR, __file__, 1, message, None, exc_info)


def test_a_record_logged_while_serving_names_the_request(app):
    with app.test_request_context("/predict", environ_base={REQUEST_ID_KEY: "rid-7"}):
        entry = json.loads(JsonFormatter().format(record("boom")))
    assert entry == {**entry, "request_id": "rid-7", "level": "error", "message": "boom"}


def test_a_record_outside_a_request_has_no_request_id():
    entry = json.loads(JsonFormatter().format(record("start-up")))
    assert "request_id" not in entry and entry["logger"] == "churn"


def test_exceptions_are_logged_with_their_traceback():
    try:
        raise ValueError("bad thing")
    except ValueError:
        entry = json.loads(JsonFormatter().format(record("failed", sys.exc_info())))
    assert "Traceback" in entry["exception"] and "bad thing" in entry["exception"]


def test_a_record_given_a_request_id_names_it_outside_flask():
    logged = record("boom")
    logged.request_id = "rid-9"  # what logger.exception(..., extra={"request_id": ...}) sets
    assert json.loads(JsonFormatter().format(logged))["request_id"] == "rid-9"
