"""monitoring/ checked by Prometheus's own tools: promtool on the rules and their unit tests,
the recording rules' PSI against Python's, and the Grafana dashboard with its provisioning."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from churn.drift import psi
from tests.promtools import DASHBOARD, MONITORING, RULES, promtool


@pytest.mark.prometheus
def test_promtool_accepts_the_rules_and_the_config():
    checked = promtool("check", "rules", *map(str, RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    config = promtool("check", "config", "prometheus.yml")
    assert config.returncode == 0, config.stdout + config.stderr


@pytest.mark.prometheus
def test_promtool_unit_tests_of_the_alerts_pass():
    result = promtool("test", "rules", "tests/alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


# Counts per bin (over one hour) and reference shares: an unchanged feature, a shifted one, one
# with an empty bin, one with a bin under the 1e-4 floor, and one with too few rows for a PSI.
EQUIVALENCE_CASES = {
    "steady": ([300, 300, 400], [0.3, 0.3, 0.4]),
    "shifted": ([0, 120, 480, 900, 60], [0.0, 0.3, 0.3, 0.4, 0.0]),
    "empty_bin": ([0, 700, 300], [0.2, 0.5, 0.3]),
    "rare_bin": ([1, 11_999, 8_000], [0.0001, 0.5999, 0.4]),
    "too_few": ([250, 249], [0.5, 0.5]),
}


def equivalence_test_file(folder: Path) -> Path:
    """A promtool test asking, for each case, whether the rules' PSI equals Python's."""
    series, checks = [], []
    for feature, (counts, shares) in EQUIVALENCE_CASES.items():
        for index, (count, share) in enumerate(zip(counts, shares, strict=True)):
            labels = f'feature="{feature}", bin="b{index}"'
            # 61 samples a minute apart, the last `count` higher: increase over 1h is exact.
            series.append(
                {"series": f"churn_drift_bin_rows_total{{{labels}}}", "values": f"0x59 {count}"}
            )
            series.append(
                {"series": f"churn_drift_reference_share{{{labels}}}", "values": f"{share!r}x60"}
            )
        expected = psi(counts, shares)
        psi_of = f'churn_drift:psi:1h{{feature="{feature}"}}'
        if expected is None:
            checks.append(
                {
                    "expr": psi_of,
                    "eval_time": "60m",
                    "exp_samples": [],
                }
            )
        else:
            checks.append(
                {
                    "expr": f"abs({psi_of} - {expected!r}) < bool 1e-9",
                    "eval_time": "60m",
                    "exp_samples": [{"labels": f'{{feature="{feature}"}}', "value": 1}],
                }
            )
    test = {
        "rule_files": [str(MONITORING / "rules" / "drift.yml")],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": series, "promql_expr_test": checks}],
    }
    path = folder / "equivalence_test.yml"
    path.write_text(yaml.safe_dump(test))
    return path


@pytest.mark.prometheus
def test_the_recording_rules_compute_the_same_psi_as_python(tmp_path):
    assert psi(*EQUIVALENCE_CASES["shifted"]) > 0.25  # the cases cover drift, not only zeros
    result = promtool("test", "rules", str(equivalence_test_file(tmp_path)), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dashboard_and_its_provisioning_fit_together():
    dashboard = json.loads(DASHBOARD.read_text())
    provider = yaml.safe_load(
        (MONITORING / "grafana" / "provisioning" / "dashboards" / "churn-serving.yml").read_text()
    )
    datasource = yaml.safe_load(
        (MONITORING / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    uid = datasource["datasources"][0]["uid"]
    assert provider["providers"][0]["options"]["path"].endswith("dashboards")
    targets = [t for panel in dashboard["panels"] for t in panel.get("targets", [])]
    assert targets and all(t["datasource"]["uid"] == uid for t in targets)
