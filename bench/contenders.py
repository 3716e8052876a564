"""The servers `make bench` measures: one row of ``contenders()`` per row of the report.

A row is a ``Contender``: a command that serves /predict on ``{port}``, its environment, and a
``key`` the floors (bench/report.py) name it by. What a row needs besides is a setting of its
own: ``before`` starts something first (a database whose URL goes in the environment),
``front`` puts something in front (nginx: ``front=nginx_in_front``). A row that cannot run here
is returned with ``unavailable`` saying why, and the report shows the reason instead of numbers.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench.nginx_rig import nginx_in_front
from bench.peers.envs import cache_root, peer_env
from bench.postgres import capture_database
from bench.servers import free_port, gunicorn_command
from churn.config import DEFAULT_MODEL_FILE, PROJECT_ROOT, metadata_path

PEERS = PROJECT_ROOT / "bench" / "peers"
MODEL_FILE = PROJECT_ROOT / DEFAULT_MODEL_FILE
NO_ACCESS_LOG = {"GUNICORN_ACCESSLOG": ""}


@dataclass(frozen=True)
class Contender:
    key: str  # what the floors call it
    name: str  # what the report calls it
    command: list[str]
    env: dict[str, str]
    workers: int
    # A peer's failure to start is its own result; any other row's failure stops the run.
    peer: bool = False
    # False for a server that answers a constant (the ceiling): only the answer's shape is checked.
    checks_probability: bool = True
    cwd: Path = PROJECT_ROOT
    health_path: str = "/health"
    helper_processes: int = 0  # children that are not workers (multiprocessing's tracker)
    start_timeout_s: float = 20.0
    unavailable: str | None = None  # why it cannot run here
    master_pid: Callable[[], int] | None = None  # the workers' parent, when not the started process
    # Entered before the command starts (a database, say); yields more environment for it.
    before: Callable[[Path], AbstractContextManager[dict[str, str]]] | None = None
    # Put in front of the server once it answers (nginx, say): called with the server's port and
    # the work folder, yields an object whose ``url`` takes the load instead.
    front: Callable[[int, Path], AbstractContextManager[Any]] | None = None


def contenders(workers: int, work: Path, build_peers: bool, containers: bool) -> list[Contender]:
    """Every row of the report, in order; ``work`` holds the model copies the rows serve."""
    ours = {"WEB_CONCURRENCY": str(workers)}
    no_drift = {**ours, "MODEL_FILE": str(model_copy(work / "no-drift", drift=False))}
    shadow = {**ours, "SHADOW_MODEL_FILE": str(model_copy(work / "shadow")), "SHADOW_SAMPLE": "1"}
    gunicorn = gunicorn_command()
    # From bench/, which has no gunicorn.conf.py: gunicorn would read ours from the working folder.
    course = [sys.executable, "-m", "gunicorn", "--bind", "127.0.0.1:{port}", "-w", str(workers)]
    course_env = {"MODEL_FILE": str(MODEL_FILE)}
    ceiling = gunicorn_command("bench.ceiling_app:app")
    rows = [
        # key, name, command, environment, workers, other settings
        Contender("ours", "churn-serving", gunicorn, ours, workers),
        Contender("unmonitored", "churn-serving, no drift, no shadow", gunicorn, no_drift, workers),
        Contender("monitored", "churn-serving, drift + shadow model", gunicorn, shadow, workers),
        Contender("capture", "churn-serving, capture to PostgreSQL", gunicorn, ours, workers,
                  before=capture_database),
        Contender("nginx", "churn-serving behind EB's nginx (.platform/)", gunicorn,
                  {**ours, "GUNICORN_KEEPALIVE": "75"}, workers, front=nginx_in_front),
        Contender("course", "the course's way (Flask, scikit-learn per request)",
                  [*course, "baseline_app:app"], course_env, workers, cwd=PROJECT_ROOT / "bench"),
        Contender("ceiling", "ceiling: raw WSGI app (orjson parse + constant), our gunicorn",
                  ceiling, ours, workers, checks_probability=False),
        *peers(workers, build_peers),
    ]  # fmt: skip
    if containers:
        from bench.container import in_container

        rows += [
            in_container(rows[0], "container", "churn-serving in the container", {}),
            in_container(rows[0], "container-no-log", "the same, access log off", NO_ACCESS_LOG),
        ]
    return rows


def model_copy(folder: Path, drift: bool = True) -> Path:
    """A copy of the committed model in ``folder``; without ``drift``, its metadata has no
    ``drift_reference`` section, as a model trained before drift watch: the service counts none."""
    folder.mkdir(parents=True, exist_ok=True)
    copy = shutil.copyfile(MODEL_FILE, folder / MODEL_FILE.name)
    metadata = json.loads(metadata_path(MODEL_FILE).read_text())
    if not drift:
        del metadata["drift_reference"]
    metadata_path(copy).write_text(json.dumps(metadata))
    return copy


def peers(workers: int, build: bool) -> list[Contender]:
    """What a user would pick instead, each in its own environment (bench/peers/), serving the
    same pickle with scikit-learn per request and the model's threshold, with their usual
    settings (access logs on)."""
    threshold = json.loads(metadata_path(MODEL_FILE).read_text())["threshold"]
    model = {"MODEL_FILE": str(MODEL_FILE), "CHURN_THRESHOLD": str(threshold)}
    uvicorn = ["-m", "uvicorn", "--host", "127.0.0.1", "--port", "{port}", "--loop", "uvloop"]
    uvicorn += ["--http", "httptools", "--workers", str(workers), "fastapi_service:app"]
    bentoml = ["-m", "bentoml", "serve", "bentoml_service:Churn", "--host", "127.0.0.1"]
    bentoml += ["--port", "{port}"]
    bentoml_env = {"WEB_CONCURRENCY": str(workers), "BENTOML_DO_NOT_TRACK": "True"}
    bentoml_env["BENTOML_HOME"] = str(cache_root() / "bentoml-home")
    mlserver = ["-c", "import sys; from mlserver.cli import main; sys.exit(main())", "start", "."]
    mlserver_env = {
        "MLSERVER_HOST": "127.0.0.1",
        "MLSERVER_HTTP_PORT": "{port}",
        "MLSERVER_GRPC_PORT": str(free_port()),  # it serves gRPC and metrics on ports of their own
        "MLSERVER_METRICS_PORT": str(free_port()),
        "MLSERVER_PARALLEL_WORKERS": str(workers),
        "MLSERVER_METRICS_DIR": str(cache_root() / "mlserver-metrics"),  # not in the checkout
    }
    return [
        peer(Contender("fastapi", "FastAPI, async def, uvicorn[standard]", uvicorn, model,
                       workers, cwd=PEERS, helper_processes=1), build),
        peer(Contender("bentoml", f"BentoML, workers={workers}", bentoml,
                       {**model, **bentoml_env}, workers, cwd=PEERS, health_path="/readyz"), build),
        peer(Contender("mlserver", f"MLServer, parallel_workers={workers}", mlserver,
                       {**model, **mlserver_env}, workers, cwd=PEERS / "mlserver",
                       helper_processes=1, health_path="/v2/models/churn/ready"), build),
    ]  # fmt: skip


def peer(contender: Contender, build: bool) -> Contender:
    """``contender`` run by its own environment's Python (bench/peers/<key>.txt), or marked
    unavailable saying why."""
    env = peer_env(contender.key, build)
    if env.python is None:
        return replace(contender, peer=True, unavailable=env.unavailable, command=[])
    # BentoML and MLServer start several processes that each import scikit-learn: ~10 s idle.
    return replace(
        contender,
        command=[str(env.python), *contender.command],
        peer=True,
        start_timeout_s=120.0,
    )
