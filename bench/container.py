"""The "in the container" rows of `make bench`: the image run as production runs it.

Built in the private engine of tests/engine.py and run detached with ``--network host``, so its
stdout goes only to the engine's log (json-file), as under Elastic Beanstalk. A row's server is
``python -m bench.container NAME DOCKER-RUN-OPTIONS...``: it starts the container and stops it
(`docker stop`) when told to stop.
"""

from __future__ import annotations

import atexit
import functools
import os
import signal
import subprocess
import sys
import tempfile
import uuid
from dataclasses import replace
from pathlib import Path

from bench.contenders import Contender
from tests import engine as docker

IMAGE_TAG = "churn-serving:bench"


def in_container(ours: Contender, key: str, name: str, env: dict[str, str]) -> Contender:
    """``ours`` in the container with ``env`` added, or saying why no engine runs here."""
    try:
        engine = engine_with_image()
    except (docker.EngineError, OSError, subprocess.SubprocessError) as error:
        why = f"no Docker engine: {error}"
        return replace(ours, key=key, name=name, command=[], unavailable=why)
    container = f"churn-bench-{uuid.uuid4().hex[:8]}"
    options = [f"--env={k}={v}" for k, v in {"WEB_CONCURRENCY": str(ours.workers), **env}.items()]
    # The container's first process on the host is the gunicorn master, the workers' parent.
    pid = functools.partial(engine.docker, "inspect", "--format", "{{.State.Pid}}", container)
    return replace(ours, key=key, name=name, env={"DOCKER_HOST": engine.env["DOCKER_HOST"]},
                   command=[sys.executable, "-m", "bench.container", container, *options],
                   master_pid=lambda: int(pid()), start_timeout_s=60.0)  # fmt: skip


@functools.cache
def engine_with_image() -> docker.Engine:
    """The private engine, started once per run, with the image built from a clean checkout."""
    engine = docker.start_private_engine()
    atexit.register(engine.stop)
    for base in docker.base_images():
        print(f"  {docker.ensure_base_image(engine, base)}", flush=True)
    with tempfile.TemporaryDirectory(prefix="churn-bench-context-") as work:
        docker.build_image(engine, docker.build_context(Path(work)), IMAGE_TAG)
    return engine


def serve(container: str, options: list[str]) -> int:
    """Run the image detached as ``container`` on $PORT; stop it on SIGTERM; its exit code."""
    client = docker.docker_client()
    run = [client, "run", "--detach", "--name", container, "--network=host"]
    run += ["--env=HOST=127.0.0.1", f"--env=PORT={os.environ['PORT']}", *options, IMAGE_TAG]
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
