"""The real thing: gunicorn with gunicorn.conf.py and the committed model, over loopback HTTP."""

from __future__ import annotations

import os
import signal
import socket

import pytest
import requests

from bench.servers import gunicorn_command, poll, running, wait_for_workers
from tests.liveserver import (
    PREDICTIONS,
    access_entries,
    log_entries,
    metric,
    settled_metric,
    worker_pids,
)


def test_the_course_client_code_works_unchanged(server, customer):
    # What the course's predict-test.py does, word for word in spirit: requests.post(...).json()
    response = requests.post(server.url + "/predict", json=customer, timeout=10).json()
    assert response["churn"] in (True, False)
    assert 0 < response["churn_probability"] < 1


def test_gunicorn_serves_json_errors_and_logs_access_as_json(server):
    response = requests.post(
        server.url + "/predict", data="{", timeout=10, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400 and response.json()["error"] == "invalid_json"
    request_id = response.headers["X-Request-ID"]
    access = access_entries(server, {request_id})
    assert len(access) == 1
    assert access[0]["method"] == "POST" and access[0]["path"] == "/predict"
    assert access[0]["status"] == 400 and access[0]["duration_ms"] >= 0


def test_every_log_line_is_json(server):
    lines = [line for line in server.output().splitlines() if line.strip()]
    assert lines and all(line.startswith("{") for line in lines), lines[:3]
    assert {e["level"] for e in log_entries(server)} <= {"DEBUG", "INFO", "WARNING", "ERROR"}


def test_a_callers_request_id_is_kept(server, customer):
    response = requests.post(
        server.url + "/predict", json=customer, timeout=10, headers={"X-Request-ID": "trace-42"}
    )
    assert response.headers["X-Request-ID"] == "trace-42"


def test_metrics_add_up_across_workers(server, customer):
    before = settled_metric(server, PREDICTIONS)
    sent, ids = 0, set()
    # New connections until two different workers have served some (bounded).
    while sent < 300 and len(worker_pids(server, ids)) < 2:
        response = requests.post(server.url + "/predict", json=customer, timeout=10)
        ids.add(response.headers["X-Request-ID"])
        sent += 1
    assert len(worker_pids(server, ids)) == 2
    # Each worker hands its tally to the shared counters about once a second (churn/tally.py).
    after = poll(
        lambda: requests.get(server.url + "/metrics", timeout=10).text,
        lambda text: metric(text, PREDICTIONS) - before >= sent,
        timeout=10,
        interval=0.2,
    )
    assert metric(after, PREDICTIONS) - before == sent
    assert 'route="/predict"' in after and "churn_http_request_duration_seconds_bucket" in after


def test_deep_nesting_does_not_crash_a_worker(server, customer):
    response = requests.post(
        server.url + "/predict",
        data="[" * 100_000,
        timeout=10,
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400 and response.json()["error"] == "invalid_json"
    assert requests.post(server.url + "/predict", json=customer, timeout=10).status_code == 200
    assert "Worker exiting" not in server.output() and "Traceback" not in server.output()


def test_an_oversized_body_is_refused_from_its_length_without_being_sent(server):
    # Announce 100 MB but send nothing: the answer must come from the header alone.
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(
            b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100000000\r\n\r\n"
        )
        reply = ""
        while "request_entity_too_large" not in reply:  # headers and body may come apart
            chunk = sock.recv(65536).decode()
            if not chunk:
                break
            reply += chunk
    assert reply.startswith("HTTP/1.1 413")
    assert '"error":"request_entity_too_large"' in reply


def raw_exchange(port: int, request: bytes) -> str:
    """Send ``request`` as is and read the reply until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    return reply.decode(errors="replace")


@pytest.mark.parametrize("chunk", [b"zz\r\n{}\r\n0\r\n\r\n", b"2\r\n{}XX0\r\n\r\n"])
def test_a_malformed_chunked_body_gets_a_json_400_not_a_500(server, chunk):
    reply = raw_exchange(
        server.port,
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + chunk,
    )
    assert reply.startswith("HTTP/1.1 400"), reply
    assert '"error":"bad_request"' in reply and "could not be read" in reply
    assert "Traceback" not in server.output()


def test_an_oversized_chunked_body_is_refused(server):
    def chunks():
        for _ in range(5_000):
            yield b" " * 1024

    response = requests.post(
        server.url + "/predict",
        data=chunks(),
        timeout=30,
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 413 and response.json()["error"] == "request_entity_too_large"


def test_head_requests_get_headers_and_no_body(server):
    response = requests.head(server.url + "/health", timeout=10)
    assert response.status_code == 200 and response.content == b""
    assert response.headers["Content-Type"] == "application/json"


def test_a_dead_workers_live_gauges_are_dropped(tmp_path):
    # The model-info and drift-reference gauges are "live": a killed worker's file must go, or
    # /metrics would keep reporting a process that no longer exists.
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    env = {"WEB_CONCURRENCY": "1", "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    with running(gunicorn_command(), tmp_path, env=env) as server:
        (worker,) = wait_for_workers(server.process.pid, 1)
        live_files = lambda: {p.name for p in metrics_dir.glob("gauge_live*")}  # noqa: E731
        assert poll(live_files, lambda names: any(f"_{worker}.db" in n for n in names), 10, 0.1)
        os.kill(worker, signal.SIGKILL)
        remaining = poll(
            live_files, lambda names: not any(f"_{worker}.db" in n for n in names), 10, 0.1
        )
        assert not any(f"_{worker}.db" in name for name in remaining)
