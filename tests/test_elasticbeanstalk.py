"""Elastic Beanstalk configuration, checked without AWS: option names, health path, bundle."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml
from ebcli.core import fileoperations
from ebcli.operations import configops

from bench.servers import gunicorn_settings
from churn.config import PROJECT_ROOT
from tests.ebconfig import config_files, option_settings, scaling_problems
from tests.test_container_stop import DOCKER_STOP_TIMEOUT

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
    "aws:autoscaling:launchconfiguration": {
        "DisableIMDSv1",
        "EC2KeyName",
        "IamInstanceProfile",
        "ImageId",
        "InstanceType",
        "MonitoringInterval",
        "SecurityGroups",
        "SSHSourceRestriction",
        "BlockDeviceMappings",
        "RootVolumeType",
        "RootVolumeSize",
        "RootVolumeIOPS",
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
    # aws:elbv2:listener:default (port 80) and aws:elbv2:listener:listener_port share options.
    "aws:elbv2:listener": {
        "DefaultProcess",
        "ListenerEnabled",
        "Protocol",
        "Rules",
        "SSLCertificateArns",
        "SSLPolicy",
    },
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


def documented(namespace: str) -> set[str]:
    """The option names the guide lists for ``namespace`` (listener ports share one table)."""
    listener, _, port = namespace.rpartition(":")
    if listener == "aws:elbv2:listener" and (port == "default" or port.isdigit()):
        return DOCUMENTED_OPTIONS[listener]
    assert namespace in DOCUMENTED_OPTIONS, namespace
    return DOCUMENTED_OPTIONS[namespace]


def assert_documented(settings: dict[str, dict[str, object]]) -> None:
    for namespace, options in settings.items():
        if namespace != ANY_NAME:
            unknown = set(options) - documented(namespace)
            assert not unknown, f"{namespace}: {unknown}"


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


def test_the_readme_states_how_long_a_crashed_instance_keeps_getting_requests():
    process = option_settings()["aws:elasticbeanstalk:environment:process:default"]
    seconds = process["UnhealthyThresholdCount"] * process["HealthCheckInterval"]
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert f"about {seconds} s" in readme


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


# --- HTTPS, switched on by the user's certificate (Makefile: eb-https) ------------------------

# Built here so that no ARN with an account id appears in any committed file, this one included.
TEST_CERT_ARN = "arn:aws:acm:eu-west-1:" + "0" * 12 + ":certificate/test"
ARN_WITH_ACCOUNT = re.compile(r"arn:aws[\w-]*:[\w-]+:[\w-]*:\d{12}:")


def make(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def https_settings_file(tmp_path_factory) -> Path:
    """The settings file `make eb-https` writes and hands to `eb config --update`."""
    path = tmp_path_factory.mktemp("https") / "https-settings.yml"
    result = make("eb-https-settings", f"CERT_ARN={TEST_CERT_ARN}", f"EB_HTTPS_SETTINGS={path}")
    assert result.returncode == 0, result.stderr
    return path


def test_https_serves_443_with_the_certificate_and_closes_plain_http(https_settings_file):
    settings = yaml.safe_load(https_settings_file.read_text())["OptionSettings"]
    assert_documented(settings)
    https = settings["aws:elbv2:listener:443"]
    assert https["Protocol"] == "HTTPS" and https["ListenerEnabled"] == "true"
    assert https["SSLCertificateArns"] == TEST_CERT_ARN
    # Closed, not redirected: a client that sent its key over http has already leaked it.
    assert settings["aws:elbv2:listener:default"]["ListenerEnabled"] == "false"
    assert (
        option_settings()["aws:elasticbeanstalk:environment"]["LoadBalancerType"] == "application"
    )


def test_the_eb_cli_turns_the_file_into_these_option_settings(https_settings_file, monkeypatch):
    sent: dict = {}
    monkeypatch.setattr(
        configops.commonops,
        "update_environment",
        lambda env, changes, *a, **k: sent.update(env=env, changes=changes),
    )
    configops.modify_environment_configuration("env", f"file://{https_settings_file}", True)
    assert sent["env"] == "env"
    assert {(c["Namespace"], c["OptionName"], c["Value"]) for c in sent["changes"]} == {
        ("aws:elbv2:listener:443", "ListenerEnabled", "true"),
        ("aws:elbv2:listener:443", "Protocol", "HTTPS"),
        ("aws:elbv2:listener:443", "SSLCertificateArns", TEST_CERT_ARN),
        ("aws:elbv2:listener:default", "ListenerEnabled", "false"),
    }


def test_make_eb_https_needs_a_certificate_arn(tmp_path):
    result = make("eb-https-settings", f"EB_HTTPS_SETTINGS={tmp_path / 'x.yml'}")
    assert result.returncode != 0 and "CERT_ARN=arn:aws:acm:" in result.stderr
    assert not (tmp_path / "x.yml").exists()


def test_eb_predict_uses_https_on_the_domain_when_one_is_given():
    with_domain = make("-n", "eb-predict", "DOMAIN=churn.example.com").stdout
    assert '--url "https://churn.example.com/predict"' in with_domain
    assert '--url "http://' in make("-n", "eb-predict").stdout


def test_no_certificate_arn_or_account_id_is_committed():
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    leaks = [
        name
        for name in tracked
        if (PROJECT_ROOT / name).is_file()
        and ARN_WITH_ACCOUNT.search((PROJECT_ROOT / name).read_text(errors="ignore"))
    ]
    assert leaks == []
    assert ARN_WITH_ACCOUNT.search(TEST_CERT_ARN)  # the pattern does find one
