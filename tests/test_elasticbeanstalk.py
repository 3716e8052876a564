"""Elastic Beanstalk configuration, checked without AWS: option names, health path, bundle."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml
from ebcli.core import fileoperations

from bench.servers import gunicorn_settings
from churn.config import PROJECT_ROOT
from tests.containers import DOCKER_STOP_TIMEOUT
from tests.ebconfig import (
    ANY_NAME,
    assert_documented,
    config_files,
    option_settings,
    scaling_problems,
)

MUST_BE_IN_BUNDLE = {
    "Dockerfile",
    ".dockerignore",
    "Pipfile",
    "Pipfile.lock",
    "gunicorn.conf.py",
    "predict.py",
    "model_C=1.0.bin",
    "model_C=1.0.json",
    "churn/app.py",
    "churn/predictor.py",
    # The instance's nginx settings (docs/proxy.md): without them EB's nginx refuses bodies
    # over 1 MB and answers its errors in HTML.
    ".platform/nginx/conf.d/churn.conf",
    ".platform/nginx/conf.d/elasticbeanstalk/churn.conf",
}
MUST_NOT_BE_IN_BUNDLE = ("data/", ".venv/", ".git/", "tests/", "bench/", ".elasticbeanstalk/")


def test_every_config_file_parses_with_option_settings():
    assert config_files()
    for path in config_files():
        document = yaml.safe_load(path.read_text())
        assert isinstance(document, dict) and set(document) == {"option_settings"}, path.name


def test_every_option_is_documented():
    assert_documented(option_settings())


def test_the_required_concerns_are_configured():
    settings = option_settings()
    assert settings["aws:elasticbeanstalk:environment"]["EnvironmentType"] == "LoadBalanced"
    assert settings["aws:elasticbeanstalk:healthreporting:system"]["SystemType"] == "enhanced"
    scaling = settings["aws:autoscaling:asg"]
    assert 1 <= scaling["MinSize"] < scaling["MaxSize"]
    assert settings["aws:autoscaling:trigger"]["MeasureName"] == "CPUUtilization"
    assert settings["aws:elasticbeanstalk:command"]["DeploymentPolicy"] in {
        "Immutable",
        "Rolling",
        "RollingWithAdditionalBatch",
    }
    assert settings["aws:elasticbeanstalk:cloudwatch:logs"]["StreamLogs"] is True
    assert "WEB_CONCURRENCY" in settings[ANY_NAME]


def test_the_scaling_rule_can_fire_and_the_instance_type_is_used():
    assert scaling_problems(option_settings()) == []


def with_changes(changes: dict[str, dict[str, object]]) -> dict[str, dict[str, object]]:
    settings = {namespace: dict(options) for namespace, options in option_settings().items()}
    for namespace, options in changes.items():
        settings.setdefault(namespace, {}).update(options)
    return settings


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        # 1-minute periods on an instance metric with EC2's default 5-minute monitoring
        ({"aws:autoscaling:launchconfiguration": {"MonitoringInterval": "5 minute"}}, "every 5"),
        ({"aws:autoscaling:trigger": {"BreachDuration": 3}}, "BreachDuration 3"),
        (
            {"aws:autoscaling:trigger": {"Period": 2, "EvaluationPeriods": 2, "BreachDuration": 5}},
            "BreachDuration 5",
        ),
        ({"aws:ec2:instances": {"InstanceTypes": "t3.small,t3a.small"}}, "only the first"),
        ({"aws:autoscaling:trigger": {"MeasureName": "RequestCountPerTarget"}}, "not a trigger"),
    ],
)
def test_a_trigger_or_type_list_that_cannot_work_is_caught(changes, problem):
    problems = scaling_problems(with_changes(changes))
    assert any(problem in p for p in problems), problems


def test_spot_may_list_fallback_types():
    spot = {"aws:ec2:instances": {"EnableSpot": "true", "InstanceTypes": "t3.small,t3a.small"}}
    assert scaling_problems(with_changes(spot)) == []


def test_eb_leaves_the_decision_threshold_to_the_model():
    # A CHURN_THRESHOLD here would override the threshold saved with each retrained model.
    assert "CHURN_THRESHOLD" not in option_settings()[ANY_NAME]


def test_health_check_path_is_a_route_of_the_app(app):
    path = option_settings()["aws:elasticbeanstalk:environment:process:default"]["HealthCheckPath"]
    response = app.test_client().get(path)
    assert response.status_code == 200 and response.get_json()["status"] == "ok"


def test_the_stop_timeouts_nest_deregistration_graceful_engine():
    # A planned stop on EB (scale-in, an Immutable deploy retiring old instances): the load
    # balancer deregisters the instance and gives its in-flight requests DeregistrationDelay
    # seconds; then the container is stopped: SIGTERM, gunicorn gives what is still in flight
    # graceful_timeout and exits, and the engine SIGKILLs after its stop timeout. So gunicorn
    # must be done before the engine's SIGKILL, and a request must get no less from the load
    # balancer than gunicorn promises it. graceful_timeout is read from gunicorn's settings as
    # gunicorn.conf.py computes them with no environment; the engine's timeout is the one the
    # container tests stop it with.
    graceful = gunicorn_settings({})["graceful_timeout"]
    process = option_settings()["aws:elasticbeanstalk:environment:process:default"]
    assert graceful < DOCKER_STOP_TIMEOUT
    assert process["DeregistrationDelay"] >= graceful


def test_the_docs_state_how_long_a_crashed_instance_keeps_getting_requests():
    process = option_settings()["aws:elasticbeanstalk:environment:process:default"]
    seconds = process["UnhealthyThresholdCount"] * process["HealthCheckInterval"]
    deploying = (PROJECT_ROOT / "docs" / "deploying.md").read_text()
    assert f"about {seconds} s" in deploying


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, monkeypatch_module) -> Path:
    """The source bundle, zipped by the EB CLI's own code with its .ebignore handling."""
    monkeypatch_module.setattr(
        fileoperations.ProjectRoot, "traverse", staticmethod(lambda: os.chdir(PROJECT_ROOT))
    )
    ignore = fileoperations.get_ebignore_list()
    assert ignore is not None, ".ebignore is missing: eb would fall back to git archive"
    location = tmp_path_factory.mktemp("eb") / "bundle.zip"
    fileoperations.zip_up_folder(str(PROJECT_ROOT), str(location), ignore_list=ignore)
    return location


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_bundle_has_what_the_container_needs_and_nothing_it_must_not(bundle, capsys):
    with zipfile.ZipFile(bundle) as archive:
        names = {
            Path(n).as_posix().removeprefix("./") for n in archive.namelist() if not n.endswith("/")
        }
    assert names >= MUST_BE_IN_BUNDLE, MUST_BE_IN_BUNDLE - names
    assert {f".ebextensions/{p.name}" for p in config_files()} <= names
    for prefix in MUST_NOT_BE_IN_BUNDLE:
        assert not any(n.startswith(prefix) for n in names), prefix
    assert not any(n.endswith((".csv", ".pyc")) for n in names)
    with capsys.disabled():
        print(f"\n  EB source bundle: {len(names)} files, {bundle.stat().st_size / 1024:.0f} KiB")


def test_eb_cli_is_installed_in_the_dev_environment():
    eb = Path(sys.executable).parent / "eb"
    result = subprocess.run([str(eb), "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.startswith("EB CLI 3.")
