"""monitoring/ for real: Prometheus scraping gunicorn (two workers, a shadow model).

Debian's `prometheus` package provides both binaries (`make system-deps` installs it).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import requests
import yaml

from bench.servers import free_port, gunicorn_command, poll, running
from churn.config import PROJECT_ROOT
from tests.conftest import make_app
from tests.liveserver import metric, worker_pids
from tests.promtools import DASHBOARD, MONITORING, RULES, tool
from tests.synthetic import raw_frame


@pytest.fixture(scope="module")
def shadow_model(tmp_path_factory) -> Path:
    """The committed model as a shadow with another threshold: the decisions then differ."""
    folder = tmp_path_factory.mktemp("shadow")
    shutil.copy(PROJECT_ROOT / "model_C=1.0.bin", folder / "shadow.bin")
    metadata = json.loads((PROJECT_ROOT / "model_C=1.0.json").read_text())
    (folder / "shadow.json").write_text(json.dumps({**metadata, "threshold": 0.3}))
    return folder / "shadow.bin"


@pytest.fixture(scope="module")
def service(tmp_path_factory, shadow_model):
    env = {"WEB_CONCURRENCY": "2", "SHADOW_MODEL_FILE": str(shadow_model)}
    with running(gunicorn_command(), tmp_path_factory.mktemp("gunicorn"), env=env) as server:
        yield server


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory, service):
    """Debian's Prometheus on loopback, scraping the service every second with our rules."""
    folder = tmp_path_factory.mktemp("prometheus")
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(path) for path in RULES]
    config["scrape_configs"][0]["static_configs"] = [{"targets": [f"127.0.0.1:{service.port}"]}]
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    command = [
        tool("prometheus"),
        f"--config.file={folder / 'prometheus.yml'}",
        f"--storage.tsdb.path={folder / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    with running(command, folder, port=port, health_path="/-/ready") as server:
        yield server


def query(prometheus, expr: str) -> list[dict]:
    response = requests.get(prometheus.url + "/api/v1/query", params={"query": expr}, timeout=10)
    body = response.json()
    assert body["status"] == "success", body
    return body["data"]["result"]


def by_feature(result: list[dict]) -> dict[str, float]:
    return {item["metric"]["feature"]: float(item["value"][1]) for item in result}


@pytest.mark.slow
@pytest.mark.prometheus
def test_prometheus_reads_the_services_psi(service, prometheus):
    # Wait for a first scrape with every drift series at 0, so increase() counts from there.
    poll(lambda: query(prometheus, "churn_drift_bin_rows_total"), bool, 30, 0.5)
    customers = raw_frame(rows=1000, seed=21).drop(columns=["Churn"])
    customers["tenure"] = (customers["tenure"].astype(int) + 20).astype(str)  # ~1 std later
    records = customers.to_dict(orient="records")
    for start in range(0, 900, 100):  # batches, then single customers: both counting paths
        response = requests.post(
            service.url + "/predict", json=records[start : start + 100], timeout=10
        )
        assert response.status_code == 200
    request_ids = set()
    for record in records[900:]:
        response = requests.post(service.url + "/predict", json=record, timeout=10)
        assert response.status_code == 200
        request_ids.add(response.headers["X-Request-ID"])
    assert len(worker_pids(service, request_ids)) == 2  # both workers' counts must add up
    drift = poll(
        lambda: requests.get(service.url + "/drift", timeout=10).json(),
        lambda body: body["features"]["tenure"]["rows"] == 1000,
        timeout=10,
        interval=0.2,
    )
    expected = {name: view["psi"] for name, view in drift["features"].items()}
    scraped = poll(
        lambda: query(prometheus, "churn_drift:rows:increase1h"),
        lambda result: result and min(float(r["value"][1]) for r in result) >= 1000,
        timeout=30,
        interval=0.5,
    )
    assert len(scraped) == len(expected)
    # One more evaluation so the PSI is computed from the same final scrape as the rows.
    computed = poll(
        lambda: by_feature(query(prometheus, "churn_drift:psi:1h")),
        lambda values: (
            set(values) == set(expected)
            and all(abs(values[f] - expected[f]) < 1e-9 for f in expected)
        ),
        timeout=15,
        interval=0.5,
    )
    assert computed == pytest.approx(expected, abs=1e-9)
    assert computed["tenure"] > 0.25
    # The alert group evaluates on its own tick: wait for it to see the PSI.
    pending = poll(
        lambda: query(prometheus, 'ALERTS{alertname="ChurnFeatureDrift", feature="tenure"}'),
        bool,
        timeout=15,
        interval=0.5,
    )
    assert pending and pending[0]["metric"]["alertstate"] == "pending"  # fires after 15 minutes


@pytest.mark.slow
@pytest.mark.prometheus
def test_prometheus_sees_both_models_and_their_agreement(service, prometheus, customer):
    roles = {r["metric"]["role"]: r["metric"] for r in query(prometheus, "churn_model_info")}
    assert set(roles) == {"live", "shadow"} and roles["shadow"]["threshold"] == "0.3"
    response = requests.post(service.url + "/predict", json=customer, timeout=10)
    version = response.headers["X-Model-Version"]
    assert version == f"{roles['live']['version']}; threshold=0.5"
    agreement = poll(
        lambda: query(prometheus, "churn_shadow:agreement:ratio1h"), bool, timeout=30, interval=0.5
    )
    assert 0 < float(agreement[0]["value"][1]) <= 1


@pytest.mark.slow
@pytest.mark.prometheus
def test_every_dashboard_query_runs_in_prometheus(prometheus):
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    for expr in expressions:
        query(prometheus, expr)  # asserts Prometheus parsed and ran it


@pytest.mark.slow
def test_the_access_log_names_the_model(service, customer):
    response = requests.post(service.url + "/predict", json=customer, timeout=10)
    request_id = response.headers["X-Request-ID"]
    version = response.headers["X-Model-Version"].split(";")[0]

    def lines() -> list[dict]:
        text = service.output().splitlines()
        entries = [json.loads(line) for line in text if line.startswith("{")]
        return [
            e
            for e in entries
            if e.get("request_id") == request_id and e["logger"] == "gunicorn.access"
        ]

    entries = poll(lines, bool, timeout=10, interval=0.1)
    assert entries[0]["model_version"] == version


@pytest.mark.slow
def test_a_failing_shadow_fails_no_request_under_gunicorn(tmp_path, shadow_model, customer):
    """Fault injection: two workers, the shadow raising on every request, 0 failed requests."""
    expected = make_app().test_client()  # the live model alone, in process
    env = {"WEB_CONCURRENCY": "2", "SHADOW_MODEL_FILE": str(shadow_model)}
    command = gunicorn_command("tests.faulty_shadow_app:app")
    payloads = [customer, [customer] * 10, *raw_frame(rows=100, seed=4).to_dict(orient="records")]
    with running(command, tmp_path, env=env) as server:
        for payload in payloads:
            answer = requests.post(server.url + "/predict", json=payload, timeout=10)
            assert answer.status_code == 200
            assert answer.content == expected.post("/predict", json=payload).get_data()
        errors = poll(
            lambda: metric(requests.get(server.url + "/metrics", timeout=10).text, SHADOW_ERRORS),
            lambda count: count >= len(payloads),
            timeout=10,
            interval=0.2,
        )
        assert errors == len(payloads)
        logged = [line for line in server.output().splitlines() if "shadow model failed" in line]
        assert 1 <= len(logged) <= 2  # once per worker, not once per request


SHADOW_ERRORS = "churn_shadow_errors_total"
