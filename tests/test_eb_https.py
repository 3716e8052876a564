"""HTTPS and the API key on Elastic Beanstalk (Makefile: eb-https, eb-api-key), checked
without AWS: the settings files, what the EB CLI sends, and that no ARN is committed."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml
from ebcli.operations import configops

from churn.config import PROJECT_ROOT
from tests.ebconfig import ANY_NAME, SECRETS, assert_documented, option_settings

# Built here so that no ARN with an account id appears in any committed file, this one included.
TEST_CERT_ARN = "arn:aws:acm:eu-west-1:" + "0" * 12 + ":certificate/test"
TEST_SECRET_ARN = "arn:aws:secretsmanager:eu-west-1:" + "0" * 12 + ":secret:churn-api-key-AbCdEf"
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
    # An explicit TLS policy from ELB's TLS 1.3 family (minimum TLS 1.2), not the LB's default.
    assert https["SSLPolicy"].startswith("ELBSecurityPolicy-TLS13-1-")
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
    policy = yaml.safe_load(https_settings_file.read_text())["OptionSettings"]
    assert {(c["Namespace"], c["OptionName"], c["Value"]) for c in sent["changes"]} == {
        ("aws:elbv2:listener:443", "ListenerEnabled", "true"),
        ("aws:elbv2:listener:443", "Protocol", "HTTPS"),
        ("aws:elbv2:listener:443", "SSLCertificateArns", TEST_CERT_ARN),
        ("aws:elbv2:listener:443", "SSLPolicy", policy["aws:elbv2:listener:443"]["SSLPolicy"]),
        ("aws:elbv2:listener:default", "ListenerEnabled", "false"),
    }


def sent_by_eb_config(path: Path, monkeypatch) -> set[tuple[str, str, str]]:
    """The option settings `eb config ENV --update file://PATH` would send to the environment."""
    sent: dict = {}
    monkeypatch.setattr(
        configops.commonops,
        "update_environment",
        lambda env, changes, *a, **k: sent.update(changes=changes),
    )
    configops.modify_environment_configuration("env", f"file://{path}", True)
    return {(c["Namespace"], c["OptionName"], c["Value"]) for c in sent["changes"]}


def test_the_api_key_comes_from_the_secret_the_environment_names_by_arn(tmp_path, monkeypatch):
    path = tmp_path / "api-key.yml"
    result = make(
        "eb-api-key-settings", f"SECRET_ARN={TEST_SECRET_ARN}", f"EB_API_KEY_SETTINGS={path}"
    )
    assert result.returncode == 0, result.stderr
    assert_documented(yaml.safe_load(path.read_text())["OptionSettings"])
    assert sent_by_eb_config(path, monkeypatch) == {(SECRETS, "API_KEY", TEST_SECRET_ARN)}


def test_make_eb_api_key_needs_a_secret_or_parameter_arn(tmp_path):
    for wrong in ([], ["SECRET_ARN=not-an-arn"], ["SECRET_ARN=" + TEST_CERT_ARN]):
        result = make("eb-api-key-settings", *wrong, f"EB_API_KEY_SETTINGS={tmp_path / 'k.yml'}")
        assert result.returncode != 0 and "SECRET_ARN=arn:aws:secretsmanager:" in result.stderr
    assert not (tmp_path / "k.yml").exists()


def test_no_api_key_is_a_plain_environment_property_in_the_configuration():
    assert "API_KEY" not in option_settings().get(ANY_NAME, {})


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
