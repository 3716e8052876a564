"""Reading a live server: its JSON log (bench/servers.py captures it to a file) and /metrics."""

from __future__ import annotations

import json
import os
import runpy
import time
from collections.abc import Callable, Iterable

import requests

from bench.servers import poll
from churn.config import PROJECT_ROOT


def log_entries(server) -> list[dict]:
    """The server's complete JSON log lines (a line still being written is left out)."""
    lines = server.output().splitlines(keepends=True)
    return [json.loads(line) for line in lines if line.startswith("{") and line.endswith("\n")]


def access_entries(server, request_ids: set[str], timeout: float = 10) -> list[dict]:
    """The access lines of ``request_ids``, waiting for all of them.

    gunicorn writes an access line after the response has gone out, so the client can read its
    answer before the line exists; on a loaded machine the gap has no fixed bound.
    """
    return poll(
        lambda: [e for e in log_entries(server) if e.get("request_id") in request_ids],
        lambda found: {e["request_id"] for e in found} >= request_ids,
        timeout,
        interval=0.02,
    )


PREDICTIONS = "churn_predictions_total"


def settled_metric(server, name: str, flush_seconds: float = 1.0) -> float:
    """A metric's value once every worker has flushed what earlier tests sent it.

    Workers flush their tallies every ``flush_seconds``: two reads that far apart agreeing means
    nothing was still pending.
    """

    def read() -> float:
        return metric(requests.get(server.url + "/metrics", timeout=10).text, name)

    previous = read()
    for _ in range(20):
        time.sleep(flush_seconds * 1.5)
        current = read()
        if current == previous:
            return current
        previous = current
    raise AssertionError(f"{name} never settled")


def worker_pids(server, request_ids: set[str]) -> set[int]:
    return {e["pid"] for e in access_entries(server, request_ids)}


def metric(text: str, name: str) -> float:
    """Sum of a metric's samples (over labels) in Prometheus text format."""
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name + "{") or line.startswith(name + " ")
    )


def await_a_request_begun_after(moment: float, starts: Callable[[], Iterable[float]]) -> None:
    """Wait until a client has begun (and ended) a request after ``moment``, a server's exit.

    A client whose SYN a stopping worker dropped sends it again about a second later
    (churn/gunicorn_hooks.py ``stop_new_handshakes``): until then it begins no new request.
    """
    poll(lambda: [s for s in starts() if s > moment], bool, timeout=5, interval=0.05)


def gunicorn_settings(env: dict[str, str] | None = None) -> dict:
    """gunicorn.conf.py's settings as seen with ``env`` (default: this process's environment).

    The file sets variables in os.environ (the metrics folder); they are put back afterwards so
    nothing leaks into this process or the servers it starts later.
    """
    saved = dict(os.environ)
    try:
        if env is not None:
            os.environ.clear()
            os.environ.update(env)
        return runpy.run_path(str(PROJECT_ROOT / "gunicorn.conf.py"))
    finally:
        os.environ.clear()
        os.environ.update(saved)
