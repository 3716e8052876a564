"""The monitoring/ folder and Debian's Prometheus tools, for the monitoring tests."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from churn.config import PROJECT_ROOT

MONITORING = PROJECT_ROOT / "monitoring"
RULES = sorted((MONITORING / "rules").glob("*.yml"))
DASHBOARD = MONITORING / "grafana" / "dashboards" / "churn-serving.json"


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: run `make system-deps` (Debian package prometheus)")
    return path


def promtool(*args: str, cwd: Path = MONITORING) -> subprocess.CompletedProcess:
    return subprocess.run(
        [tool("promtool"), *args], cwd=cwd, capture_output=True, text=True, timeout=60
    )
