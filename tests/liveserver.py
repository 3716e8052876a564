"""Reading a live server: its JSON log (bench/servers.py captures it to a file), /metrics, and
which of many requests it answered (wrk recording the request id of every answer)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from bench.servers import poll


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


def samples(text: str, name: str) -> list[Sample]:
    """The samples named ``name`` (each with its labels and value) in Prometheus text format."""
    families = text_string_to_metric_families(text)
    return [sample for family in families for sample in family.samples if sample.name == name]


def metric(text: str, name: str) -> float:
    """Sum of a metric's samples (over labels) in Prometheus text format."""
    return sum(sample.value for sample in samples(text, name))


def await_a_request_begun_after(moment: float, starts: Callable[[], Iterable[float]]) -> None:
    """Wait until a client has begun (and ended) a request after ``moment``, a server's exit:
    a client retrying a connection may take a second or more to begin its next request."""
    poll(lambda: [s for s in starts() if s > moment], bool, timeout=5, interval=0.05)


def access_request_ids(text: str) -> tuple[list[str], list[str]]:
    """The request id of every JSON access line in a log's ``text``, and the lines that start as
    JSON but are not (two lines written into each other)."""
    ids, broken = [], []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                entry = json.loads(line)
            except ValueError:
                broken.append(line)
                continue
            if entry.get("logger") == "gunicorn.access":
                ids.append(entry["request_id"])
    return ids, broken


IDS_LUA = Path(__file__).resolve().parent / "ids.lua"


class RecordingWrk:
    """wrk POSTing with a unique X-Request-ID per request, recording each 200 answer's id
    (tests/ids.lua): which requests were answered, exactly, e.g. across a kill or a stop."""

    def __init__(self, wrk: str, url: str, body_file: Path, seconds: float, connections: int):
        self.prefix = body_file.with_name(f"answered-{os.getpid()}-{id(self)}")
        tag = self.prefix.name.removeprefix("answered-")
        command = [wrk, "-t2", f"-c{connections}", f"-d{max(1, round(seconds))}s", "-s"]
        command += [str(IDS_LUA), url, "--", str(body_file), str(self.prefix), tag]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def answered(self, timeout: float = 120) -> list[str]:
        """Wait for wrk to end; the ids of the answers it received (each thread's file)."""
        self.process.communicate(timeout=timeout)
        ids = []
        for part in sorted(self.prefix.parent.glob(self.prefix.name + "-*")):
            ids += part.read_text().split()
            part.unlink()
        return ids
