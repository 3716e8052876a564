"""Starting the service: what stops start-up, where it listens and what it says about it,
and the ways to start it (gunicorn.conf.py, the course's command, python predict.py)."""

from __future__ import annotations

import contextlib
import functools
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from bench.servers import free_port, gunicorn_command, poll, running, wait_for_workers
from churn.config import PROJECT_ROOT
from churn.gunicorn_hooks import listening_message
from tests.conftest import model_with_extra_field
from tests.liveserver import access_entries, log_entries


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


def test_gunicorn_names_the_fields_a_model_was_trained_with_beyond_the_codes(tmp_path):
    model_file = model_with_extra_field(tmp_path, "region")
    env = {**os.environ, "MODEL_FILE": str(model_file), "PORT": str(free_port())}
    result = subprocess.run(
        gunicorn_command(), cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60, env=env
    )
    assert result.returncode != 0
    assert "churn-serving cannot start" in result.stderr
    assert "other fields than this code declares: region (only in the model)" in result.stderr
    assert "Traceback" not in result.stderr and "KeyError" not in result.stderr
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


def test_python_predict_py_runs_a_development_server(tmp_path, customer):
    command = [sys.executable, "predict.py"]
    with running(command, tmp_path) as dev:
        response = requests.post(dev.url + "/predict", json=customer, timeout=10)
        assert response.status_code == 200
        assert "Debug mode: off" in dev.output()


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
    def in_memory(targets: list[str]) -> bool:
        return any(target.startswith("/dev/shm/") for target in targets)

    for worker in wait_for_workers(server.process.pid, 2):  # a worker opens it as it boots
        targets = poll(functools.partial(open_files, worker), in_memory, timeout=20, interval=0.1)
        assert in_memory(targets), targets


def open_files(pid: int) -> list[str]:
    """What process ``pid``'s file descriptors point at (one closed while listed is skipped)."""
    targets = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(FileNotFoundError):
            targets.append(os.readlink(fd))
    return targets


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


@pytest.mark.parametrize(
    ("addresses", "expected"),
    [
        (
            [("0.0.0.0", 9696)],
            "on http://0.0.0.0:9696 with 2 worker(s); try it at http://localhost:9696/",
        ),
        (
            [("127.0.0.1", 8000)],
            "on http://127.0.0.1:8000 with 2 worker(s); try it at http://127.0.0.1:8000/",
        ),
        ([("::", 9696)], "on http://[::]:9696 with 2 worker(s); try it at http://localhost:9696/"),
        (["/run/churn.sock"], "on unix:/run/churn.sock with 2 worker(s)"),
    ],
)
def test_the_listening_line_names_the_address_and_the_page(addresses, expected):
    assert listening_message(addresses, 2) == f"churn-serving listening {expected}"


def test_gunicorn_says_once_where_the_service_and_its_page_are(server):
    messages = [entry.get("message", "") for entry in log_entries(server)]
    listening = [m for m in messages if m.startswith("churn-serving listening on")]
    page = f"http://127.0.0.1:{server.port}/"
    assert listening == [
        f"churn-serving listening on http://127.0.0.1:{server.port} "
        f"with 2 worker(s); try it at {page}"
    ]
    assert not [m for m in messages if m.startswith("Listening at:  (")]  # gunicorn's empty one
    response = requests.get(page, timeout=10)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/html")
