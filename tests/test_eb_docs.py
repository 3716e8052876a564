"""docs/elastic-beanstalk.md, held to the configuration and the service it describes: the routes
it calls open, the instance profile's policy (parliament), the way to change settings under
Immutable deploys (through the EB CLI's own parser), and the cost arithmetic, from
.ebextensions and from an access line gunicorn really writes."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from parliament import analyze_policy_string

from bench.servers import gunicorn_command, running
from churn.config import PROJECT_ROOT
from churn.features import EXAMPLE_CUSTOMER
from tests.ebconfig import assert_documented, option_settings
from tests.test_eb_https import sent_by_eb_config

DOCS = PROJECT_ROOT / "docs" / "elastic-beanstalk.md"
# AWS's figures for the instance type the group runs (EC2 "Burstable performance instances";
# us-east-1 on-demand Linux prices, as the page states them).
T3_SMALL = {"vcpus": 2, "baseline_per_vcpu": 0.20, "hourly": 0.0208}
SURPLUS_PER_VCPU_HOUR = 0.05
REQUESTS_PER_SECOND = 1_000


def docs() -> str:
    return DOCS.read_text()


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", docs(), flags=re.DOTALL)


def test_the_routes_the_http_only_step_leaves_open_do_answer_without_a_key(app):
    section = docs().split("## The first, HTTP-only step", 1)[1].split("\n## ", 1)[0]
    named = re.findall(r"`(/\w+)`", section)
    assert {"/model", "/drift", "/metrics"} <= set(named)
    client = app.test_client()  # no API_KEY: the HTTP-only step
    for path in set(named) - {"/predict"}:
        assert client.get(path).status_code == 200, path


def test_the_instance_profile_may_read_the_api_key_and_nothing_else():
    (policy,) = [json.loads(b) for b in blocks("json")]
    # Filled in as the page says (an account id is built here, never committed: test_eb_https).
    policy_text = json.dumps(policy).replace("REGION", "eu-west-1")
    policy_text = policy_text.replace("ACCOUNT_ID", "0" * 12)
    assert [f.issue for f in analyze_policy_string(policy_text).findings] == []
    (statement,) = policy["Statement"]
    assert statement["Action"] == "secretsmanager:GetSecretValue"
    assert statement["Resource"].startswith("arn:aws:secretsmanager:")
    assert "*" not in statement["Resource"].removesuffix("-*")  # one secret, not all


def test_the_docs_say_how_to_change_settings_under_immutable_deploys(tmp_path, monkeypatch):
    deployment = option_settings()["aws:elasticbeanstalk:command"]["DeploymentPolicy"]
    assert deployment == "Immutable"  # the premise of the section
    text = docs()
    assert "eb config" in text and "Immutable" in text
    (rolling,) = [b for b in blocks("yaml") if "DeploymentPolicy" in b]
    settings = yaml.safe_load(rolling)["OptionSettings"]
    assert_documented(settings)
    path = tmp_path / "rolling.yml"
    path.write_text(rolling)
    (change,) = sent_by_eb_config(path, monkeypatch)
    assert change[1:] == ("DeploymentPolicy", "RollingWithAdditionalBatch")


def test_the_t3_surplus_figure_follows_from_the_scaling_settings():
    settings = option_settings()
    assert settings["aws:ec2:instances"]["InstanceTypes"] == "t3.small"
    threshold = settings["aws:autoscaling:trigger"]["UpperThreshold"] / 100
    surplus = T3_SMALL["vcpus"] * (threshold - T3_SMALL["baseline_per_vcpu"])
    ratio = surplus * SURPLUS_PER_VCPU_HOUR / T3_SMALL["hourly"]
    assert f"{ratio:.1f}× the instance's" in docs()
    assert f"above {threshold:.0%}" in docs()


def test_the_log_retention_after_terminate_is_the_configured_one():
    logs = option_settings()["aws:elasticbeanstalk:cloudwatch:logs"]
    assert logs["DeleteOnTerminate"] is False
    assert f"keeps the environment's log groups for {logs['RetentionInDays']}" in docs()


def access_line(log: Path, deadline: float) -> str:
    """The first /predict access line gunicorn writes (workers flush them about once a second)."""
    while time.monotonic() < deadline:
        for line in log.read_text().splitlines():
            if '"path":"/predict"' in line:
                return line
        time.sleep(0.2)
    pytest.fail(f"no access line in {log}")


def test_the_log_volume_is_computed_from_a_real_access_line(tmp_path):
    stated = int(re.search(r"a `/predict` line is\s+(\d+) bytes", docs()).group(1))
    env = {"WEB_CONCURRENCY": "1", "GUNICORN_ACCESSLOG": "-"}
    with running(gunicorn_command(), tmp_path, env=env) as server:
        request = urllib.request.Request(
            f"http://127.0.0.1:{server.port}/predict",
            data=json.dumps(EXAMPLE_CUSTOMER).encode(),
            headers={"Content-Type": "application/json", "User-Agent": "python-requests/2.32"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200
        measured = len(access_line(server.log, time.monotonic() + 30).encode()) + 1  # newline
    assert abs(measured - stated) <= 0.1 * stated, measured
    per_day = REQUESTS_PER_SECOND * 86_400 * stated / 1e9
    assert f"**{per_day:.1f} GB a day**" in docs()
