"""A Python with only `requests` installed, and predict_test.py copied alone into an empty
folder: how the client tests run the client as users copy it (fixtures in conftest.py)."""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import venv
from pathlib import Path

from packaging.requirements import Requirement

from churn.config import PROJECT_ROOT

CLIENT_PACKAGE = "requests"


def distributions_needed(name: str) -> set[str]:
    """``name`` and everything it requires (extras left out), as installed here."""
    needed, todo = set(), [name]
    while todo:
        current = todo.pop()
        if current in needed:
            continue
        needed.add(current)
        for line in importlib.metadata.requires(current) or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return needed


def link_distribution(name: str, site_packages: Path) -> None:
    """Make one installed distribution (its top-level files and metadata) importable there."""
    files = importlib.metadata.distribution(name).files or []
    tops = {f.parts[0] for f in files if not f.parts[0].startswith("..")}
    for top in tops - {"__pycache__"}:
        source = Path(importlib.metadata.distribution(name).locate_file(top))
        if source.exists() and not (site_packages / top).exists():
            (site_packages / top).symlink_to(source)


def client_command(python: Path, script: Path, *args: str) -> list[str]:
    return [str(python), script.name, *args]


def run_client(python: Path, script: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        client_command(python, script, *args),
        cwd=script.parent,
        env=bare_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def start_client(python: Path, script: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        client_command(python, script, *args),
        cwd=script.parent,
        env=bare_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def bare_env() -> dict[str, str]:
    """No PYTHONPATH or API_KEY from the test run leaks into the copied client."""
    return {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp")}


def make_bare_python(home: Path) -> Path:
    """A new venv (no pip, no system packages) whose site-packages holds only requests & deps."""
    venv.EnvBuilder(with_pip=False, symlinks=True).create(home)
    python = home / "bin" / "python"
    site_packages = Path(
        subprocess.check_output(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True
        ).strip()
    )
    for name in distributions_needed(CLIENT_PACKAGE):
        link_distribution(name, site_packages)
    return python


def copy_client(folder: Path) -> Path:
    """predict_test.py, copied alone into an empty folder."""
    shutil.copy(PROJECT_ROOT / "predict_test.py", folder)
    return folder / "predict_test.py"
