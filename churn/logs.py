"""The service's logs: gunicorn's error and access logs and the app's records, one line each.

gunicorn.conf.py names ``JsonLogger`` (machines: the container, EB) or ``TextLogger`` (a person at
a terminal) as gunicorn's logger class (``LOG_FORMAT``). Every record is written to its stream
as it is logged, one line per write (logging's StreamHandler flushes each record), so a worker
that is killed loses no line of a request it has answered.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

import orjson
from flask import has_request_context, request
from gunicorn.glogging import Logger

# Keys in the WSGI environ through which the app hands the access log its request's facts.
REQUEST_ID_KEY = "churn.request_id"
MODEL_VERSION_KEY = "churn.model_version"

# Every module's logger (churn.app, churn.shadow, ...) is its child. Under gunicorn it has the
# error log's handlers before the app is built, so Flask adds none of its own to churn.app.
APP_LOGGER = "churn"

# No line names its thread or its multiprocessing process, so records need not look them up
# (the logging HOWTO's "Optimization"): about half the cost of making a record.
logging.logThreads = False
logging.logMultiprocessing = False


class RequestId(logging.Filter):
    """Names the request a record was logged for: the endpoint passes it as
    ``extra={"request_id": ...}``; in a Flask route it comes from the request."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None and has_request_context():
            record.request_id = request.environ.get(REQUEST_ID_KEY)
        return True


# What every record carries; anything else on a record came as ``extra`` and is a field of its own.
RECORD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC), level, logger, message, pid, the record's extras,
    and its exception or stack when it has one.

    Written here rather than taken from python-json-logger: the same line for a third of the
    cost, which was worth 6% of /predict throughput with an access line per request
    (docs/performance.md).
    """

    default_time_format, default_msec_format = "%Y-%m-%dT%H:%M:%S", "%s.%03dZ"

    def __init__(self) -> None:
        super().__init__()
        self.converter = time.gmtime  # the time in UTC, as the "Z" says

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        line.update((k, v) for k, v in vars(record).items() if k not in RECORD_ATTRIBUTES)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(line, default=str).decode()


class TextFormatter(logging.Formatter):
    """``time level logger: message [request id]``, for a person reading a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        request_id = getattr(record, "request_id", None)
        return f"{line} [{request_id}]" if request_id else line


class JsonLogger(Logger):
    """gunicorn's logger, its records as JSON lines and the access line with the request's
    facts as fields (README, Logs)."""

    formatter: type[logging.Formatter] = JsonFormatter

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for handler in [*self.error_log.handlers, *self.access_log.handlers]:
            handler.setFormatter(self.formatter())
            handler.addFilter(RequestId())
        app = logging.getLogger(APP_LOGGER)  # the app's records, through the same handlers
        app.handlers, app.propagate = list(self.error_log.handlers), False
        app.setLevel(self.loglevel)

    def access(self, resp: Any, req: Any, environ: dict, request_time: timedelta) -> None:
        if not self.access_log_enabled:
            return
        status, duration_ms = resp.status_code, round(request_time.total_seconds() * 1000, 3)
        fields = {
            "remote_addr": environ.get("REMOTE_ADDR"),
            "method": environ.get("REQUEST_METHOD"),
            "path": environ.get("PATH_INFO"),
            "query": environ.get("QUERY_STRING") or None,
            "status": status,
            "bytes": getattr(resp, "sent", None),
            "duration_ms": duration_ms,
            "user_agent": environ.get("HTTP_USER_AGENT"),
            "request_id": environ.get(REQUEST_ID_KEY),
            "model_version": environ.get(MODEL_VERSION_KEY),
        }
        # The record is made and handed over directly: ``info`` would also look up the
        # calling source line, a stack walk: a fifth of the line's cost (docs/performance.md).
        line = "%s %s %s %.1f ms"  # the message: what a person reads first
        args = (fields["method"], fields["path"], status, duration_ms)
        log = self.access_log
        log.handle(log.makeRecord(log.name, logging.INFO, "", 0, line, args, None, extra=fields))


class TextLogger(JsonLogger):
    """The same records as lines a person reads: ``make run`` in a terminal."""

    formatter = TextFormatter
