"""Log lines in process: JSON for machines, text for a person, each record one line written at
once (tests/test_log_writes.py checks them under gunicorn)."""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from gunicorn.config import Config

from churn.logs import (
    MODEL_VERSION_KEY,
    REQUEST_ID_KEY,
    JsonFormatter,
    JsonLogger,
    TextFormatter,
    TextLogger,
)


def record(message: str, exc_info=None) -> logging.LogRecord:
    return logging.LogRecord("churn", logging.ERROR, __file__, 1, message, None, exc_info)


def test_a_record_is_one_json_object_with_time_level_logger_and_message():
    before = datetime.now(UTC)
    entry = json.loads(JsonFormatter().format(record("boom")))
    assert (entry["level"], entry["logger"], entry["message"]) == ("ERROR", "churn", "boom")
    assert (
        before - timedelta(seconds=1) <= datetime.fromisoformat(entry["time"]) <= datetime.now(UTC)
    )


def test_exceptions_are_logged_with_their_traceback_on_the_same_line():
    try:
        raise ValueError("bad thing")
    except ValueError:
        line = JsonFormatter().format(record("failed", sys.exc_info()))
    assert "\n" not in line
    assert "Traceback" in json.loads(line)["exception"]


def test_a_records_extras_are_fields_and_what_json_cannot_hold_is_written_as_text():
    logged = record("saved")
    logged.rows, logged.path = 3, Path("/tmp/scores.parquet")  # extra={"rows": ..., "path": ...}
    entry = json.loads(JsonFormatter().format(logged))
    assert (entry["rows"], entry["path"], entry["pid"]) == (3, "/tmp/scores.parquet", os.getpid())
    assert "args" not in entry and "msg" not in entry  # the record's own attributes are not extras


@pytest.fixture(autouse=True)
def gunicorn_loggers_restored():
    """gunicorn's logger configures the process-wide "gunicorn.*" loggers; the app tests that run
    later in this process must find them as they were (else the app logs through these)."""
    loggers = [logging.getLogger(name) for name in ("gunicorn.error", "gunicorn.access", "churn")]
    saved = [(logger.handlers[:], logger.level, logger.propagate) for logger in loggers]
    yield
    for logger, (handlers, level, propagate) in zip(loggers, saved, strict=True):
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate


ENVIRON = {
    "REQUEST_METHOD": "POST",
    "PATH_INFO": "/predict",
    "QUERY_STRING": "",
    "REMOTE_ADDR": "10.0.0.7",
    "HTTP_USER_AGENT": 'curl/8 "quoted"\nsecond line',
    REQUEST_ID_KEY: "rid-5",
    MODEL_VERSION_KEY: "v1",
}


def log_access(logger_class, tmp_path) -> str:
    """One access line through gunicorn's logger writing to a file; the file's text, read
    straight after (nothing waits in memory)."""
    config = Config()
    config.set("accesslog", str(tmp_path / "access.log"))
    logger = logger_class(config)
    response = SimpleNamespace(status_code=201, sent=17, headers=[])
    logger.access(response, None, ENVIRON, timedelta(microseconds=2500))
    return (tmp_path / "access.log").read_text()


def test_the_access_line_is_one_json_object_with_the_request_facts(tmp_path):
    text = log_access(JsonLogger, tmp_path)
    assert text.count("\n") == 1  # one line, whatever the client sent
    entry = json.loads(text)
    assert (
        entry
        | {
            "logger": "gunicorn.access",
            "remote_addr": "10.0.0.7",
            "method": "POST",
            "path": "/predict",
            "query": None,
            "status": 201,
            "bytes": 17,
            "duration_ms": 2.5,
            "user_agent": ENVIRON["HTTP_USER_AGENT"],
            "request_id": "rid-5",
            "model_version": "v1",
        }
        == entry
    )
    assert isinstance(entry["pid"], int)


def test_the_text_access_line_is_for_a_person(tmp_path):
    text = log_access(TextLogger, tmp_path)
    assert text.endswith("POST /predict 201 2.5 ms [rid-5]\n")
    assert not text.startswith("{")


def test_a_record_logged_while_serving_names_the_request(app):
    with app.test_request_context("/model", environ_base={REQUEST_ID_KEY: "rid-7"}):
        logger = JsonLogger(Config())  # its handlers name the request of a Flask route
        handler = logger.error_log.handlers[0]
        logged = record("boom")
        handler.filter(logged)
    assert json.loads(handler.format(logged))["request_id"] == "rid-7"


def test_a_record_given_a_request_id_names_it_outside_flask():
    logged = record("boom")
    logged.request_id = "rid-9"  # what logger.exception(..., extra={"request_id": ...}) sets
    assert json.loads(JsonFormatter().format(logged))["request_id"] == "rid-9"
    assert TextFormatter().format(logged).endswith("churn: boom [rid-9]")
