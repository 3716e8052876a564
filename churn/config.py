"""Every setting read from the environment, plus the project's paths and data-set constants.

This is the one module that reads ``os.environ`` for the project's settings. Each variable is
defined once, as a field of a settings class below, with its name, default, bounds and what it
does: ``Settings`` for the service process (the app and gunicorn.conf.py), ``DataSettings`` for
training. A value that cannot be used stops start-up with a ``ConfigError`` naming the variable.
The README's configuration table is generated from these fields (``python -m churn.config``) and
tests/test_config.py checks the two agree.

A new setting is one field: ``name: type = setting("ENV_NAME", default, parser, "what it does")``
(churn/envvars.py has the parsers and their bounds).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import Field, dataclass, fields
from pathlib import Path
from typing import Any

from churn.envvars import ConfigError as ConfigError  # callers catch it from here
from churn.envvars import (
    boolean,
    number,
    one_of,
    path,
    read,
    setting,
    text,
    whole,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent

DATA_FILENAME = "WA_Fn-UseC_-Telco-Customer-Churn.csv"
DATA_URL = (
    "https://raw.githubusercontent.com/alexeygrigorev/mlbookcamp-code/master/"
    "chapter-03-churn-prediction/" + DATA_FILENAME
)
DATA_SHA256 = "88be4b93fbe0cc83421af1c503794c97c342eca914c1576db7c276e61d61358a"
DEFAULT_DATA_PATH = Path("data") / DATA_FILENAME

DEFAULT_C = 1.0
DEFAULT_FOLDS = 5
DEFAULT_MODEL_FILE = "model_C=1.0.bin"
DEFAULT_PORT = 9696
# A retrained model this much worse on held-out AUC than the one it replaces needs --force.
DEFAULT_AUC_TOLERANCE = 0.005

# The decision threshold in force, and where it comes from: the course's default, chosen from
# costs at training (both saved in the metadata), or overridden where the service runs.
DEFAULT_THRESHOLD = 0.5
THRESHOLD_ENV = "CHURN_THRESHOLD"
THRESHOLD_FROM_DEFAULT = "default"
THRESHOLD_FROM_COSTS = "costs"
THRESHOLD_FROM_ENVIRONMENT = THRESHOLD_ENV


def model_filename(c: float) -> str:
    """The course's artifact name: ``model_C=1.0.bin`` for C=1.0."""
    return f"model_C={c}.bin"


def metadata_path(model_path: Path) -> Path:
    """Where the JSON metadata of a model artifact lives: beside it, same stem."""
    return model_path.with_suffix(".json")


def report_path(model_path: Path, refused: bool = False) -> Path:
    """Where training writes its report: ``model_C=1.0.report.html`` (PNGs in ``….report/``).

    A refused model's report gets its own name, so the kept model's report stays its own.
    """
    return model_path.with_suffix(".refused.report.html" if refused else ".report.html")


class FromEnvironment:
    """``from_env`` for a frozen dataclass whose fields were made with ``setting``."""

    @classmethod
    def from_env(cls: Any, env: Mapping[str, str] | None = None) -> Any:
        """The settings in ``env`` (default: this process's environment)."""
        env = os.environ if env is None else env
        return cls(**dict(read(cls, env)))


# --- The settings ---


@dataclass(frozen=True)
class Settings(FromEnvironment):
    """What the service process reads: the app (``create_app``) and gunicorn.conf.py."""

    model_file: Path = setting(
        "MODEL_FILE",
        Path(DEFAULT_MODEL_FILE),
        path,
        "model to serve (its `.json` metadata must sit beside it)",
    )
    threshold: float | None = setting(
        THRESHOLD_ENV,
        None,
        number(0.0, 1.0),
        "probability at or above which `churn` is true; overrides the model's own (`/model` "
        "says which is in force)",
        shown="from the model's metadata (0.5, or chosen from costs)",
    )
    max_batch_size: int = setting(
        "MAX_BATCH_SIZE", 1000, whole(1, 1_000_000), "most customers in one request"
    )
    max_body_bytes: int = setting(
        "MAX_BODY_BYTES", 2 * 1024 * 1024, whole(1024, 1 << 30), "largest request body, in bytes"
    )
    api_key: str | None = setting(
        "API_KEY",
        None,
        text,
        "when set, `/predict`, `/model`, `/drift` and `/metrics` need "
        "`Authorization: Bearer KEY` or `X-API-Key: KEY`",
    )
    host: str = setting(
        "HOST",
        "0.0.0.0",  # noqa: S104 - a container must listen beyond loopback
        text,
        "interface to bind",
    )
    port: int = setting(
        "PORT",
        DEFAULT_PORT,
        whole(1, 65535),
        "port gunicorn (and `python predict.py`) listens on",
    )
    workers: int = setting(
        "WEB_CONCURRENCY",
        None,
        whole(1, 256),
        "gunicorn worker processes",
        shown="number of cores",
        default_factory=os.cpu_count,
    )
    worker_class: str = setting(
        "GUNICORN_WORKER_CLASS",
        "gthread",
        one_of("gthread", "sync"),
        "`gthread` keeps connections alive between requests; `sync` closes each one",
    )
    threads: int = setting("GUNICORN_THREADS", 2, whole(1, 64), "threads per `gthread` worker")
    keepalive: int = setting(
        "GUNICORN_KEEPALIVE", 5, whole(0, 3600), "seconds an idle kept-alive connection stays open"
    )
    timeout: int = setting(
        "GUNICORN_TIMEOUT",
        30,
        whole(1, 3600),
        "seconds a silent worker may take before the master restarts it",
    )
    graceful_timeout: int = setting(
        "GUNICORN_GRACEFUL_TIMEOUT",
        8,
        whole(0, 3600),
        "seconds in-flight requests get to finish after SIGTERM (8 fits inside `docker stop`'s "
        "10 s, see [Docker](#docker))",
    )
    reuse_port: bool = setting(
        "GUNICORN_REUSE_PORT",
        True,
        boolean,
        "one listening socket per worker (SO_REUSEPORT) so the kernel spreads connections "
        "evenly; `0`: one shared socket. Start-up stops if the port is already taken",
    )
    access_log: str | None = setting(
        "GUNICORN_ACCESSLOG",
        "-",
        text,
        "access log destination (`-` is stdout); set but empty turns it off",
        blank=None,
    )
    log_level: str = setting(
        "LOG_LEVEL",
        "info",
        one_of("debug", "info", "warning", "error", "critical"),
        "gunicorn's and the app's log level",
    )
    metrics_dir: Path | None = setting(
        "PROMETHEUS_MULTIPROC_DIR",
        None,
        path,
        "where gunicorn's workers share metric samples (emptied at start); without gunicorn, "
        "unset means the process's own registry",
        shown="a new temp folder",
    )
    metrics_flush_seconds: float = setting(
        "METRICS_FLUSH_SECONDS",
        1.0,
        number(0.05, 3600),
        "how often each worker hands its counts to the shared metric files (`/metrics` lags "
        "other workers by up to this)",
    )
    shadow_model_file: Path | None = setting(
        "SHADOW_MODEL_FILE",
        None,
        path,
        "a candidate model (its `.json` beside it) scored beside the live one and compared, "
        "never answering; checked like `MODEL_FILE` (README, Monitoring and model rollout)",
    )
    shadow_sample: float = setting(
        "SHADOW_SAMPLE",
        1.0,
        number(0.0, 1.0),
        "share of `/predict` requests the shadow model also scores",
    )
    capture_database_url: str | None = setting(
        "CAPTURE_DATABASE_URL",
        None,
        text,
        "PostgreSQL URL (`postgresql://user:password@host/db`) that every answered customer is "
        "written to, for the outcomes report (docs/outcomes.md); unset: no capture. Checked at "
        "start-up",
    )
    capture_features: bool = setting(
        "CAPTURE_FEATURES",
        False,
        boolean,
        "`1` also stores each captured customer's features as sent (personal data: off by default)",
    )
    flask_debug: bool = setting(
        "FLASK_DEBUG",
        False,
        boolean,
        "`1` turns on the debugger for `python predict.py` only; never in production",
    )


@dataclass(frozen=True)
class DataSettings(FromEnvironment):
    """What training and the tests read to find the Telco CSV (churn/data.py)."""

    data_file: Path | None = setting(
        "CHURN_DATA",
        None,
        path,
        f"the Telco CSV for training and tests; unset: `{DEFAULT_DATA_PATH}`, downloaded when "
        "missing",
    )
    data_url: str = setting(
        "CHURN_DATA_URL",
        DATA_URL,
        text,
        "where that download comes from (a mirror must serve the same file: its SHA-256 is "
        "checked)",
        shown="the course's GitHub copy",
    )


SETTINGS_CLASSES = (Settings, DataSettings)


def variables() -> list[Field]:
    """Every environment variable the project reads, as the fields that define them."""
    return [item for cls in SETTINGS_CLASSES for item in fields(cls)]


def markdown_table() -> str:
    """The README's configuration table."""
    lines = ["| variable | default | what |", "| --- | --- | --- |"]
    for item in variables():
        meta = item.metadata
        lines.append(f"| `{meta['env']}` | {meta['shown']} | {meta['doc']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())
