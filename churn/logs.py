"""Structured JSON logs: the app's records through gunicorn's error log, and gunicorn's access
log as JSON lines gathered per worker and written about once a second.

gunicorn.conf.py names ``JsonLogger`` as gunicorn's logger class.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from datetime import UTC, datetime
from typing import Any

import orjson
from flask import Flask, has_request_context, request
from gunicorn.glogging import Logger as GunicornLogger

from churn.observability import MODEL_VERSION_KEY, REQUEST_ID_KEY

ACCESS_FLUSH_SECONDS = 1.0
ACCESS_BUFFER_BYTES = 64 * 1024


def use_gunicorn_logging(app: Flask) -> None:
    """Send the app's log records through gunicorn's (JSON) error log when under gunicorn."""
    gunicorn_error = logging.getLogger("gunicorn.error")
    if gunicorn_error.handlers:
        app.logger.handlers = gunicorn_error.handlers
        app.logger.setLevel(gunicorn_error.level)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: what log shippers (CloudWatch, Loki) parse without rules."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        # A record logged while serving a request names it: Flask routes have a request context,
        # the /predict endpoint passes the id as ``extra={"request_id": ...}``.
        request_id = getattr(record, "request_id", None)
        if request_id is None and has_request_context():
            request_id = request.environ.get(REQUEST_ID_KEY)
        if request_id is not None:
            entry["request_id"] = request_id
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


class JsonLogger(GunicornLogger):
    """gunicorn's logger with JSON lines for both the error log and the access log.

    Access lines are gathered in the worker and written about once a second (or when 64 KiB
    are waiting), and all of them when the worker exits.
    """

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        self._pending: list[str] = []
        self._pending_bytes = 0
        self._pending_lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._flusher_pid: int | None = None
        for handler in self.error_log.handlers:
            handler.setFormatter(JsonFormatter())
        for handler in self.access_log.handlers:
            handler.setFormatter(logging.Formatter("%(message)s"))

    def access(self, resp: Any, req: Any, environ: dict, request_time: Any) -> None:
        if not self.access_log_enabled:
            return
        entry = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "level": "info",
            "logger": "access",
            "remote_addr": environ.get("REMOTE_ADDR"),
            "method": environ.get("REQUEST_METHOD"),
            "path": environ.get("PATH_INFO"),
            "query": environ.get("QUERY_STRING") or None,
            "status": resp.status_code,
            "bytes": getattr(resp, "sent", None),
            "duration_ms": round(request_time.total_seconds() * 1000, 3),
            "user_agent": environ.get("HTTP_USER_AGENT"),
            "request_id": environ.get(REQUEST_ID_KEY),
            "model_version": environ.get(MODEL_VERSION_KEY),
            "pid": os.getpid(),
        }
        self._write_access_line(orjson.dumps(entry).decode())

    def _write_access_line(self, line: str) -> None:
        handlers = self.access_log.handlers
        if not all(isinstance(handler, logging.StreamHandler) for handler in handlers):
            self.access_log.info(line)  # syslog and other non-stream handlers take records
            return
        # Gathered, then written about once a second: in a container every write is a trip
        # through the engine's log pipe, and one per request cost ~43% of throughput (issue 11).
        # logging.info per line (a LogRecord, level checks, a formatter) cost twice as much as
        # building the line, so the lines go straight to the streams (docs/performance.md).
        with self._pending_lock:
            if self._flusher_pid != os.getpid():
                self._start_flusher()
            self._pending.append(line)
            self._pending_bytes += len(line) + 1
            full = self._pending_bytes >= ACCESS_BUFFER_BYTES
        if full:
            self.flush_access_lines()

    def _start_flusher(self) -> None:
        """One flushing thread per process (threads do not survive gunicorn's fork)."""
        self._flusher_pid = os.getpid()
        threading.Thread(target=self._flush_forever, name="access-log", daemon=True).start()
        atexit.register(self.flush_access_lines)  # a worker's last lines, at SIGTERM too

    def _flush_forever(self) -> None:
        while True:
            time.sleep(ACCESS_FLUSH_SECONDS)
            self.flush_access_lines()

    def flush_access_lines(self) -> None:
        """Write every gathered access line, in order, with one write per stream."""
        # One flush at a time keeps the lines in order; requests only wait for the swap.
        with self._flush_lock:
            with self._pending_lock:
                lines, self._pending, self._pending_bytes = self._pending, [], 0
            if not lines:
                return
            text = "\n".join(lines) + "\n"
            # gunicorn reopens these streams on SIGUSR1, so they are looked up on every flush.
            for handler in self.access_log.handlers:
                if not isinstance(handler, logging.StreamHandler):  # added since the lines came
                    for line in lines:
                        handler.handle(
                            self.access_log.makeRecord(
                                "access", logging.INFO, "", 0, line, (), None
                            )
                        )
                    continue
                handler.acquire()
                try:
                    handler.stream.write(text)
                    handler.stream.flush()
                finally:
                    handler.release()
