"""The peers' virtual environments: built on demand outside the project's lock, cached, reused.

A peer (FastAPI, BentoML, MLServer) is not a dependency of the project, so each gets its own
virtual environment under ``~/.cache/churn-serving-bench/`` (or ``$XDG_CACHE_HOME``), built from
its pinned requirements here (``<peer>.txt``) plus the model's own libraries at the versions
Pipfile.lock holds, so every peer unpickles the same model with the same scikit-learn. The hash
of the requirements names the folder, so `make bench` runs offline once they are built. A build
that fails leaves a reason, not a crash.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from churn.config import PROJECT_ROOT

HERE = Path(__file__).resolve().parent
MODEL_LIBRARIES = ("scikit-learn", "numpy", "scipy", "joblib", "threadpoolctl")
COMPLETE = ".complete"  # written last: a folder without it is a build that did not finish
BUILD_TIMEOUT_S = 900


def cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "churn-serving-bench"


@dataclass(frozen=True)
class PeerEnv:
    python: Path | None
    requirements: list[str]
    unavailable: str | None = None  # why there is no environment


def requirements(peer: str) -> list[str]:
    lock = json.loads((PROJECT_ROOT / "Pipfile.lock").read_text())["default"]
    lines = [line.strip() for line in (HERE / f"{peer}.txt").read_text().splitlines()]
    own = [line for line in lines if line and not line.startswith("#")]
    return own + [f"{name}{lock[name]['version']}" for name in MODEL_LIBRARIES]


def peer_env(peer: str, build: bool) -> PeerEnv:
    """``peer``'s environment, built first when missing and ``build`` is set."""
    wanted = requirements(peer)
    key = "\n".join([platform.python_version(), *wanted])
    folder = cache_root() / f"{peer}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    if not (folder / COMPLETE).exists():
        not_built = f"its environment is not built ({folder}); `make bench` builds it"
        reason = build_env(folder, wanted) if build else not_built
        if reason:
            return PeerEnv(None, wanted, reason)
    return PeerEnv(folder / "bin" / "python", wanted)


def build_env(folder: Path, wanted: list[str]) -> str | None:
    """Build an environment with ``wanted`` in ``folder``; None when done, else why it failed."""
    shutil.rmtree(folder, ignore_errors=True)
    print(f"  building {folder.name} in {folder.parent} (once; needs PyPI)", flush=True)
    pip = [str(folder / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    for step in ([sys.executable, "-m", "venv", str(folder)], [*pip, *wanted]):
        try:
            done = subprocess.run(step, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            return f"building its environment took over {BUILD_TIMEOUT_S} s"
        if done.returncode != 0:
            errors = [line for line in done.stderr.splitlines() if line.startswith("ERROR")]
            last = (errors or done.stderr.strip().splitlines() or ["no output"])[-1]
            return f"its environment could not be built: {last.strip()}"
    (folder / COMPLETE).touch()
    for stale in folder.parent.glob(f"{folder.name.rsplit('-', 1)[0]}-*"):  # older requirements
        if stale != folder:
            shutil.rmtree(stale, ignore_errors=True)
    return None
