"""The "in the container" rows of `make bench`, and the image's size and build time.

The image is built in the private engine of bench/engine.py (the one the tests use, with its
cache) and run with ``--network host`` as production runs it, detached, so its stdout goes only
to the engine's log (json-file), as under Elastic Beanstalk. Two rows: the container's default
settings (access log on) and the same with ``GUNICORN_ACCESSLOG=`` (no access log), so the cost of
the access log in a container is a ratio measured in the same run.

The build time reported is on an empty engine: a second private engine with a new data root that
holds only the base image, so nothing is cached, as on a new Elastic Beanstalk instance (which
pulls the base image first; that pull is not timed here).

``python -m bench.container_rows NAME DOCKER-RUN-ARGS...`` is the process a row's server is: it
starts the container detached, waits for it, and stops it (SIGTERM, like `docker stop`) when told
to stop.
"""

from __future__ import annotations

import atexit
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.engine import (
    Engine,
    EngineError,
    build_context,
    build_image,
    dependency_layer,
    docker_client,
    start_private_engine,
)
from bench.stand_in import base_images, ensure_base_image

IMAGE_TAG = "churn-serving:bench"
# Filled by container_contenders(): what docs/benchmarks.md says about the image.
IMAGE_FACTS: dict[str, str] = {}


def container_contenders(
    ours: Any, workers: int, empty_engine_build: bool, roles: tuple[Any, Any]
) -> list[Any]:
    """This service in the container, with and without its access log (``roles``, in that
    order); rows saying why they are unavailable when no engine can run here."""
    names = ("in the container (default: access log on)", "in the container, GUNICORN_ACCESSLOG=")
    try:
        engine = engine_with_image(empty_engine_build)
    except (EngineError, OSError, subprocess.SubprocessError) as error:
        reason = f"no Docker engine here: {error}"
        return [
            replace(ours, name=f"churn-serving {n}", role=r, unavailable=reason, command=[])
            for n, r in zip(names, roles, strict=True)
        ]
    rows = []
    variants = zip(names, ({}, {"GUNICORN_ACCESSLOG": ""}), roles, strict=True)
    for name, extra, role in variants:
        container = f"churn-bench-{uuid.uuid4().hex[:8]}"
        settings = {"WEB_CONCURRENCY": str(workers), **extra}
        command = [sys.executable, "-m", "bench.container_rows", container]
        command += [f"--env={key}={value}" for key, value in settings.items()]
        rows.append(
            replace(
                ours,
                name=f"churn-serving {name}",
                role=role,
                command=command,
                env={"DOCKER_HOST": engine.env["DOCKER_HOST"]},
                master_pid=_MasterPid(engine, container),
                start_timeout_s=60.0,
            )
        )
    return rows


class _MasterPid:
    """The gunicorn master's pid on the host: what the worker counts and CPU times are read from."""

    def __init__(self, engine: Engine, container: str) -> None:
        self.engine, self.container = engine, container

    def __call__(self) -> int:
        return int(self.engine.docker("inspect", "--format", "{{.State.Pid}}", self.container))


def engine_with_image(empty_engine_build: bool) -> Engine:
    engine = start_private_engine()
    atexit.register(engine.stop)
    for base in base_images():
        IMAGE_FACTS["base image"] = ensure_base_image(engine, base)
    with tempfile.TemporaryDirectory(prefix="churn-bench-context-") as work:
        context = build_context(Path(work))
        build_image(engine, context, IMAGE_TAG)
        if empty_engine_build:
            seconds = _empty_engine_build_s(engine, context)
            IMAGE_FACTS["build on an empty engine"] = f"{seconds:.0f} s"
    size = int(engine.docker("image", "inspect", "--format", "{{.Size}}", IMAGE_TAG))
    IMAGE_FACTS["image size"] = f"{size / 1e6:.0f} MB"
    IMAGE_FACTS["dependency layer"] = f"{dependency_layer(engine, IMAGE_TAG)[1] / 1e6:.0f} MB"
    return engine


def _empty_engine_build_s(cached: Engine, context: Path) -> float:
    """`docker build` seconds on a new engine that has only the base image(s)."""
    data_root = Path(tempfile.mkdtemp(prefix="churn-docker-empty-"))
    empty = Engine(data_root=data_root, exec_root=Path(tempfile.mkdtemp(prefix="churn-docker-")))
    try:
        empty.start()
        for base in base_images():
            saved = subprocess.Popen(
                [cached.client, "save", base], env=cached.env, stdout=subprocess.PIPE
            )
            subprocess.run(
                [empty.client, "load"],
                env=empty.env,
                stdin=saved.stdout,
                check=True,
                capture_output=True,
                timeout=600,
            )
            saved.wait(timeout=600)
        _, seconds = build_image(empty, context, IMAGE_TAG)
        return seconds
    finally:
        empty.stop()
        shutil.rmtree(data_root, ignore_errors=True)


def serve(container: str, options: list[str]) -> int:
    """Run the bench image detached as ``container``; stop it on SIGTERM; its exit code."""
    import os

    client = docker_client()
    port = os.environ["PORT"]
    run = [client, "run", "--detach", "--name", container, "--network=host"]
    run += ["--env=HOST=127.0.0.1", f"--env=PORT={port}", *options, IMAGE_TAG]
    subprocess.run(run, check=True, stdout=subprocess.DEVNULL)

    def stop(*_: object) -> None:
        subprocess.run([client, "stop", container], capture_output=True, check=False)
        subprocess.run([client, "rm", "--force", container], capture_output=True, check=False)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    waited = subprocess.run([client, "wait", container], capture_output=True, text=True)
    return int(waited.stdout.strip() or 1)


if __name__ == "__main__":
    sys.exit(serve(sys.argv[1], sys.argv[2:]))
