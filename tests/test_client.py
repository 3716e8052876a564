"""predict_test.py as users copy it: alone in an empty folder, with only `requests` installed.

Every run here uses a fresh virtual environment that holds requests and its dependencies and
nothing else (no churn package, no numpy), against real gunicorn, a gunicorn killed mid-request,
or a stand-in server that answers what a load balancer would. All on loopback.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

import predict_test
from bench.servers import free_port, gunicorn_command, poll, running
from churn.config import PROJECT_ROOT
from churn.features import EXAMPLE_CUSTOMER, EXAMPLE_CUSTOMER_ID
from tests.bareclient import bare_env, run_client, start_client


def test_the_clients_customer_is_the_courses_customer():
    assert predict_test.CUSTOMER == EXAMPLE_CUSTOMER
    assert predict_test.CUSTOMER_ID == EXAMPLE_CUSTOMER_ID


def test_the_bare_environment_has_requests_and_nothing_of_the_project(bare_python, copied_client):
    probe = "import importlib.util as u; print([bool(u.find_spec(m)) for m in {}])"
    modules = ["requests", "numpy", "churn", "flask"]
    result = subprocess.run(
        [bare_python, "-c", probe.format(modules)],
        cwd=copied_client.parent,
        env=bare_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(result.stdout.strip().lower()) == [True, False, False, False]
    assert [p.name for p in copied_client.parent.iterdir()] == ["predict_test.py"]


def test_the_copied_client_gets_the_services_decision(bare_python, copied_client, server):
    result = run_client(bare_python, copied_client, "--url", server.url + "/predict")
    assert result.returncode == 0, result.stderr
    direct = requests.post(server.url + "/predict", json=EXAMPLE_CUSTOMER, timeout=10).json()
    assert json.loads(result.stdout.splitlines()[0]) == direct
    decision = "sending" if direct["churn"] else "not sending"
    assert result.stdout.splitlines()[1] == f"{decision} promo email to {EXAMPLE_CUSTOMER_ID}"


def test_the_copied_client_reads_a_customer_file_and_id(
    bare_python, copied_client, server, raw_customer, tmp_path
):
    customer_file = tmp_path / "customer.json"
    customer_file.write_text(json.dumps({**raw_customer, "tenure": 1}))
    result = run_client(
        bare_python,
        copied_client,
        *("--url", server.url + "/predict", "--customer", str(customer_file)),
        *("--customer-id", "c-42"),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.rstrip().endswith("promo email to c-42")


def test_the_copied_client_fails_in_one_line_on_an_error_status(
    bare_python, copied_client, server, tmp_path
):
    customer_file = tmp_path / "bad.json"
    customer_file.write_text("{}")
    result = run_client(
        bare_python,
        copied_client,
        "--url",
        server.url + "/predict",
        "--customer",
        str(customer_file),
    )
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "HTTP 422" in result.stderr


def test_the_copied_client_waits_for_a_server_that_comes_up_a_second_later(
    bare_python, copied_client, tmp_path
):
    port = free_port()
    client = start_client(bare_python, copied_client, "--url", f"http://127.0.0.1:{port}/predict")
    time.sleep(1)
    assert client.poll() is None, client.communicate()  # still retrying, not failed at once
    with running(gunicorn_command(), tmp_path, env={"WEB_CONCURRENCY": "1"}, port=port):
        stdout, stderr = client.communicate(timeout=30)
    assert client.returncode == 0, stderr
    assert "promo email to xyz-123" in stdout


def established_connections(port: int) -> int:
    """TCP connections to ``port`` in the ESTABLISHED state (IPv4), from the kernel's table."""
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return sum(
        1 for row in rows if row.split()[1].endswith(f":{port:04X}") and row.split()[3] == "01"
    )


def test_the_copied_client_survives_a_server_killed_mid_request(
    bare_python, copied_client, tmp_path
):
    with running(gunicorn_command(), tmp_path, env={"WEB_CONCURRENCY": "1"}) as doomed:
        # Frozen, the server's kernel still accepts the connection and takes the request.
        os.killpg(doomed.process.pid, signal.SIGSTOP)
        client = start_client(bare_python, copied_client, "--url", doomed.url + "/predict")
        connected = poll(lambda: established_connections(doomed.port), bool, 10, 0.02)
        assert connected, "the client never connected"
        os.killpg(doomed.process.pid, signal.SIGKILL)  # dies holding the request
        doomed.process.wait()
        with running(gunicorn_command(), tmp_path, env={"WEB_CONCURRENCY": "1"}, port=doomed.port):
            stdout, stderr = client.communicate(timeout=30)
    assert client.returncode == 0, stderr
    assert "promo email to xyz-123" in stdout


def test_a_key_sent_over_plain_http_to_another_host_is_warned_about(capsys):
    predict_test.warn_if_key_travels_in_clear("http://churn.example.com/predict", "k")
    assert "unencrypted" in capsys.readouterr().err
    for url in ("https://churn.example.com/predict", "http://127.0.0.1:9696/predict"):
        predict_test.warn_if_key_travels_in_clear(url, "k")
    predict_test.warn_if_key_travels_in_clear("http://churn.example.com/predict", None)
    assert capsys.readouterr().err == ""


def test_the_course_runs_it_with_the_projects_interpreter_too(server):
    result = subprocess.run(
        [sys.executable, "predict_test.py", "--url", server.url + "/predict"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
