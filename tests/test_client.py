"""predict_test.py as users copy it: alone in an empty folder, with only `requests` installed.

Every run here uses a fresh virtual environment that holds requests and its dependencies and
nothing else (no churn package, no numpy), against real gunicorn, a gunicorn killed mid-request,
or a stand-in server that answers what a load balancer would. All on loopback.
"""

from __future__ import annotations

import http.server
import importlib.metadata
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from packaging.requirements import Requirement

import predict_test
from bench.servers import free_port, gunicorn_command, poll, running
from churn.config import PROJECT_ROOT
from churn.features import EXAMPLE_CUSTOMER, EXAMPLE_CUSTOMER_ID

CLIENT_PACKAGE = "requests"


def distributions_needed(name: str) -> set[str]:
    """``name`` and everything it requires (extras left out), as installed here."""
    needed, todo = set(), [name]
    while todo:
        current = todo.pop()
        if current in needed:
            continue
        needed.add(current)
        for line in importlib.metadata.requires(current) or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return needed


def link_distribution(name: str, site_packages: Path) -> None:
    """Make one installed distribution (its top-level files and metadata) importable there."""
    files = importlib.metadata.distribution(name).files or []
    tops = {f.parts[0] for f in files if not f.parts[0].startswith("..")}
    for top in tops - {"__pycache__"}:
        source = Path(importlib.metadata.distribution(name).locate_file(top))
        if source.exists() and not (site_packages / top).exists():
            (site_packages / top).symlink_to(source)


@pytest.fixture(scope="session")
def bare_python(tmp_path_factory) -> Path:
    """A new venv (no pip, no system packages) whose site-packages holds only requests & deps."""
    home = tmp_path_factory.mktemp("bare-venv")
    venv.EnvBuilder(with_pip=False, symlinks=True).create(home)
    python = home / "bin" / "python"
    site_packages = Path(
        subprocess.check_output(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True
        ).strip()
    )
    for name in distributions_needed(CLIENT_PACKAGE):
        link_distribution(name, site_packages)
    return python


@pytest.fixture(scope="session")
def copied_client(tmp_path_factory) -> Path:
    """predict_test.py, copied alone into an empty folder."""
    folder = tmp_path_factory.mktemp("marketing-service")
    shutil.copy(PROJECT_ROOT / "predict_test.py", folder)
    return folder / "predict_test.py"


def client_command(python: Path, script: Path, *args: str) -> list[str]:
    return [str(python), script.name, *args]


def run_client(python: Path, script: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        client_command(python, script, *args),
        cwd=script.parent,
        env=bare_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def start_client(python: Path, script: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        client_command(python, script, *args),
        cwd=script.parent,
        env=bare_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def bare_env() -> dict[str, str]:
    """No PYTHONPATH or API_KEY from the test run leaks into the copied client."""
    return {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp")}


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


class StandIn(http.server.BaseHTTPRequestHandler):
    """Answers each POST with the next status of the server's script (then 200 with a result)."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        statuses = self.server.script  # type: ignore[attr-defined]
        self.server.seen += 1  # type: ignore[attr-defined]
        status = statuses.pop(0) if statuses else 200
        body = json.dumps(
            {"churn_probability": 0.25, "churn": False}
            if status == 200
            else {"error": "x", "message": f"scripted {status}"}
        ).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture()
def stand_in() -> Iterator[http.server.HTTPServer]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
    server.script, server.seen = [], 0  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def stand_in_url(server: http.server.HTTPServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/predict"


@pytest.mark.parametrize("status", [502, 503, 504])
def test_a_gateway_error_is_retried(bare_python, copied_client, stand_in, status):
    stand_in.script = [status, status]
    result = run_client(bare_python, copied_client, "--url", stand_in_url(stand_in))
    assert result.returncode == 0, result.stderr
    assert stand_in.seen == 3


@pytest.mark.parametrize("status", [400, 401, 404, 422, 429])
def test_a_4xx_is_never_retried(bare_python, copied_client, stand_in, status):
    stand_in.script = [status]
    result = run_client(bare_python, copied_client, "--url", stand_in_url(stand_in))
    assert result.returncode == 1 and f"HTTP {status}" in result.stderr
    assert stand_in.seen == 1


def test_retries_0_turns_retrying_off(bare_python, copied_client, stand_in):
    stand_in.script = [503]
    result = run_client(
        bare_python, copied_client, "--retries", "0", "--url", stand_in_url(stand_in)
    )
    assert result.returncode == 1 and "HTTP 503" in result.stderr
    assert stand_in.seen == 1


def test_retrying_stops_within_the_time_budget(bare_python, copied_client, stand_in):
    stand_in.script = [503] * 100
    started = time.monotonic()
    result = run_client(
        bare_python, copied_client, "--timeout", "2", "--url", stand_in_url(stand_in)
    )
    assert result.returncode == 1 and "HTTP 503" in result.stderr
    assert 1 < stand_in.seen < 100
    assert time.monotonic() - started < 2 + 5  # the budget, plus interpreter start-up


def test_backoff_grows_with_jitter_and_stays_bounded():
    waits = [
        [predict_test.backoff(retry) for retry in range(predict_test.DEFAULT_RETRIES)]
        for _ in range(200)
    ]
    firsts = {round(w[0], 6) for w in waits}
    assert len(firsts) > 100  # jitter: clients that failed together do not retry together

    def mean(retry: int) -> float:
        return sum(w[retry] for w in waits) / len(waits)

    assert mean(2) > 1.5 * mean(1) > 2.25 * mean(0) > 0  # exponential at first...
    assert max(max(w) for w in waits) <= predict_test.BACKOFF_CAP  # ...then capped
    # The default retries' waits add up to under the default time budget.
    assert max(sum(w) for w in waits) < predict_test.DEFAULT_TIMEOUT


def test_nothing_listening_fails_in_one_line_with_retries_off(bare_python, copied_client):
    url = f"http://127.0.0.1:{free_port()}/predict"
    result = run_client(bare_python, copied_client, "--retries", "0", "--url", url)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "cannot reach" in result.stderr


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
