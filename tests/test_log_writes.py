"""Log lines under real gunicorn: written as each request is answered, so a killed worker loses
no line of a request it answered, and the workers' lines never run into each other."""

from __future__ import annotations

import json
import os
import re
import signal

import pytest
import requests

from bench.load import require_wrk
from bench.servers import gunicorn_command, poll, running, wait_for_workers
from churn.features import EXAMPLE_CUSTOMER
from tests.liveserver import RecordingWrk, access_request_ids, log_entries

pytestmark = pytest.mark.slow
THREADS = 2  # per worker (gunicorn.conf.py): answers a worker can be finishing as it dies


def test_a_worker_killed_under_load_loses_no_line_of_an_answered_request(tmp_path):
    body = tmp_path / "customer.json"
    body.write_text(json.dumps(EXAMPLE_CUSTOMER))
    env = {"WEB_CONCURRENCY": "2", "LOG_FORMAT": "json", "GUNICORN_ACCESSLOG": "-"}
    with running(gunicorn_command(), tmp_path, env=env) as server:
        victim = min(wait_for_workers(server.process.pid, 2))
        wrk = RecordingWrk(require_wrk(), server.url + "/predict", body, 6, connections=8)
        # Killed once it has answered requests: a gathering logger would hold their lines.
        poll(lambda: victim_lines(server, victim), lambda n: n >= 200, timeout=30, interval=0.05)
        os.kill(victim, signal.SIGKILL)
        answered = set(wrk.answered())
        logged, broken = poll(
            lambda: access_request_ids(server.output()),
            lambda found: answered <= set(found[0]),
            timeout=10,
            interval=0.1,
        )
    assert len(answered) > 1000, "too little load to tell"
    assert broken == [], f"{len(broken)} lines run into each other: {broken[0][:200]}"
    # An answer goes out just before its line is written: the killed worker's threads may each
    # have been between the two.
    missing = answered - set(logged)
    assert len(missing) <= THREADS, f"{len(missing)} of {len(answered)} answered, not logged"


def victim_lines(server, pid: int) -> int:
    return sum(1 for e in log_entries(server) if e.get("pid") == pid and "status" in e)


def test_the_access_log_is_one_setting_away(tmp_path):
    env = {"WEB_CONCURRENCY": "1", "LOG_FORMAT": "json", "GUNICORN_ACCESSLOG": ""}
    with running(gunicorn_command(), tmp_path, env=env) as server:
        response = requests.post(server.url + "/predict", json=EXAMPLE_CUSTOMER, timeout=10)
        assert response.ok
        entries = log_entries(server)
    assert any(e["message"].startswith("Booting worker") for e in entries)  # the error log
    assert not [e for e in entries if e["logger"] == "gunicorn.access"]


def test_text_lines_are_for_a_person(tmp_path):
    env = {"WEB_CONCURRENCY": "1", "LOG_FORMAT": "text", "GUNICORN_ACCESSLOG": "-"}
    with running(gunicorn_command(), tmp_path, env=env) as server:
        response = requests.get(server.url + "/health", timeout=10)
        request_id = response.headers["X-Request-ID"]
        line = poll(
            lambda: [x for x in server.output().splitlines() if request_id in x],
            bool,
            timeout=10,
            interval=0.05,
        )
    assert line and re.search(rf"GET /health 200 [\d.]+ ms \[{re.escape(request_id)}\]$", line[0])
    assert not server.output().lstrip().startswith("{")


def test_the_apps_records_are_json_lines_with_their_traceback(tmp_path):
    env = {"WEB_CONCURRENCY": "1", "LOG_FORMAT": "json", "SHADOW_MODEL_FILE": "model_C=1.0.bin"}
    with running(gunicorn_command("tests.faulty_shadow_app:app"), tmp_path, env=env) as server:
        assert requests.post(server.url + "/predict", json=EXAMPLE_CUSTOMER, timeout=10).ok
        failed = poll(
            lambda: [e for e in log_entries(server) if "shadow model failed" in e["message"]],
            bool,
            timeout=10,
            interval=0.05,
        )
    assert failed and failed[0]["level"] == "ERROR" and failed[0]["logger"].startswith("churn")
    assert (
        failed[0]["exception"].startswith("Traceback")
        and "injected: the shadow model fails" in failed[0]["exception"]
    )
