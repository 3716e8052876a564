"""Scale-out as Elastic Beanstalk runs it: instances behind nginx, one killed mid-load."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bench.scale import run
from churn.config import PROJECT_ROOT

pytestmark = pytest.mark.slow


def test_killing_an_instance_mid_load_fails_no_client_request(tmp_path):
    result = run(instance_count=2, seconds=8, kill=True, work=tmp_path)
    assert result["killed_instance"], "the kill did not happen during the load"
    assert result["requests"] > 1000
    assert result["errors"] == 0, result["error_kinds"]


def test_make_scale_test_script_reports_throughput():
    completed = subprocess.run(
        [sys.executable, "-m", "bench.scale", "--seconds", "3", "--no-kill"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "2 instances behind nginx" in completed.stdout and "req/s" in completed.stdout
