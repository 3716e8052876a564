"""Faults on real gunicorn over loopback: killed workers, SIGTERM, bad model files, a soak.

Each test is bounded in time; the soak's length is SOAK_SECONDS (default 60).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests

from bench.load import require_wrk, run_wrk, worker_rss_mib
from bench.servers import (
    free_port,
    gunicorn_command,
    gunicorn_settings,
    running,
    wait_for_workers,
    wait_until_up,
    workers_of,
)
from churn.config import PROJECT_ROOT
from churn.features import EXAMPLE_CUSTOMER
from tests.crafted import code_running_pickle
from tests.liveserver import await_a_request_begun_after

pytestmark = pytest.mark.slow
SOAK_SECONDS = float(os.environ.get("SOAK_SECONDS", "60"))


@pytest.fixture()
def body_file(tmp_path) -> Path:
    path = tmp_path / "customer.json"
    path.write_text(json.dumps(EXAMPLE_CUSTOMER))
    return path


CONNECTIONS = 16  # wrk's, in the worker-kill test


def test_killing_a_worker_under_load_loses_only_requests_on_its_connections(tmp_path, body_file):
    wrk = require_wrk()
    with running(gunicorn_command(), tmp_path, env={"WEB_CONCURRENCY": "2"}) as server:
        master = server.process.pid
        victim = sorted(wait_for_workers(master, 2))[0]
        killer = threading.Timer(3, os.kill, args=(victim, signal.SIGKILL))
        killer.start()
        result = run_wrk(
            wrk, server.url + "/predict", body_file, seconds=10, connections=CONNECTIONS
        )
        killer.join()
        replacements = wait_for_workers(master, 2)
        assert victim not in replacements  # the master booted a new worker in its place
        assert requests.post(server.url + "/predict", json=EXAMPLE_CUSTOMER, timeout=10).ok
    assert result["requests"] > 1000
    # A killed worker loses a fixed number of requests, not a share of the traffic: the one in
    # flight on each connection it held, and at most one more per connection that the kernel had
    # queued on its listener before the socket closed. A bound as a share of all requests failed
    # whenever a loaded machine served few of them (16 errors in 13k at load 13).
    assert result["errors"] <= 2 * CONNECTIONS, result


def test_sigterm_finishes_in_flight_requests_and_refuses_new_ones_cleanly(tmp_path):
    batch = json.dumps([EXAMPLE_CUSTOMER] * 1000)  # ~20 ms each: several are always in flight
    outcomes: list[tuple[float, float, str]] = []
    stop = threading.Event()

    def client(url: str) -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                response = requests.post(
                    url, data=batch, headers={"Content-Type": "application/json"}, timeout=30
                )
                outcome = (
                    "ok"
                    if response.status_code == 200 and len(response.json()) == 1000
                    else f"bad {response.status_code}"
                )
            except requests.ConnectionError:
                outcome = "refused"  # no connection, or closed before any response byte
            except requests.RequestException as error:  # a broken or partial response
                outcome = f"broken {type(error).__name__}"
            outcomes.append((started, time.monotonic(), outcome))

    with running(gunicorn_command(), tmp_path, env={"WEB_CONCURRENCY": "2"}) as server:
        threads = [
            threading.Thread(target=client, args=(server.url + "/predict",)) for _ in range(4)
        ]
        for thread in threads:
            thread.start()
        time.sleep(2)
        term_sent = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        exit_code = server.process.wait(timeout=30)
        exited = time.monotonic()
        await_a_request_begun_after(exited, lambda: [start for start, *_ in outcomes])
        stop.set()
        for thread in threads:
            thread.join(timeout=30)

    graceful = gunicorn_settings()["graceful_timeout"]
    assert exit_code == 0 and exited - term_sent < graceful
    assert {o for *_, o in outcomes} <= {"ok", "refused"}, {o for *_, o in outcomes}
    in_flight_finished = [o for start, end, o in outcomes if start < term_sent < end and o == "ok"]
    assert in_flight_finished, "no request was in flight at SIGTERM, or none finished"
    after_exit = [o for start, _, o in outcomes if start > exited]
    assert after_exit and set(after_exit) == {"refused"}


def test_a_code_running_pickle_stops_gunicorn_before_it_runs(tmp_path):
    marker = tmp_path / "pwned"
    model = tmp_path / "model.bin"
    model.write_bytes(code_running_pickle(marker))
    (tmp_path / "model.json").write_text("{}")
    env = {**os.environ, "MODEL_FILE": str(model), "PORT": str(free_port())}
    result = subprocess.run(
        gunicorn_command(), cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60, env=env
    )
    assert result.returncode != 0
    assert "refusing to load posix.system" in result.stderr
    assert not marker.exists()
    assert "Booting worker" not in result.stderr


def warm_up(wrk: str, url: str, body_file: Path, master: int, workers: int) -> list[float]:
    """Load in short rounds until every worker has served traffic and its RSS has settled.

    With keep-alive, one wrk run can leave a worker nearly idle; its first real traffic later
    would look like growth. Each round opens fresh connections, which spread over the workers.
    """
    previous = worker_rss_mib(master)
    for _ in range(10):
        run_wrk(wrk, url, body_file, seconds=2, connections=32)
        current = worker_rss_mib(master)
        if len(current) == len(previous) == workers and all(
            abs(a - b) <= 0.02 * b for a, b in zip(current, previous, strict=True)
        ):
            return current
        previous = current
    return previous


def test_soak_at_saturation_has_no_errors_and_flat_memory(tmp_path, body_file):
    wrk = require_wrk()
    with running(gunicorn_command(), tmp_path, env={"WEB_CONCURRENCY": "2"}) as server:
        url, master = server.url + "/predict", server.process.pid
        # /health answers once the first worker is up; a second still booting would be missing
        # from the first memory sample.
        worker_pids = wait_for_workers(master, 2)
        before = warm_up(wrk, url, body_file, master, workers=len(worker_pids))
        result = run_wrk(wrk, url, body_file, seconds=SOAK_SECONDS, connections=16)
        after = worker_rss_mib(master)
        replaced = worker_pids ^ workers_of(master)  # a crash, and fresh memory hiding any growth
        wait_until_up(server.url + "/health", server.process)
    assert result["errors"] == 0, result
    assert not replaced
    assert len(before) == len(after) == 2
    assert sum(after) < 1.10 * sum(before), (before, after)
