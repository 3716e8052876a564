"""Scale-out as Elastic Beanstalk runs it: a planned instance removal under load loses nothing.

The load balancer (nginx standing in for EB's ALB) never retries a request, as the ALB does not;
what keeps planned changes lossless is the drain: deregister, let in-flight requests finish, then
SIGTERM. A crashed instance's in-flight requests do fail; the client's retries cover those
(tests/test_client.py).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from bench.scale import run
from churn.config import PROJECT_ROOT

pytestmark = [pytest.mark.slow, pytest.mark.nginx]


def test_draining_then_stopping_an_instance_mid_load_fails_no_request(tmp_path):
    result = run(instance_count=2, seconds=8, drain=True, work=tmp_path)
    assert result["drained_instance"], "the planned stop did not happen during the load"
    assert result["drained_instance_served"], "the stopped instance never had traffic"
    assert result["drained_exit_code"] == 0  # gunicorn stopped gracefully, not killed
    assert result["requests"] > 1000
    assert result["errors"] == 0, result["error_kinds"]


def test_make_scale_test_script_reports_throughput():
    completed = subprocess.run(
        [sys.executable, "-m", "bench.scale", "--seconds", "3", "--no-drain"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "2 instances behind nginx" in completed.stdout and "req/s" in completed.stdout
