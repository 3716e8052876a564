"""The peers' virtual environments: built on demand outside the project's lock, cached, reused.

A peer (FastAPI, BentoML, MLServer) is not a dependency of the project, so each gets its own
virtual environment under ``~/.cache/churn-serving-bench/`` (or ``$XDG_CACHE_HOME``), built from
its pinned requirements file here (``<peer>.txt``) plus the model's own libraries at the versions
Pipfile.lock holds, so every peer unpickles the same model with the same scikit-learn. An
environment is reused while its requirements are unchanged (their hash names its folder), so
`make bench` runs offline once they are built. A build that fails leaves a reason, not a crash.
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
# Libraries the pickle needs, pinned to the project's lock so the model loads identically.
MODEL_LIBRARIES = ("scikit-learn", "numpy", "scipy", "joblib", "threadpoolctl")
COMPLETE = ".complete"  # written last: a folder without it is a build that did not finish
BUILD_TIMEOUT_S = 900


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "churn-serving-bench"


@dataclass(frozen=True)
class PeerEnv:
    """A peer's environment: its Python, the versions installed, or why there is none."""

    python: Path | None
    versions: dict[str, str]
    unavailable: str | None = None


def model_pins() -> list[str]:
    lock = json.loads((PROJECT_ROOT / "Pipfile.lock").read_text())["default"]
    return [f"{name}{lock[name]['version']}" for name in MODEL_LIBRARIES]


def requirements(peer: str) -> list[str]:
    lines = (HERE / f"{peer}.txt").read_text().splitlines()
    own = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    return own + model_pins()


def env_folder(peer: str) -> Path:
    key = "\n".join([platform.python_version(), *requirements(peer)])
    return cache_root() / f"{peer}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def peer_env(peer: str, build: bool) -> PeerEnv:
    """``peer``'s environment, built first when missing and ``build`` is set."""
    folder = env_folder(peer)
    if not (folder / COMPLETE).exists():
        if not build:
            return PeerEnv(
                None, {}, f"its environment is not built ({folder}); `make bench` builds it"
            )
        reason = _build(peer, folder)
        if reason:
            return PeerEnv(None, {}, reason)
    versions = json.loads((folder / COMPLETE).read_text())
    return PeerEnv(folder / "bin" / "python", versions)


def _build(peer: str, folder: Path) -> str | None:
    """Build ``peer``'s environment in ``folder``; None when done, else why it failed."""
    shutil.rmtree(folder, ignore_errors=True)
    print(f"  building {peer}'s environment in {folder} (once; needs PyPI)", flush=True)
    wanted = requirements(peer)
    python = folder / "bin" / "python"
    steps = [
        [sys.executable, "-m", "venv", str(folder)],
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *wanted],
    ]
    for step in steps:
        try:
            done = subprocess.run(step, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            return f"building its environment took over {BUILD_TIMEOUT_S} s"
        if done.returncode != 0:
            errors = [line for line in done.stderr.splitlines() if line.startswith("ERROR")]
            last = (errors or done.stderr.strip().splitlines() or ["no output"])[-1]
            return f"its environment could not be built: {last.strip()}"
    (folder / COMPLETE).write_text(json.dumps(_installed(python, wanted), indent=1))
    for stale in folder.parent.glob(f"{peer}-*"):  # built from requirements no longer wanted
        if stale != folder:
            shutil.rmtree(stale, ignore_errors=True)
    return None


def _installed(python: Path, wanted: list[str]) -> dict[str, str]:
    """The installed versions of the packages asked for (extras and pins stripped)."""
    names = [line.split("[")[0].split("=")[0].split("<")[0].split(">")[0] for line in wanted]
    script = (
        "import importlib.metadata as m, json, sys\n"
        "print(json.dumps({n: m.version(n) for n in sys.argv[1:]}))"
    )
    done = subprocess.run(
        [str(python), "-c", script, *names], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout)
