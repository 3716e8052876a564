"""The benchmark harness in smoke mode, so it cannot rot: every server must answer correctly.

No speed is asserted here; speed is what `make bench` reports.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from churn.config import PROJECT_ROOT

pytestmark = pytest.mark.slow


def test_the_harness_runs_every_server_and_they_all_answer_correctly(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "bench.run", "--smoke", "--output", str(tmp_path)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    rows = [
        line for line in result.stdout.splitlines() if line.startswith("| ") and "---" not in line
    ]
    names = [row.split("|")[1].strip() for row in rows[1:]]
    assert names[0] == "churn-serving" and len(names) == 5
    assert all(row.split("|")[5].strip() == "0" for row in rows[1:]), rows  # no errors
    assert "ours / baseline" in result.stdout and "batch, server time" in result.stdout


def test_microbenchmarks_run(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "bench/test_micro.py",
            "--benchmark-disable",
            "-q",
            "-p",
            "no:cacheprovider",
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "6 passed" in result.stdout
