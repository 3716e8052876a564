"""The image, built for real in a private engine from a clean copy of the checkout.

What it holds (the lock's serving group and nothing for training), how it caches (a code change
keeps the dependency layer), and that a Pipfile out of step with its lock stops the build.
"""

from __future__ import annotations

import json
import shutil

import pytest

from churn.config import PROJECT_ROOT
from tests.containers import BuiltImage, dependency_layer, installed_distributions, run_python
from tests.engine import EngineError, build_image

pytestmark = [pytest.mark.slow, pytest.mark.docker]

DEPENDENCY_LAYER_LIMIT = 120 * 1000 * 1000  # issue 11: what every new EB instance downloads
NEVER_SERVED = {"scikit-learn", "scipy", "pandas", "pyarrow", "matplotlib", "pipenv"}


def lock_group(name: str) -> dict[str, str]:
    lock = json.loads((PROJECT_ROOT / "Pipfile.lock").read_text())
    return {package: entry["version"].lstrip("=") for package, entry in lock[name].items()}


def test_the_image_holds_the_locks_serving_group_and_nothing_for_training(docker_engine, image):
    installed = installed_distributions(docker_engine, image.tag)
    serving = lock_group("serving")
    assert {name: installed.get(name) for name in serving} == serving
    assert not NEVER_SERVED & set(installed), NEVER_SERVED & set(installed)
    # Beyond the lock only the base image's own installer.
    assert set(installed) - set(serving) <= {"pip", "setuptools", "wheel"}, installed


def test_the_serving_group_is_a_part_of_the_default_group_at_the_same_versions():
    """`pipenv install` (the course's way) must get what the image gets, and the same versions."""
    default, serving = lock_group("default"), lock_group("serving")
    assert {name: default.get(name) for name in serving} == serving
    assert {"flask", "gunicorn", "numpy"} <= set(serving)


def test_the_dependency_layer_stays_under_120_mb(docker_engine, image):
    _, size = dependency_layer(docker_engine, image.tag)
    assert 0 < size <= DEPENDENCY_LAYER_LIMIT, f"{size / 1e6:.0f} MB"


def test_the_image_holds_only_what_serving_needs(docker_engine, image):
    listing = run_python(
        docker_engine,
        image.tag,
        "import os, json; print(json.dumps(sorted("
        "os.path.relpath(os.path.join(d, f)) for d, _, fs in os.walk('.') for f in fs)))",
    )
    files = set(json.loads(listing))
    assert {"predict.py", "gunicorn.conf.py", "model_C=1.0.bin", "model_C=1.0.json"} <= files
    assert "churn/app.py" in files and "requirements.txt" in files
    assert not any(f.startswith(("tests/", "bench/", "data/", ".venv/", ".git/")) for f in files)
    assert "train.py" not in files and not any(f.endswith((".csv", ".pyc")) for f in files)


def test_a_code_only_change_rebuilds_without_reinstalling_dependencies(
    docker_engine, image: BuiltImage, tmp_path
):
    context = shutil.copytree(image.context, tmp_path / "changed")
    with (context / "churn" / "app.py").open("a") as app_module:
        app_module.write("\n# a code-only change\n")
    log, _ = build_image(docker_engine, context, "churn-serving:code-change")
    install_step = log.split("--require-hashes", 1)[1].split("Step ", 1)[0]
    assert "Using cache" in install_step, install_step
    assert dependency_layer(docker_engine, "churn-serving:code-change") == dependency_layer(
        docker_engine, image.tag
    )
    code = docker_engine.docker(
        "run", "--rm", "churn-serving:code-change", "tail", "-1", "churn/app.py"
    )
    assert code == "# a code-only change"
    docker_engine.docker("rmi", "churn-serving:code-change")


def test_a_pipfile_that_no_longer_matches_its_lock_stops_the_build(
    docker_engine, image: BuiltImage, tmp_path
):
    context = shutil.copytree(image.context, tmp_path / "unlocked")
    pipfile = context / "Pipfile"
    pipfile.write_text(pipfile.read_text().replace("[serving]\n", '[serving]\nrequests = "*"\n'))
    with pytest.raises(EngineError) as failure:
        build_image(docker_engine, context, "churn-serving:unlocked")
    assert "pipenv verify" in str(failure.value) or "out-of-date" in str(failure.value)
    assert docker_engine.docker("images", "--quiet", "churn-serving:unlocked") == ""


def test_the_image_runs_as_a_numeric_non_root_user(docker_engine, image):
    user = docker_engine.docker("image", "inspect", "--format", "{{.Config.User}}", image.tag)
    assert user.isdigit() and int(user) != 0
    assert run_python(docker_engine, image.tag, "import os; print(os.getuid())") == user
