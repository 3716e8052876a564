"""The built image, run as a hardened runtime runs it: serving, health, and refusing to start.

Containers use the host's network (the private engine has no bridge), so every request stays on
127.0.0.1.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import pytest
import requests

from bench.servers import free_port, poll
from churn.config import PROJECT_ROOT
from churn.features import EXAMPLE_CUSTOMER
from tests.bareclient import run_client
from tests.containers import Container

pytestmark = [pytest.mark.slow, pytest.mark.docker]


@pytest.fixture(scope="module")
def hardened(docker_engine, image, request):
    """One container for the serving tests: read-only root, only /tmp writable, as a runtime
    that hardens containers runs it."""
    port = free_port()
    container_id = docker_engine.docker(
        "run",
        "--detach",
        "--network=host",
        "--read-only",
        "--tmpfs=/tmp",
        "--env=HOST=127.0.0.1",
        f"--env=PORT={port}",
        image.tag,
    )
    container = Container(docker_engine, container_id, port)
    request.addfinalizer(lambda: docker_engine.docker("rm", "--force", container_id, check=False))
    container.wait_until_serving()
    return container


def test_health_and_single_customer_predict(hardened):
    assert requests.get(hardened.url + "/health", timeout=10).json()["status"] == "ok"
    answer = requests.post(hardened.url + "/predict", json=EXAMPLE_CUSTOMER, timeout=10).json()
    assert 0 < answer["churn_probability"] < 1 and isinstance(answer["churn"], bool)


def test_a_batch_with_explanations(hardened):
    customers = [EXAMPLE_CUSTOMER, {**EXAMPLE_CUSTOMER, "tenure": 60, "contract": "two_year"}]
    response = requests.post(hardened.url + "/predict?explain=true", json=customers, timeout=10)
    assert response.status_code == 200, response.text
    answers = response.json()
    assert len(answers) == 2 and answers[1]["churn_probability"] < answers[0]["churn_probability"]
    assert all("contributions" in json.dumps(answer) for answer in answers)


def test_client_mistakes_are_json_errors_naming_the_field(hardened):
    bad = requests.post(
        hardened.url + "/predict", json={**EXAMPLE_CUSTOMER, "tenure": "long"}, timeout=10
    )
    assert bad.status_code in (400, 422) and "tenure" in bad.text
    assert bad.headers["Content-Type"].startswith("application/json")
    not_json = requests.post(
        hardened.url + "/predict",
        data=b"{",
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert not_json.status_code == 400 and not_json.json()
    assert requests.get(hardened.url + "/nowhere", timeout=10).status_code == 404


def test_metrics_work_on_a_read_only_root(hardened):
    requests.post(hardened.url + "/predict", json=EXAMPLE_CUSTOMER, timeout=10)
    metrics = requests.get(hardened.url + "/metrics", timeout=10).text
    assert "churn_predictions_total" in metrics


def test_the_courses_client_gets_a_decision(hardened):
    client = PROJECT_ROOT / "predict_test.py"
    result = run_client(Path(sys.executable), client, "--url", hardened.url + "/predict")
    assert result.returncode == 0, result.stderr
    assert "promo email to" in result.stdout


def test_the_service_runs_as_a_non_root_uid(docker_engine, hardened):
    uids = docker_engine.docker("top", hardened.id, "-o", "uid,pid").splitlines()[1:]
    assert uids and all(line.split()[0] == "10001" for line in uids), uids


def health(container) -> str:
    return container.state("Health.Status")


def test_the_healthcheck_turns_healthy_then_unhealthy_when_the_app_stops_answering(
    docker_engine, start_container
):
    container = start_container(
        "--health-interval=1s",
        "--health-timeout=2s",
        "--health-retries=2",
        "--health-start-period=0s",
    )
    assert poll(lambda: health(container), lambda s: s == "healthy", 60, 0.5) == "healthy"
    # Freeze gunicorn (master and workers): the port stays open but nothing answers.
    pids = [
        int(line.split()[0])
        for line in docker_engine.docker("top", container.id, "-o", "pid").splitlines()[1:]
    ]
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        assert poll(lambda: health(container), lambda s: s == "unhealthy", 60, 0.5) == "unhealthy"
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)


@pytest.mark.parametrize(
    ("option", "reason"),
    [
        ("--env=CHURN_THRESHOLD=high", "CHURN_THRESHOLD='high' should be a valid number"),
        ("--volume={tampered}:/app/model_C=1.0.bin:ro", "is not a readable model pickle"),
    ],
)
def test_a_bad_setting_or_model_stops_the_container_with_a_one_line_reason(
    docker_engine, start_container, tmp_path, option, reason
):
    tampered = tmp_path / "model.bin"
    tampered.write_bytes((PROJECT_ROOT / "model_C=1.0.bin").read_bytes()[:-40])
    tampered.chmod(0o644)
    container = start_container(option.format(tampered=tampered), wait=False)
    assert poll(lambda: container.state("Status"), lambda s: s == "exited", 60, 0.3) == "exited"
    assert container.state("ExitCode") != "0"
    lines = [line for line in container.logs().splitlines() if reason in line]
    assert len(lines) == 1 and lines[0].startswith("churn-serving cannot start:"), container.logs()
    assert "Traceback" not in container.logs()
