"""What an EMR Serverless job run is made of, rebuilt on this machine: the packed environment
(only the computed package list, in a fresh virtual environment) and a Spark of EMR's version
installed on its own, as EMR brings its own. Both are built once from PyPI and cached by
content under ~/.cache/churn-serving, so later runs reuse them.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from emr import packages

# The release docs/emr.md names and the Spark it brings (AWS, "Spark release history":
# emr-7.13.0 ships Spark 3.5.6-amzn-2), as pyspark from PyPI at the hashes PyPI serves.
EMR_RELEASE = "emr-7.13.0"
EMR_SPARK = "3.5.6"
SPARK_REQUIREMENTS = f"""\
pyspark=={EMR_SPARK} \\
    --hash=sha256:f8b1c4360e41ab398c64904fae08740503bcb6bd389457d659fa6d9f2952cc48
py4j==0.10.9.7 \\
    --hash=sha256:85defdfd2b2376eb3abf5ca6474b51ab7e0de341c75a02f46dc9b5976f5a5c1b
"""
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "churn-serving"
# pip's words for "the index cannot be reached": then the test cannot run here, which is not
# the same as the list being wrong (a missing pin or hash fails the test).
OFFLINE = ("NewConnectionError", "Temporary failure in name resolution", "ConnectTimeoutError")


def cached(name: str, recipe: str, build) -> Path:
    """``build(folder)`` once per recipe; the result is renamed into place only when complete."""
    key = hashlib.sha256(f"{recipe}\n{sys.version}".encode()).hexdigest()[:16]
    target = CACHE / f"{name}-{key}"
    if target.is_dir():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=CACHE))
    try:
        build(work)
        work.rename(target)
    except OSError:
        if not target.is_dir():  # not another run finishing the same build first
            raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def pip_install(python: str, requirements: str, *options: str) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as handle:
        handle.write(requirements)
        handle.flush()
        command = [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        command += ["--require-hashes", *options, "-r", handle.name]
        done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    if done.returncode and any(word in done.stderr for word in OFFLINE):
        pytest.skip(f"PyPI cannot be reached to build the EMR job's environments: {done.stderr}")
    assert done.returncode == 0, done.stderr


def packed_environment() -> Path:
    """A fresh virtual environment holding exactly emr/packages.py's list (what emr/Dockerfile
    packs), and nothing of this project's environment."""
    requirements = packages.requirements_text()

    def build(folder: Path) -> None:
        subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True, timeout=300)
        pip_install(str(folder / "bin" / "python"), requirements)

    return cached("emr-env", requirements, build)


def spark_home() -> Path:
    """Spark of EMR's version in a folder of its own: SPARK_HOME, with bin/spark-submit and the
    python/lib/pyspark.zip that spark-submit puts on the job's Python path, as on EMR."""

    def build(folder: Path) -> None:
        pip_install(sys.executable, SPARK_REQUIREMENTS, "--target", str(folder))

    return cached(f"spark-{EMR_SPARK}", SPARK_REQUIREMENTS, build) / "pyspark"
