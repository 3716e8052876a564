"""Log formatting and metric labels, in process (tests/test_e2e.py checks them under gunicorn)."""

from __future__ import annotations

import json
import logging
import sys
from datetime import timedelta
from logging.handlers import BufferingHandler
from types import SimpleNamespace

import pytest
from gunicorn.config import Config

from bench.servers import poll
from churn.logs import ACCESS_BUFFER_BYTES, JsonFormatter, JsonLogger
from churn.observability import REQUEST_ID_KEY


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


@pytest.fixture(autouse=True)
def gunicorn_loggers_restored():
    """JsonLogger configures the process-wide "gunicorn.*" loggers; the app tests that run later
    in this process must find them as they were (else the app logs through these handlers)."""
    loggers = [logging.getLogger(name) for name in ("gunicorn.error", "gunicorn.access")]
    saved = [(logger.handlers[:], logger.level, logger.propagate) for logger in loggers]
    yield
    for logger, (handlers, level, propagate) in zip(loggers, saved, strict=True):
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate


def access_logger(tmp_path):
    config = Config()
    config.set("accesslog", str(tmp_path / "access.log"))
    logger = JsonLogger(config)
    response = SimpleNamespace(status_code=201, sent=17, headers=[])
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/predict", REQUEST_ID_KEY: "rid-5"}

    def log_one() -> None:
        logger.access(response, None, environ, timedelta(milliseconds=2))

    return logger, log_one


def test_the_access_log_writes_one_json_line_per_request(tmp_path):
    logger, log_one = access_logger(tmp_path)
    log_one()
    log_one()
    assert (tmp_path / "access.log").read_text() == ""  # gathered, not yet written
    logger.flush_access_lines()
    lines = (tmp_path / "access.log").read_text().splitlines()
    entries = [json.loads(line) for line in lines]
    assert len(entries) == 2
    assert entries[0] == {**entries[0], "status": 201, "bytes": 17, "request_id": "rid-5"}
    assert entries[0]["duration_ms"] == 2.0 and entries[0]["path"] == "/predict"


def test_the_access_log_reaches_handlers_that_are_not_streams(tmp_path):
    logger, log_one = access_logger(tmp_path)
    buffer = BufferingHandler(capacity=10)
    logger.access_log.addHandler(buffer)  # "gunicorn.access" is process-wide: removed below
    try:
        log_one()
    finally:
        logger.access_log.removeHandler(buffer)
    assert [json.loads(r.getMessage())["request_id"] for r in buffer.buffer] == ["rid-5"]
    assert json.loads((tmp_path / "access.log").read_text())["status"] == 201


def test_gathered_access_lines_are_written_within_about_a_second_without_more_traffic(tmp_path):
    _, log_one = access_logger(tmp_path)
    log_one()
    written = poll(lambda: (tmp_path / "access.log").read_text(), bool, 10, 0.05)
    assert json.loads(written)["request_id"] == "rid-5"


def test_a_full_buffer_is_written_at_once_and_in_order(tmp_path):
    logger, _ = access_logger(tmp_path)
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/health"}
    count = ACCESS_BUFFER_BYTES // 100  # each line is well over 100 bytes
    for number in range(count):
        response = SimpleNamespace(status_code=200, sent=number, headers=[])
        logger.access(response, None, environ, timedelta(milliseconds=1))
    written = [json.loads(line)["bytes"] for line in (tmp_path / "access.log").open()]
    assert written and written == list(range(len(written)))
