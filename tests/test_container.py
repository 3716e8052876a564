"""The Dockerfile, checked where a build cannot: lint, the pinned base, the build context.

The image itself is built and run in a private engine (tests/test_image.py,
tests/test_container_run.py, tests/test_container_stop.py). What stays here is what a build
from a clean clone cannot show: hadolint's advice, that the base is a pinned slim Python 3.11,
that a developer's checkout (with .venv and data) sends none of them as build context, and
that the port agrees with Elastic Beanstalk's.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

from dockerfile_parse import DockerfileParser
from pathspec import PathSpec

from bench.servers import gunicorn_settings
from churn.config import PROJECT_ROOT

DOCKERFILE = PROJECT_ROOT / "Dockerfile"
VENV_BIN = Path(sys.executable).parent


def final_stage() -> list[dict]:
    """Instructions after the last FROM, with ARG/ENV substitution done by the parser."""
    instructions = DockerfileParser(path=str(DOCKERFILE)).structure
    last_from = max(i for i, item in enumerate(instructions) if item["instruction"] == "FROM")
    return instructions[last_from + 1 :]


def instructions_of(kind: str) -> list[str]:
    return [item["value"] for item in final_stage() if item["instruction"] == kind]


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for value in instructions_of("ENV"):
        for token in shlex.split(value.replace("\\\n", " ")):
            key, _, val = token.partition("=")
            env[key] = val
    return env


def dockerignore() -> PathSpec:
    lines = (PROJECT_ROOT / ".dockerignore").read_text().splitlines()
    return PathSpec.from_lines("gitwildmatch", lines)


def context_files() -> set[str]:
    """The build context Docker would send: every file not matched by .dockerignore."""
    ignored = dockerignore()
    files = set()
    for path in PROJECT_ROOT.rglob("*"):
        relative = path.relative_to(PROJECT_ROOT).as_posix()
        if path.is_file() and not ignored.match_file(relative):
            files.add(relative)
    return files


def test_hadolint_finds_nothing():
    result = subprocess.run(
        [str(VENV_BIN / "hadolint"), str(DOCKERFILE)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_base_is_a_pinned_slim_python_311():
    structure = DockerfileParser(path=str(DOCKERFILE)).structure
    base = [item["value"] for item in structure if item["instruction"] == "FROM"]
    assert all(":3.11." in b and "slim" in b for b in base), base  # pinned slim 3.11
    env = image_env()
    # Unbuffered: a log line must not wait in Python's buffer when the container stops.
    assert env["PYTHONDONTWRITEBYTECODE"] == "1" and env["PYTHONUNBUFFERED"] == "1"


def test_build_context_leaves_out_data_venvs_tests_and_history():
    context = context_files()
    for excluded in ("data/", ".venv/", "tests/", ".git/", "bench/", "docs/"):
        assert not any(f.startswith(excluded) for f in context), excluded
    assert not any("__pycache__" in f for f in context)


def test_build_context_leaves_out_the_emr_build_outputs():
    # Built beside the Dockerfile for EMR Serverless (docs/emr.md): hundreds of MB, never needed.
    for output in ("churn.zip", "churn_spark_venv.tar.gz"):
        assert dockerignore().match_file(output), output


def port_of_bind(env: dict[str, str]) -> int:
    """The port gunicorn.conf.py binds with only the image's environment."""
    return int(gunicorn_settings(env)["bind"].rsplit(":", 1)[1])


def test_expose_gunicorn_bind_and_eb_port_agree(eb_environment):
    exposed = {int(value.split("/")[0]) for value in instructions_of("EXPOSE")}
    bound = port_of_bind(image_env())
    assert exposed == {bound}
    assert int(eb_environment.get("PORT", bound)) == bound
