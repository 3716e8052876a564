"""Log formatting and metric labels, in process (tests/test_e2e.py checks them under gunicorn)."""

from __future__ import annotations

import io
import json
import logging
import os
import sys
import threading
from datetime import UTC, datetime, timedelta
from logging.handlers import BufferingHandler
from types import SimpleNamespace

import orjson
import pytest
from churn.observability import MODEL_VERSION_KEY, REQUEST_ID_KEY
from gunicorn.config import Config
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.servers import poll
from churn import logs
from churn.logs import AccessLine, JsonFormatter, JsonLogger


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
        logger.setup(logger.cfg)  # as a log config's handlers come: in gunicorn's set-up
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


def log_numbered(logger, count: int) -> None:
    """``count`` access lines whose ``bytes`` field numbers them."""
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/health"}
    for number in range(count):
        response = SimpleNamespace(status_code=200, sent=number, headers=[])
        logger.access(response, None, environ, timedelta(milliseconds=1))


def test_a_full_buffer_wakes_the_writer_before_its_second_is_up(tmp_path, monkeypatch):
    monkeypatch.setattr(logs, "ACCESS_FLUSH_SECONDS", 60.0)  # only the wake-up can write them
    logger, _ = access_logger(tmp_path)
    log_numbered(logger, logs.ACCESS_WAKE_BYTES // 100)  # each line is well over 100 bytes
    written = poll(lambda: (tmp_path / "access.log").read_text(), bool, 10, 0.05)
    numbers = [json.loads(line)["bytes"] for line in written.splitlines()]
    assert numbers and numbers == list(range(len(numbers)))


class CountingEvent(threading.Event):
    def __init__(self) -> None:
        super().__init__()
        self.times_set = 0

    def set(self) -> None:
        self.times_set += 1
        super().set()


def test_the_writer_is_woken_once_as_the_lines_pass_the_wake_size(tmp_path, monkeypatch):
    monkeypatch.setattr(logs, "ACCESS_FLUSH_SECONDS", 60.0)  # only the wake-up can write them
    logger, _ = access_logger(tmp_path)
    logger._wake_flusher = wake = CountingEvent()
    with logger._flush_lock:  # the writer is busy: the lines keep coming past the wake size
        log_numbered(logger, 3 * logs.ACCESS_WAKE_BYTES // 100)
        assert wake.times_set == 1
    written = poll(lambda: (tmp_path / "access.log").read_text(), bool, 10, 0.05)
    numbers = [json.loads(line)["bytes"] for line in written.splitlines()]
    assert numbers == list(range(3 * logs.ACCESS_WAKE_BYTES // 100))  # all of them, in order


class StalledStream(io.StringIO):
    """A log pipe nobody reads: a write waits until the reader comes back."""

    def __init__(self) -> None:
        super().__init__()
        self.reader_back = threading.Event()

    def write(self, text: str) -> int:
        self.reader_back.wait(30)
        return super().write(text)


def test_request_threads_wait_when_the_stream_does_not_keep_up(tmp_path, monkeypatch):
    monkeypatch.setattr(logs, "ACCESS_BACKLOG_BYTES", 8 * 1024)
    logger, _ = access_logger(tmp_path)
    stream = StalledStream()
    handler = logger.access_log.handlers[0]
    handler.setStream(stream)
    requests = threading.Thread(target=log_numbered, args=(logger, 1000))
    requests.start()
    requests.join(2)
    assert requests.is_alive()  # held back: memory stays bounded while the stream is stuck
    stream.reader_back.set()
    requests.join(30)
    logger.flush_access_lines()
    numbers = [json.loads(line)["bytes"] for line in stream.getvalue().splitlines()]
    assert numbers == list(range(1000))  # nothing lost, in order


def test_a_forked_worker_writes_only_its_own_lines_with_its_own_pid(tmp_path, monkeypatch):
    monkeypatch.setattr(logs, "ACCESS_FLUSH_SECONDS", 60.0)  # the parent's line stays gathered
    logger, log_one = access_logger(tmp_path)
    log_one()  # gathered in the parent (the master), not yet written
    child = os.fork()
    if child == 0:  # the worker: one line of its own, written at exit
        try:
            log_one()
            logger.flush_access_lines()
        finally:
            os._exit(0)
    os.waitpid(child, 0)
    entries = [json.loads(line) for line in (tmp_path / "access.log").read_text().splitlines()]
    assert [entry["pid"] for entry in entries] == [child]


texts = st.text(max_size=40) | st.none()
SHARED_LINE = AccessLine()


@settings(max_examples=300, deadline=None)
@given(
    strings=st.fixed_dictionaries(
        {k: texts for k in ("addr", "method", "path", "query", "agent", "rid", "model")}
    ),
    status=st.integers(100, 599),
    sent=st.integers(0, 10**9) | st.none(),
    microseconds=st.integers(0, 10**9),
)
def test_the_access_line_is_the_json_object_the_readme_documents(
    strings, status, sent, microseconds
):
    environ = {
        "REMOTE_ADDR": strings["addr"],
        "REQUEST_METHOD": strings["method"],
        "PATH_INFO": strings["path"],
        "QUERY_STRING": strings["query"],
        "HTTP_USER_AGENT": strings["agent"],
        REQUEST_ID_KEY: strings["rid"],
        MODEL_VERSION_KEY: strings["model"],
    }
    before = datetime.now(UTC).replace(microsecond=0)
    response = SimpleNamespace(status_code=status, sent=sent)
    # One AccessLine for all examples, as in a worker: parts remembered from earlier lines must
    # not leak into this one.
    text = SHARED_LINE.build(response, environ, timedelta(microseconds=microseconds))
    time_text = json.loads(text)["time"]
    stamp = datetime.fromisoformat(time_text)
    assert before <= stamp <= datetime.now(UTC) and stamp.utcoffset() == timedelta(0)
    documented = {
        "time": time_text,
        "level": "info",
        "logger": "access",
        "remote_addr": strings["addr"],
        "method": strings["method"],
        "path": strings["path"],
        "query": strings["query"] or None,
        "status": status,
        "bytes": sent,
        "duration_ms": round(microseconds / 1000, 3),
        "user_agent": strings["agent"],
        "request_id": strings["rid"],
        "model_version": strings["model"],
        "pid": os.getpid(),
    }
    assert text == orjson.dumps(documented).decode()  # the fields in the README's order
    assert "\n" not in text and "\r" not in text  # one line, whatever a client sent
