"""The servers `make bench` measures: one ``Contender`` per row of the report.

To add a row, add a ``Contender`` to ``contenders()`` with the role it plays in the ratios:
the report finds this service, the course's way, the ceiling and the peers by role, never by
position or name. A server that needs more than a command (another virtual environment, a
container) can still be a plain ``Contender``: build what it needs before returning it, or return
it with ``unavailable`` saying why it cannot run here, and the report shows that reason instead of
numbers.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path

from bench.container_rows import container_contenders
from bench.peers.envs import cache_root, peer_env
from bench.servers import free_port, gunicorn_command
from churn.config import DEFAULT_MODEL_FILE, PROJECT_ROOT, metadata_path

BENCH = PROJECT_ROOT / "bench"
PEERS = BENCH / "peers"
MODEL_FILE = PROJECT_ROOT / DEFAULT_MODEL_FILE
# BentoML and MLServer start several processes that each import scikit-learn: ~10 s when idle.
PEER_START_TIMEOUT_S = 120.0


class Role(StrEnum):
    """What a row is compared as; for each ratio the report takes the first row of a role."""

    OURS = "ours"  # this service as shipped: every ratio is about it
    COURSE = "course"  # the course's way (ratio: ours / course)
    CEILING = "ceiling"  # parse + constant under our settings (ratio: ours / ceiling)
    PEER = "peer"  # a server a user would pick instead (ratio: ours / best peer)
    OTHER = "other"  # shown for information: ours with other settings, other baselines
    CONTAINER = "container"  # ours in the container as shipped (goal: ≥ 90% of the next)
    CONTAINER_NO_LOG = "container, no access log"  # the same without its access log


@dataclass(frozen=True)
class Contender:
    name: str
    command: list[str]
    env: dict[str, str]
    workers: int
    role: Role = Role.OTHER
    # False for servers that answer a constant (the ceilings): only the shape is checked.
    checks_probability: bool = True
    cwd: Path = PROJECT_ROOT
    health_path: str = "/health"
    # Child processes that are not workers (uvicorn's multiprocessing resource tracker).
    helper_processes: int = 0
    start_timeout_s: float = 20.0
    # Software versions the row depends on beyond the project's own lock (peers), for the report.
    versions: dict[str, str] = field(default_factory=dict)
    # Why this server cannot run here (not installed, failed to build); None when it can.
    unavailable: str | None = None
    # The gunicorn master's pid when it is not the started process (a container's).
    master_pid: Callable[[], int] | None = None


def contenders(
    workers: int, build_peers: bool = True, containers: bool = False, empty_engine: bool = False
) -> list[Contender]:
    """Every row of the report, this service first; the peers' environments built if missing.

    ``containers``: add this service in the container (bench/container_rows.py), building the
    image, and with ``empty_engine`` timing that build on an engine with nothing cached.
    """
    bind = ["--bind", "127.0.0.1:{port}"]
    ours = {"WEB_CONCURRENCY": str(workers)}
    # The course's way runs from a folder without a gunicorn.conf.py: gunicorn reads one from
    # the working directory when there is one, and ours there would change the baseline's
    # workers, worker class and logging. WEB_CONCURRENCY is gunicorn's default worker count.
    course = {"MODEL_FILE": str(PROJECT_ROOT / "model_C=1.0.bin")}
    ours_row = Contender("churn-serving", gunicorn_command(), ours, workers, Role.OURS)
    return [
        ours_row,
        Contender(
            "churn-serving, GUNICORN_ACCESSLOG= (no access log)",
            gunicorn_command(),
            {**ours, "GUNICORN_ACCESSLOG": ""},
            workers,
        ),
        Contender(
            f"baseline ({workers} workers)",
            [sys.executable, "-m", "gunicorn", *bind, "-w", str(workers), "baseline_app:app"],
            course,
            workers,
            Role.COURSE,
            cwd=BENCH,
        ),
        Contender(
            "baseline (course command, 1 worker)",
            [sys.executable, "-m", "gunicorn", *bind, "baseline_app:app"],
            {**course, "WEB_CONCURRENCY": "1"},
            1,
            Role.COURSE,
            cwd=BENCH,
        ),
        Contender(
            "churn-serving, sync workers",
            gunicorn_command(),
            {**ours, "GUNICORN_WORKER_CLASS": "sync"},
            workers,
        ),
        Contender(
            "ceiling: raw WSGI app (orjson parse + constant), our gunicorn settings",
            gunicorn_command("bench.ceiling_app:app"),
            ours,
            workers,
            Role.CEILING,
            checks_probability=False,
        ),
        Contender(
            "Flask route (parse + constant), our gunicorn settings",
            gunicorn_command("bench.flask_ceiling_app:app"),
            ours,
            workers,
            checks_probability=False,
        ),
        *peers(workers, build_peers),
        *(in_container(ours_row, workers, empty_engine) if containers else []),
    ]


def in_container(ours: Contender, workers: int, empty_engine: bool) -> list[Contender]:
    roles = (Role.CONTAINER, Role.CONTAINER_NO_LOG)
    return container_contenders(ours, workers, empty_engine, roles)


def peers(workers: int, build: bool) -> list[Contender]:
    """The servers a user would pick instead, each in its own environment (bench/peers/).

    Each serves the same pickle with scikit-learn per request and the model's own threshold, so
    it answers the same JSON as this service; they run with their usual settings (access logs on).
    """
    threshold = json.loads(metadata_path(MODEL_FILE).read_text())["threshold"]
    model = {"MODEL_FILE": str(MODEL_FILE), "CHURN_THRESHOLD": str(threshold)}
    uvicorn = ["-m", "uvicorn", "--host", "127.0.0.1", "--port", "{port}", "--loop", "uvloop"]
    uvicorn += ["--http", "httptools", "--workers", str(workers)]
    bentoml = ["-m", "bentoml", "serve", "bentoml_service:Churn", "--host", "127.0.0.1"]
    mlserver = ["-c", "import sys; from mlserver.cli import main; sys.exit(main())", "start", "."]
    fastapi = [
        peer(
            "fastapi",
            Contender(
                f"FastAPI, {handler}, uvicorn[standard]",
                [*uvicorn, f"fastapi_service:{app}"],
                model,
                workers,
                cwd=PEERS,
                helper_processes=1,  # multiprocessing's resource tracker
            ),
            build,
        )
        for handler, app in (("async def", "async_app"), ("def (thread pool)", "sync_app"))
    ]
    return [
        *fastapi,
        peer(
            "bentoml",
            Contender(
                f"BentoML, workers={workers}",
                [*bentoml, "--port", "{port}"],
                {
                    **model,
                    "WEB_CONCURRENCY": str(workers),
                    "BENTOML_HOME": str(cache_root() / "bentoml-home"),
                    "BENTOML_DO_NOT_TRACK": "True",
                },
                workers,
                cwd=PEERS,
                health_path="/readyz",
            ),
            build,
        ),
        peer(
            "mlserver",
            Contender(
                f"MLServer, custom runtime, parallel_workers={workers}",
                mlserver,
                {
                    **model,
                    "MLSERVER_HOST": "127.0.0.1",
                    "MLSERVER_HTTP_PORT": "{port}",
                    # It serves gRPC and metrics too, each on a port of its own.
                    "MLSERVER_GRPC_PORT": str(free_port()),
                    "MLSERVER_METRICS_PORT": str(free_port()),
                    "MLSERVER_PARALLEL_WORKERS": str(workers),
                },
                workers,
                cwd=PEERS / "mlserver",
                helper_processes=1,  # multiprocessing's resource tracker
                health_path="/v2/models/churn/ready",
            ),
            build,
        ),
    ]


def peer(name: str, contender: Contender, build: bool) -> Contender:
    """``contender`` run by peer ``name``'s own Python, or marked unavailable saying why."""
    env = peer_env(name, build)
    if env.python is None:
        return replace(contender, role=Role.PEER, unavailable=env.unavailable, command=[])
    return replace(
        contender,
        command=[str(env.python), *contender.command],
        role=Role.PEER,
        versions=env.versions,
        start_timeout_s=PEER_START_TIMEOUT_S,
    )
