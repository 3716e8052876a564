"""The real thing: gunicorn with gunicorn.conf.py and the committed model, over loopback HTTP."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from bench.servers import free_port, gunicorn_command, poll, running, wait_for_workers
from churn.config import PROJECT_ROOT


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with running(
        gunicorn_command(), tmp_path_factory.mktemp("gunicorn"), env={"WEB_CONCURRENCY": "2"}
    ) as live:
        yield live


def test_the_course_client_code_works_unchanged(server, customer):
    # What the course's predict-test.py does, word for word in spirit: requests.post(...).json()
    response = requests.post(server.url + "/predict", json=customer, timeout=10).json()
    assert response["churn"] in (True, False)
    assert 0 < response["churn_probability"] < 1


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
    assert {e["level"] for e in log_entries(server)} <= {"debug", "info", "warning", "error"}


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


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "cannot read model file"),
        (b"\x80\x05truncated", "not a readable model pickle"),
        (b"id,name\n1,x\n", "not a readable model pickle"),
    ],
)
def test_gunicorn_refuses_to_start_on_a_bad_model(tmp_path, content, expected):
    model_file = tmp_path / "model.bin"
    if content is not None:
        model_file.write_bytes(content)
    env = {**os.environ, "MODEL_FILE": str(model_file), "PORT": str(free_port())}
    result = subprocess.run(
        gunicorn_command(), cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60, env=env
    )
    assert result.returncode != 0
    assert "churn-serving cannot start" in result.stderr and expected in result.stderr
    assert "Booting worker" not in result.stderr


@pytest.mark.parametrize(
    ("name", "value"), [("MAX_BATCH_SIZE", "2.5"), ("GUNICORN_THREADS", "many")]
)
def test_gunicorn_refuses_to_start_on_a_bad_setting(name, value):
    env = {**os.environ, name: value, "PORT": str(free_port())}
    result = subprocess.run(
        gunicorn_command(), cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60, env=env
    )
    assert result.returncode != 0
    assert f"churn-serving cannot start: {name}={value!r}" in result.stderr
    assert "Booting worker" not in result.stderr


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


def test_python_predict_py_runs_a_development_server(tmp_path, customer):
    command = [sys.executable, "predict.py"]
    with running(command, tmp_path) as dev:
        response = requests.post(dev.url + "/predict", json=customer, timeout=10)
        assert response.status_code == 200
        assert "Debug mode: off" in dev.output()


def test_head_requests_get_headers_and_no_body(server):
    response = requests.head(server.url + "/health", timeout=10)
    assert response.status_code == 200 and response.content == b""
    assert response.headers["Content-Type"] == "application/json"


def listening_sockets(port: int) -> int:
    """How many sockets listen on ``port`` (IPv4), from the kernel's table."""
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    listen_state = "0A"
    return sum(
        1
        for row in rows
        if row.split()[1].endswith(f":{port:04X}") and row.split()[3] == listen_state
    )


def wait_for_listeners(port: int, expected: int, timeout: float = 10) -> int:
    # The second worker may still be booting.
    return poll(lambda: listening_sockets(port), lambda count: count == expected, timeout, 0.1)


def test_each_worker_listens_on_its_own_socket(server):
    # SO_REUSEPORT: the kernel spreads connections over the workers' sockets, so no worker can
    # take every keep-alive connection while another sits idle (gunicorn.conf.py).
    assert wait_for_listeners(server.port, 2) == 2


def test_the_shared_socket_is_one_variable_away(tmp_path):
    env = {"WEB_CONCURRENCY": "2", "GUNICORN_REUSE_PORT": "0"}
    with running(gunicorn_command(), tmp_path, env=env) as shared:
        wait_for_workers(shared.process.pid, 2)  # both booted: still the master's one socket
        assert listening_sockets(shared.port) == 1


def test_a_second_server_on_a_taken_port_refuses_to_start(server):
    env = {**os.environ, "PORT": str(server.port), "HOST": "127.0.0.1"}
    result = subprocess.run(
        gunicorn_command(), cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60, env=env
    )
    assert result.returncode != 0
    assert f"cannot listen on 127.0.0.1:{server.port}" in result.stderr
    assert "Booting worker" not in result.stderr
    assert requests.get(server.url + "/health", timeout=10).ok  # the first one is untouched


def test_worker_heartbeats_live_in_memory_not_on_disk(server):
    # gunicorn touches each worker's heartbeat file on every loop; on a disk-backed /tmp in a
    # container that can stall workers, so gunicorn.conf.py puts it on /dev/shm.
    for worker in wait_for_workers(server.process.pid, 2):
        targets = [os.readlink(fd) for fd in Path(f"/proc/{worker}/fd").iterdir()]
        assert any(target.startswith("/dev/shm/") for target in targets), targets


def test_the_course_command_gets_this_projects_settings(tmp_path, customer):
    # gunicorn reads ./gunicorn.conf.py by itself; the README says the course's command is served
    # with this project's settings, its --bind winning over the file.
    command = [sys.executable, "-m", "gunicorn", "--bind", "127.0.0.1:{port}", "predict:app"]
    env = {"WEB_CONCURRENCY": "2"}
    with running(command, tmp_path, env=env, port_template="{port}") as course:
        response = requests.post(course.url + "/predict", json=customer, timeout=10)
        assert response.ok
        assert wait_for_listeners(course.port, 2) == 2  # reuse_port, from the file
        access = access_entries(course, {response.headers["X-Request-ID"]})
        assert access and access[0]["path"] == "/predict"  # JSON access logs, from the file
