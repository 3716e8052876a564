"""The servers `make bench` measures: one ``Contender`` per row of the report.

To add a row, add a ``Contender`` to ``contenders()`` with the role it plays in the ratios:
the report finds this service, the course's way, the ceiling and the peers by role, never by
position or name. A server that needs more than a command (another virtual environment, a
container) can still be a plain ``Contender``: build what it needs before returning it, or return
it with ``unavailable`` saying why it cannot run here, and the report shows that reason instead of
numbers.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from bench.servers import gunicorn_command
from churn.config import PROJECT_ROOT

BENCH = PROJECT_ROOT / "bench"


class Role(StrEnum):
    """What a row is compared as; for each ratio the report takes the first row of a role."""

    OURS = "ours"  # this service as shipped: every ratio is about it
    COURSE = "course"  # the course's way (ratio: ours / course)
    CEILING = "ceiling"  # parse + constant under our settings (ratio: ours / ceiling)
    PEER = "peer"  # a server a user would pick instead (ratio: ours / best peer)
    OTHER = "other"  # shown for information: ours with other settings, other baselines


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
    # Software versions the row depends on beyond the project's own lock (peers), for the report.
    versions: dict[str, str] = field(default_factory=dict)
    # Why this server cannot run here (not installed, failed to build); None when it can.
    unavailable: str | None = None


def contenders(workers: int) -> list[Contender]:
    """Every row of the report, this service first."""
    bind = ["--bind", "127.0.0.1:{port}"]
    ours = {"WEB_CONCURRENCY": str(workers)}
    # The course's way runs from a folder without a gunicorn.conf.py: gunicorn reads one from
    # the working directory when there is one, and ours there would change the baseline's
    # workers, worker class and logging. WEB_CONCURRENCY is gunicorn's default worker count.
    course = {"MODEL_FILE": str(PROJECT_ROOT / "model_C=1.0.bin")}
    return [
        Contender("churn-serving", gunicorn_command(), ours, workers, Role.OURS),
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
    ]
