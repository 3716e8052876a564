"""The servers `make bench` measures: one ``Contender`` per row of the report.

A row is a command serving /predict on ``{port}``, its environment, and the ``key`` the floors
(bench/run.py) name it by. A row that cannot run here carries ``unavailable``, saying why. The
peers (FastAPI, BentoML, MLServer) are not dependencies of the project: each runs in a virtual
environment of its own under ``~/.cache/churn-serving-bench/``, built once from
``bench/peers/<key>.txt`` plus the model's libraries at Pipfile.lock's versions, so every peer
unpickles the same model with the same scikit-learn.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench.servers import free_port, gunicorn_command
from churn.artifact import metadata_path
from churn.config import DEFAULT_MODEL_FILE, PROJECT_ROOT
from tests.nginx_rig import nginx_in_front
from tests.postgres import capture_database

PEERS = PROJECT_ROOT / "bench" / "peers"
MODEL_FILE = PROJECT_ROOT / DEFAULT_MODEL_FILE
MODEL_LIBRARIES = ("scikit-learn", "numpy", "scipy", "joblib", "threadpoolctl")
BUILD_TIMEOUT_S = 900


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
    # Entered before the command starts (a database); yields more environment for it.
    before: Callable[[Path], AbstractContextManager[dict[str, str]]] | None = None
    # Entered once the server answers, with its port and the work folder (nginx); yields an
    # object whose ``url`` takes the load instead.
    front: Callable[[int, Path], AbstractContextManager[Any]] | None = None


def contenders(workers: int, work: Path, build_peers: bool, containers: bool) -> list[Contender]:
    """Every row of the report, in order; ``work`` holds the model copies the rows serve."""
    ours = {"WEB_CONCURRENCY": str(workers)}
    no_drift = {**ours, "MODEL_FILE": str(model_copy(work / "no-drift", drift=False))}
    shadow = {**ours, "SHADOW_MODEL_FILE": str(model_copy(work / "shadow")), "SHADOW_SAMPLE": "1"}
    gunicorn = gunicorn_command()
    # From bench/, which has no gunicorn.conf.py: gunicorn would read ours from the working folder.
    course = [sys.executable, "-m", "gunicorn", "--bind", "127.0.0.1:{port}", "-w", str(workers)]
    rows = [
        Contender("ours", "churn-serving", gunicorn, ours, workers),
        # As the image ships, and as gunicorn runs the course's way: no access line per request.
        Contender("quiet", "churn-serving, access log off (the image's default)", gunicorn,
                  {**ours, "GUNICORN_ACCESSLOG": ""}, workers),
        Contender("unmonitored", "churn-serving, no drift, no shadow", gunicorn, no_drift, workers),
        Contender("monitored", "churn-serving, drift + shadow model", gunicorn, shadow, workers),
        Contender("capture", "churn-serving, capture to PostgreSQL", gunicorn, ours, workers,
                  before=capture_database),
        Contender("nginx", "churn-serving behind EB's nginx (.platform/)", gunicorn,
                  {**ours, "GUNICORN_KEEPALIVE": "75"}, workers, front=nginx_in_front),
        Contender("course", "the course's way (Flask, scikit-learn per request)",
                  [*course, "baseline_app:app"], {"MODEL_FILE": str(MODEL_FILE)}, workers,
                  cwd=PROJECT_ROOT / "bench"),
        Contender("ceiling", "ceiling: raw WSGI app (orjson parse + constant), our gunicorn",
                  gunicorn_command("bench.ceiling_app:app"), ours, workers,
                  checks_probability=False),
        *peers(workers, build_peers),
    ]  # fmt: skip
    if containers:
        from bench.container import in_container

        rows += [
            in_container(rows[0], "container", "churn-serving in the container", {}),
            in_container(rows[0], "container-no-log", "the same, access log off",
                         {"GUNICORN_ACCESSLOG": ""}),
        ]  # fmt: skip
    return rows


def model_copy(folder: Path, drift: bool = True) -> Path:
    """A copy of the committed model; without ``drift``, its metadata has no ``drift_reference``
    (a model trained before drift watch: the service counts none)."""
    folder.mkdir(parents=True, exist_ok=True)
    copy = shutil.copyfile(MODEL_FILE, folder / MODEL_FILE.name)
    metadata = json.loads(metadata_path(MODEL_FILE).read_text())
    if not drift:
        del metadata["drift_reference"]
    metadata_path(copy).write_text(json.dumps(metadata))
    return copy


def peers(workers: int, build: bool) -> list[Contender]:
    """What a user would pick instead, serving the same pickle with scikit-learn per request and
    the model's threshold, with their usual settings (access logs on)."""
    threshold = json.loads(metadata_path(MODEL_FILE).read_text())["threshold"]
    model = {"MODEL_FILE": str(MODEL_FILE), "CHURN_THRESHOLD": str(threshold)}
    uvicorn = ["-m", "uvicorn", "--host", "127.0.0.1", "--port", "{port}", "--loop", "uvloop",
               "--http", "httptools", "--workers", str(workers), "fastapi_service:app"]  # fmt: skip
    bentoml = ["-m", "bentoml", "serve", "bentoml_service:Churn", "--host", "127.0.0.1",
               "--port", "{port}"]  # fmt: skip
    bentoml_env = {"WEB_CONCURRENCY": str(workers), "BENTOML_DO_NOT_TRACK": "True",
                   "BENTOML_HOME": str(cache_root() / "bentoml-home")}  # fmt: skip
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
    """``contender`` run by its own environment's Python, or marked unavailable saying why."""
    python, unavailable = peer_python(contender.key, build)
    if python is None:
        return replace(contender, peer=True, unavailable=unavailable, command=[])
    # BentoML and MLServer start several processes that each import scikit-learn: ~10 s idle.
    command = [str(python), *contender.command]
    return replace(contender, command=command, peer=True, start_timeout_s=120.0)


def cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "churn-serving-bench"


def peer_python(key: str, build: bool, requirements_dir: Path = PEERS) -> tuple[Path | None, str]:
    """The Python of ``key``'s environment, built first when missing and ``build`` is set; or
    None and why not. The requirements' hash names the folder, so a built one is reused offline."""
    lock = json.loads((PROJECT_ROOT / "Pipfile.lock").read_text())["default"]
    lines = (requirements_dir / f"{key}.txt").read_text().splitlines()
    wanted = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    wanted += [f"{name}{lock[name]['version']}" for name in MODEL_LIBRARIES]
    digest = hashlib.sha256("\n".join([platform.python_version(), *wanted]).encode())
    folder = cache_root() / f"{key}-{digest.hexdigest()[:12]}"
    complete = folder / ".complete"  # written last: without it, a build did not finish
    if not complete.exists():
        if not build:
            return None, f"its environment is not built ({folder}); `make bench` builds it"
        shutil.rmtree(folder, ignore_errors=True)
        print(f"  building {folder.name} in {folder.parent} (once; needs PyPI)", flush=True)
        pip = [str(folder / "bin" / "python"), "-m", "pip", "install", "--quiet", *wanted]
        for step in ([sys.executable, "-m", "venv", str(folder)], pip):
            try:
                done = subprocess.run(step, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                return None, f"building its environment took over {BUILD_TIMEOUT_S} s"
            if done.returncode != 0:
                errors = [line for line in done.stderr.splitlines() if line.startswith("ERROR")]
                last = (errors or done.stderr.strip().splitlines() or ["no output"])[-1]
                return None, f"its environment could not be built: {last.strip()}"
        complete.touch()
        for stale in folder.parent.glob(f"{key}-*"):  # environments of older requirements
            if stale != folder:
                shutil.rmtree(stale, ignore_errors=True)
    return folder / "bin" / "python", ""
