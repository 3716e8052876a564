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
from tests.ebconfig import config_files, option_settings

# Documented namespaces and option names, from the AWS Elastic Beanstalk Developer Guide,
# "General options for all environments":
# https://docs.aws.amazon.com/elasticbeanstalk/latest/dg/command-options-general.html
DOCUMENTED_OPTIONS: dict[str, set[str]] = {
    "aws:autoscaling:asg": {
        "Availability Zones",
        "Cooldown",
        "Custom Availability Zones",
        "MinSize",
        "MaxSize",
    },
    "aws:autoscaling:trigger": {
        "BreachDuration",
        "LowerBreachScaleIncrement",
        "LowerThreshold",
        "MeasureName",
        "Period",
        "EvaluationPeriods",
        "Statistic",
        "Unit",
        "UpperBreachScaleIncrement",
        "UpperThreshold",
    },
    "aws:ec2:instances": {
        "EnableSpot",
        "InstanceTypes",
        "SpotFleetOnDemandBase",
        "SpotFleetOnDemandAboveBasePercentage",
        "SpotMaxPrice",
    },
    "aws:elasticbeanstalk:environment": {
        "EnvironmentType",
        "ServiceRole",
        "LoadBalancerType",
        "LoadBalancerIsShared",
    },
    "aws:elasticbeanstalk:environment:process:default": {
        "DeregistrationDelay",
        "HealthCheckInterval",
        "HealthCheckPath",
        "HealthCheckTimeout",
        "HealthyThresholdCount",
        "MatcherHTTPCode",
        "Port",
        "Protocol",
        "StickinessEnabled",
        "StickinessLBCookieDuration",
        "StickinessType",
        "UnhealthyThresholdCount",
    },
    "aws:elasticbeanstalk:healthreporting:system": {
        "SystemType",
        "ConfigDocument",
        "HealthCheckSuccessThreshold",
        "EnhancedHealthAuthEnabled",
    },
    "aws:elasticbeanstalk:command": {
        "DeploymentPolicy",
        "Timeout",
        "BatchSizeType",
        "BatchSize",
        "IgnoreHealthCheck",
    },
    "aws:elasticbeanstalk:cloudwatch:logs": {"StreamLogs", "DeleteOnTerminate", "RetentionInDays"},
}
ANY_NAME = "aws:elasticbeanstalk:application:environment"  # environment properties: any name
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
}
MUST_NOT_BE_IN_BUNDLE = ("data/", ".venv/", ".git/", "tests/", "bench/", ".elasticbeanstalk/")


def test_every_config_file_parses_with_option_settings():
    assert config_files()
    for path in config_files():
        document = yaml.safe_load(path.read_text())
        assert isinstance(document, dict) and set(document) == {"option_settings"}, path.name


def test_every_option_is_documented():
    for namespace, options in option_settings().items():
        if namespace == ANY_NAME:
            continue
        assert namespace in DOCUMENTED_OPTIONS, namespace
        unknown = set(options) - DOCUMENTED_OPTIONS[namespace]
        assert not unknown, f"{namespace}: {unknown}"


def test_the_required_concerns_are_configured():
    settings = option_settings()
    assert settings["aws:elasticbeanstalk:environment"]["EnvironmentType"] == "LoadBalanced"
    assert settings["aws:elasticbeanstalk:healthreporting:system"]["SystemType"] == "enhanced"
    scaling = settings["aws:autoscaling:asg"]
    assert 1 <= scaling["MinSize"] < scaling["MaxSize"]
    assert settings["aws:autoscaling:trigger"]["MeasureName"] == "CPUUtilization"
    trigger = settings["aws:autoscaling:trigger"]
    assert trigger["BreachDuration"] == trigger["Period"] * trigger["EvaluationPeriods"]
    assert settings["aws:elasticbeanstalk:command"]["DeploymentPolicy"] in {
        "Immutable",
        "Rolling",
        "RollingWithAdditionalBatch",
    }
    assert settings["aws:ec2:instances"]["InstanceTypes"]
    assert settings["aws:elasticbeanstalk:cloudwatch:logs"]["StreamLogs"] is True
    assert {"CHURN_THRESHOLD", "WEB_CONCURRENCY"} <= set(settings[ANY_NAME])


def test_health_check_path_is_a_route_of_the_app(app):
    path = option_settings()["aws:elasticbeanstalk:environment:process:default"]["HealthCheckPath"]
    response = app.test_client().get(path)
    assert response.status_code == 200 and response.get_json()["status"] == "ok"


def test_deregistration_delay_covers_the_graceful_timeout():
    gunicorn = gunicorn_settings()
    process = option_settings()["aws:elasticbeanstalk:environment:process:default"]
    assert process["DeregistrationDelay"] >= gunicorn["graceful_timeout"]


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
