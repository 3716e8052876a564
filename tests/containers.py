"""Fixtures for the tests that build and run the image in a private Docker engine (tests/engine.py).

One engine per test session, started on first use and stopped at the end; one image built from a
clean copy of the checkout; containers started by a test are removed after it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from bench.servers import free_port, poll
from tests.engine import (
    Engine,
    EngineError,
    base_images,
    build_context,
    build_image,
    ensure_base_image,
    start_private_engine,
)

IMAGE_TAG = "churn-serving:test"
DOCKER_STOP_TIMEOUT = 10  # docker stop's default before SIGKILL (and EB's)
# Said at the end of the test run (conftest.py): which base image the build really used.
ENGINE_NOTES: list[str] = []


@dataclass
class BuiltImage:
    tag: str
    context: Path
    log: str
    seconds: float


@dataclass
class Container:
    engine: Engine
    id: str
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def state(self, field: str) -> str:
        return self.engine.docker("inspect", "--format", "{{.State." + field + "}}", self.id)

    def logs(self) -> str:
        return self.engine.logs(self.id)

    def wait_until_serving(self, timeout: float = 60) -> None:
        def answered() -> bool:
            try:
                return requests.get(self.url + "/health", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        if not poll(answered, bool, timeout, 0.2):
            raise AssertionError(f"the container did not answer /health:\n{self.logs()[-3000:]}")


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[Engine]:
    try:
        engine = start_private_engine()
    except EngineError as error:
        pytest.fail(f"{error}\nThe container tests need root and `make system-deps`.")
    ENGINE_NOTES.append(f"private Docker engine: data root {engine.data_root}")
    try:
        yield engine
    finally:
        engine.stop()


@pytest.fixture(scope="session")
def image(docker_engine: Engine, tmp_path_factory) -> BuiltImage:
    for base in base_images():
        ENGINE_NOTES.append(ensure_base_image(docker_engine, base))
    context = build_context(tmp_path_factory.mktemp("clean-clone"))
    log, seconds = build_image(docker_engine, context, IMAGE_TAG)
    return BuiltImage(IMAGE_TAG, context, log, seconds)


def run_python(engine: Engine, image: str, code: str) -> str:
    """Run ``python -c code`` in a throw-away container of ``image``; its stdout."""
    return engine.docker("run", "--rm", "--network=host", image, "python", "-c", code)


def installed_distributions(engine: Engine, image: str) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json; "
        "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))"
    )
    listed = json.loads(run_python(engine, image, code))
    return {name.lower().replace("_", "-"): version for name, version in listed.items()}


@pytest.fixture()
def start_container(docker_engine: Engine, image: BuiltImage) -> Iterator:
    """``start_container(*docker_run_options, env={...})``: a detached container on a free port."""
    started: list[str] = []

    def start(*options: str, env: dict[str, str] | None = None, wait: bool = True) -> Container:
        port = free_port()
        settings = {"HOST": "127.0.0.1", "PORT": str(port), **(env or {})}
        env_options = [f"--env={name}={value}" for name, value in settings.items()]
        container_id = docker_engine.docker(
            "run", "--detach", "--network=host", *env_options, *options, image.tag
        )
        started.append(container_id)
        container = Container(docker_engine, container_id, port)
        if wait:
            container.wait_until_serving()
        return container

    yield start
    if started:
        docker_engine.docker("rm", "--force", *started, check=False)


def layers(engine: Engine, tag: str) -> list[tuple[str, int]]:
    """(instruction, bytes) of each of ``tag``'s layers, oldest first."""
    listed = engine.docker(
        "history", "--no-trunc", "--human=false", "--format", "{{.CreatedBy}}\t{{.Size}}", tag
    )
    rows = [line.rsplit("\t", 1) for line in listed.splitlines()]
    return [(created_by, int(size)) for created_by, size in reversed(rows)]


def dependency_layer(engine: Engine, tag: str) -> tuple[str, int]:
    """The layer the Dockerfile's ``pip install --require-hashes`` made."""
    return next(layer for layer in layers(engine, tag) if "--require-hashes" in layer[0])
