"""The Dockerfile, checked without a Docker engine: linted, then replayed.

The replay builds the final image's file tree from exactly what its COPY lines copy (honouring
.dockerignore), and starts its CMD there with the image's ENV, WORKDIR and user-visible port,
using the locked environment in place of the image's site-packages.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from dockerfile_parse import DockerfileParser
from pathspec import PathSpec

from bench.servers import free_port, gunicorn_settings, running
from churn.config import PROJECT_ROOT
from churn.features import EXAMPLE_CUSTOMER

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


def replay_copies(root: Path) -> Path:
    """Lay out the image's WORKDIR as the COPY lines (from the context) would; return it."""
    workdir = Path(instructions_of("WORKDIR")[-1])
    image_dir = root / workdir.relative_to("/")
    image_dir.mkdir(parents=True)
    context = context_files()
    for value in instructions_of("COPY"):
        parts = shlex.split(value)
        if any(part.startswith("--from") for part in parts):
            continue  # a file made in the build stage (requirements.txt), not from the context
        *sources, destination = parts
        for source in sources:
            source = source.rstrip("/")
            matched = sorted(f for f in context if f == source or f.startswith(source + "/"))
            assert matched, f"COPY {source}: nothing in the build context (see .dockerignore)"
            for relative in matched:
                if relative == source:  # a file: into the folder, or to the named path
                    name = Path(relative).name if destination.endswith("/") else ""
                    target = image_dir / destination / name
                else:  # a folder's content lands inside the destination folder
                    target = image_dir / destination / Path(relative).relative_to(source)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(PROJECT_ROOT / relative, target)
    return image_dir


def exec_form(kind: str) -> list[str]:
    value = instructions_of(kind)[-1]
    return json.loads(value)


def test_hadolint_finds_nothing():
    result = subprocess.run(
        [str(VENV_BIN / "hadolint"), str(DOCKERFILE)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_basics():
    structure = DockerfileParser(path=str(DOCKERFILE)).structure
    base = [item["value"] for item in structure if item["instruction"] == "FROM"]
    assert all(":3.11." in b and "slim" in b for b in base), base  # pinned slim 3.11
    env = image_env()
    assert env["PYTHONDONTWRITEBYTECODE"] == "1" and env["PYTHONUNBUFFERED"] == "1"
    user = instructions_of("USER")[-1]
    assert user not in {"root", "0"}
    assert instructions_of("HEALTHCHECK") and "/health" in instructions_of("HEALTHCHECK")[0]


def test_dependencies_come_from_the_lock_with_hashes_before_the_code():
    stage = final_stage()
    runs = [i for i, item in enumerate(stage) if item["instruction"] == "RUN"]
    install = next(i for i in runs if "--require-hashes" in stage[i]["value"])
    code_copies = [
        i
        for i, item in enumerate(stage)
        if item["instruction"] == "COPY" and "--from" not in item["value"]
    ]
    assert install < min(code_copies), "dependencies must be installed before the code is copied"
    lock_stage = DockerfileParser(path=str(DOCKERFILE)).content
    assert "pipenv requirements --hash" in lock_stage and "--dev" not in lock_stage


def test_build_context_leaves_out_data_venvs_tests_and_history():
    context = context_files()
    for excluded in ("data/", ".venv/", "tests/", ".git/", "bench/", "docs/"):
        assert not any(f.startswith(excluded) for f in context), excluded
    assert not any("__pycache__" in f for f in context)


def port_of_bind(env: dict[str, str]) -> int:
    """The port gunicorn.conf.py binds with only the image's environment."""
    return int(gunicorn_settings(env)["bind"].rsplit(":", 1)[1])


def test_expose_gunicorn_bind_and_eb_port_agree(eb_environment):
    exposed = {int(value.split("/")[0]) for value in instructions_of("EXPOSE")}
    bound = port_of_bind(image_env())
    assert exposed == {bound}
    assert int(eb_environment.get("PORT", bound)) == bound


@pytest.fixture(scope="module")
def image_root(tmp_path_factory) -> Path:
    return replay_copies(tmp_path_factory.mktemp("image"))


def test_the_image_holds_only_what_serving_needs(image_root):
    names = {p.relative_to(image_root).as_posix() for p in image_root.rglob("*") if p.is_file()}
    assert {"predict.py", "gunicorn.conf.py", "model_C=1.0.bin", "model_C=1.0.json"} <= names
    assert "churn/app.py" in names
    assert not any(n.startswith(("tests/", "data/", ".venv/")) for n in names)
    assert "train.py" not in names and not any(n.endswith(".csv") for n in names)


def test_replayed_image_serves_health_and_predict(image_root, tmp_path):
    command = exec_form("CMD")
    command[0] = str(VENV_BIN / command[0])  # the locked environment stands in for site-packages
    port = free_port()
    # Only the image's ENV (plus PATH for the venv): nothing leaks in from this checkout.
    env = {
        **image_env(),
        "PATH": f"{VENV_BIN}:/usr/bin:/bin",
        "PORT": str(port),
        "HOME": str(tmp_path),
    }
    with running(command, tmp_path, env=env, cwd=image_root, port=port) as server:
        assert requests.get(server.url + "/health", timeout=10).json()["status"] == "ok"
        response = requests.post(server.url + "/predict", json=EXAMPLE_CUSTOMER, timeout=10)
        assert response.status_code == 200 and 0 < response.json()["churn_probability"] < 1
        healthcheck = json.loads(instructions_of("HEALTHCHECK")[0].split("CMD", 1)[1])
        healthcheck[0] = str(VENV_BIN / healthcheck[0])
        probe = subprocess.run(healthcheck, env=env, cwd=image_root, timeout=30)
        assert probe.returncode == 0


def test_the_healthcheck_fails_when_nothing_answers(image_root, tmp_path):
    healthcheck = json.loads(instructions_of("HEALTHCHECK")[0].split("CMD", 1)[1])
    healthcheck[0] = str(VENV_BIN / healthcheck[0])
    env = {"PATH": "/usr/bin:/bin", "PORT": str(free_port())}
    probe = subprocess.run(healthcheck, env=env, cwd=image_root, capture_output=True, timeout=30)
    assert probe.returncode != 0


def test_every_package_the_service_imports_is_in_the_images_lock_group(tmp_path):
    """The replay runs on the full dev environment; this closes that gap.

    The image installs only the lock's default group, so anything the service imports from a
    dev-only package (requests, say) would pass the replay and fail in the real image.
    """
    probe = (
        "import json, sys, importlib.metadata as md\n"
        "before = set(sys.modules)\n"  # what the interpreter loads by itself (site hooks)
        "import predict\n"
        "dists = md.packages_distributions()\n"
        "new = set(sys.modules) - before\n"
        "used = {d for m in new for d in dists.get(m.split('.')[0], [])}\n"
        "print(json.dumps(sorted(used)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    used = {canonical(name) for name in json.loads(result.stdout.splitlines()[-1])}
    lock = json.loads((PROJECT_ROOT / "Pipfile.lock").read_text())
    default = {canonical(name) for name in lock["default"]}
    assert used and used <= default, used - default
    assert {"flask", "gunicorn", "pydantic", "orjson", "numpy"} <= used


def canonical(name: str) -> str:
    return name.lower().replace("_", "-")
