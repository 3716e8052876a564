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
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from flask import Flask, has_request_context, request
from gunicorn.glogging import Logger as GunicornLogger

from churn.logpipe import widen_pipe, write_all

# Keys in the WSGI environ through which the app hands the access log its request's facts.
REQUEST_ID_KEY = "churn.request_id"
MODEL_VERSION_KEY = "churn.model_version"

ACCESS_FLUSH_SECONDS = 1.0
# Gathered lines wake the writing thread early at this size, so a burst is written in pieces.
ACCESS_WAKE_BYTES = 64 * 1024
# More than this waiting means the stream does not keep up: the request threads then write
# themselves and slow down, instead of the worker's memory growing without bound.
ACCESS_BACKLOG_BYTES = 4 * 1024 * 1024
# Combinations of the values that repeat between requests (client, path, user agent, ...) whose
# part of the line each worker remembers.
ACCESS_FRAGMENTS_CACHED = 512


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


class AccessLine:
    """Builds the access line as text from a template: the same JSON object as
    ``orjson.dumps`` of a dict would give, at a fraction of the cost (docs/performance.md)."""

    def __init__(self) -> None:
        self._fragments: dict[tuple, tuple[str, str, str]] = {}
        self._millisecond_text: tuple[int, str] = (-1, "")
        self._second_text: tuple[int, str] = (-1, "")
        self.pid = os.getpid()

    def fragments(self, repeated: tuple) -> tuple[str, str, str]:
        """The line's text around its per-request values, for one combination of the values that
        repeat between requests (remote addr, method, path, query, user agent, model version)."""
        try:
            return self._fragments[repeated]
        except KeyError:
            addr, method, path, query, agent, model = (orjson.dumps(v).decode() for v in repeated)
            built = (
                f'"level":"info","logger":"access","remote_addr":{addr},"method":{method},'
                f'"path":{path},"query":{query},"status":',
                f',"user_agent":{agent},"request_id":',
                f',"model_version":{model},"pid":{self.pid}}}',
            )
            if len(self._fragments) < ACCESS_FRAGMENTS_CACHED:
                self._fragments[repeated] = built
            return built

    def timestamp(self) -> str:
        """Now, as ``datetime.isoformat(timespec="milliseconds")`` in UTC: built once a ms."""
        now_ms = time.time_ns() // 1_000_000
        cached_ms, text = self._millisecond_text  # one tuple: safe for the worker's threads
        if now_ms != cached_ms:
            second, millisecond = divmod(now_ms, 1000)
            cached_second, prefix = self._second_text
            if second != cached_second:
                prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
                self._second_text = (second, prefix)
            text = f"{prefix}.{millisecond:03d}+00:00"
            self._millisecond_text = (now_ms, text)
        return text

    def build(self, resp: Any, environ: dict, request_time: timedelta) -> str:
        get = environ.get
        head, middle, tail = self.fragments(
            (
                get("REMOTE_ADDR"),
                get("REQUEST_METHOD"),
                get("PATH_INFO"),
                get("QUERY_STRING") or None,
                get("HTTP_USER_AGENT"),
                get(MODEL_VERSION_KEY),
            )
        )
        sent = getattr(resp, "sent", None)
        return (
            f'{{"time":"{self.timestamp()}",{head}{int(resp.status_code)},'
            f'"bytes":{"null" if sent is None else int(sent)},'
            f'"duration_ms":{duration_ms(request_time)!r}{middle}'
            # Unique per request: encoded each time, never remembered.
            f"{orjson.dumps(get(REQUEST_ID_KEY)).decode()}{tail}"
        )


def duration_ms(request_time: timedelta) -> float:
    """Milliseconds to the microsecond: ``round(total_seconds() * 1000, 3)`` at a third of the cost
    (whole microseconds / 1000 is already the nearest float to the 3-decimal value)."""
    whole_seconds = request_time.days * 86400 + request_time.seconds
    return (whole_seconds * 1_000_000 + request_time.microseconds) / 1000


class JsonLogger(GunicornLogger):
    """gunicorn's logger with JSON lines for both the error log and the access log.

    Access lines are gathered in the worker and written by a thread of their own about once a
    second (sooner when 64 KiB wait), and all of them when the worker exits.
    """

    def __init__(self, cfg: Any) -> None:
        self._start_afresh()
        super().__init__(cfg)  # calls setup(), again on each of the master's reloads
        # gunicorn forks its workers from the master: threads and locks do not survive a fork.
        os.register_at_fork(after_in_child=self._start_afresh)

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for handler in self.error_log.handlers:
            handler.setFormatter(JsonFormatter())
        for handler in self.access_log.handlers:
            handler.setFormatter(logging.Formatter("%(message)s"))
            if isinstance(handler, logging.StreamHandler):
                widen_pipe(handler.stream)
        self._decide_how_lines_go()

    def _decide_how_lines_go(self) -> None:
        """Gather the lines only when every access handler is a stream: syslog and the other
        handlers a log config may add take records. Decided once per set-up, not for every line:
        gunicorn changes the handlers only here (its reopen on SIGUSR1 gives them new files)."""
        self._gather_lines = all(
            isinstance(handler, logging.StreamHandler) for handler in self.access_log.handlers
        )

    def _start_afresh(self) -> None:
        """No lines gathered, no flusher yet, this process's pid in the lines."""
        self._pending: list[str] = []
        self._pending_bytes = 0
        self._pending_lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._wake_flusher = threading.Event()
        self._flusher_started = False
        self._line = AccessLine()

    def access(self, resp: Any, req: Any, environ: dict, request_time: timedelta) -> None:
        if not self.access_log_enabled:
            return
        self._write_access_line(self._line.build(resp, environ, request_time))

    def _write_access_line(self, line: str) -> None:
        if not self._gather_lines:
            self.access_log.info(line)
            return
        # Gathered, then written by the flusher thread: in a container every write is a trip
        # through the engine's log pipe, and one per request cost ~43% of throughput (issue 11).
        # A request thread does not write: a write to a full pipe blocks until the engine reads,
        # and each worker has only two threads (docs/performance.md).
        with self._pending_lock:
            if not self._flusher_started:
                self._start_flusher()
            self._pending.append(line)
            size = len(line) + 1
            self._pending_bytes += size
            waiting = self._pending_bytes
        if waiting >= ACCESS_BACKLOG_BYTES:
            self.flush_access_lines()
        elif waiting - size < ACCESS_WAKE_BYTES <= waiting:
            # Once, as the threshold is crossed: setting an Event takes a lock and notifies, and
            # the flusher may wait a while for the interpreter (GIL) before it runs.
            self._wake_flusher.set()

    def _start_flusher(self) -> None:
        """One flushing thread per process, started with its first line."""
        self._flusher_started = True
        threading.Thread(target=self._flush_forever, name="access-log", daemon=True).start()
        atexit.register(self.flush_access_lines)  # a worker's last lines, at SIGTERM too

    def _flush_forever(self) -> None:
        while True:
            self._wake_flusher.wait(ACCESS_FLUSH_SECONDS)
            self._wake_flusher.clear()
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
                    write_all(handler.stream, text)
                finally:
                    handler.release()
