"""Every environment variable the project reads, each read once here, and the project's constants.

``Settings.from_env()`` (the service) and ``DataSettings.from_env()`` (training, tests) read the
variables; a value that cannot be used raises ``ConfigError`` naming the variable. A variable
set to blank text is unset. ``python -m churn.config`` prints the README's configuration table.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Self

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
DEFAULT_AUC_TOLERANCE = 0.005  # a retrained model this much worse on held-out AUC needs --force
# The decision threshold in force comes from the course's default, from costs at training (both
# saved in the model's metadata), or from the environment where the service runs.
DEFAULT_THRESHOLD = 0.5
THRESHOLD_ENV = "CHURN_THRESHOLD"
THRESHOLD_FROM_DEFAULT, THRESHOLD_FROM_COSTS = "default", "costs"
THRESHOLD_FROM_ENVIRONMENT = THRESHOLD_ENV
LEVELS = ("debug", "info", "warning", "error", "critical")
FORMATS, TTY = ("json", "text"), "`text` in a terminal, else `json`"
TTY_FORMAT = "text" if sys.stderr.isatty() else "json"  # a person reads a terminal
CORES = os.cpu_count() or 1


def model_filename(c: float) -> str:
    """The course's artifact name: ``model_C=1.0.bin`` for C=1.0."""
    return f"model_C={c}.bin"


def metadata_path(model_path: Path) -> Path:
    """Where a model's JSON metadata lives: beside it, same stem."""
    return model_path.with_suffix(".json")


def report_path(model_path: Path, refused: bool = False) -> Path:
    """Training's report, ``model_C=1.0.report.html``; a refused model's has its own name."""
    return model_path.with_suffix(".refused.report.html" if refused else ".report.html")


class ConfigError(ValueError):
    """An environment variable holds a value the project cannot use."""


def var(env: str, default: Any, doc: str, low: float = -math.inf, high: float = math.inf,
        choices: tuple[str, ...] = (), shown: str = "") -> Any:  # fmt: skip
    """A field read from ``env``: numbers within [low, high], text in ``choices`` if given;
    ``shown``: the README's default where it is not the literal one."""
    shown = shown or ("unset" if default is None else f"`{default}`")
    meta = {"env": env, "doc": doc, "low": low, "high": high, "choices": choices, "shown": shown}
    return field(default=default, metadata=meta)


BOOLEANS = {"1": True, "true": True, "on": True, "0": False, "false": False, "off": False}


def _parse(kind: str, raw: str, meta: Mapping[str, Any]) -> Any:
    """``raw`` as a field of type ``kind``, or ValueError saying what is wrong with it."""
    if kind.startswith("bool"):
        if raw.lower() not in BOOLEANS:
            raise ValueError("must be 1 or 0 (or true/false)")
        return BOOLEANS[raw.lower()]
    if kind.startswith("Path"):
        return Path(raw)
    if meta["choices"] and raw.lower() not in meta["choices"]:
        raise ValueError("must be one of " + ", ".join(meta["choices"]))
    if not kind.startswith(("int", "float")):
        return raw.lower() if meta["choices"] else raw
    if kind.startswith("int") and not raw.lstrip("+-").isdigit():
        raise ValueError("is not a whole number")  # "2.5" is refused, not truncated
    try:
        value = int(raw) if kind.startswith("int") else float(raw)
    except ValueError:
        raise ValueError("is not a number") from None
    if not meta["low"] <= value <= meta["high"]:  # nan is in no range
        raise ValueError(f"must be between {meta['low']:g} and {meta['high']:g}")
    return value


class _FromEnv:
    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Self:
        """The settings in ``env`` (default: this process's environment)."""
        env, values = os.environ if env is None else env, {}
        for item in fields(cls):  # type: ignore[arg-type]  # the subclasses are dataclasses
            name, kind = item.metadata["env"], str(item.type)  # the annotation's text
            if raw := env.get(name, "").strip():
                try:
                    values[item.name] = _parse(kind, raw, item.metadata)
                except ValueError as error:
                    raise ConfigError(f"{name}={raw!r} {error}") from None
            elif name in env and "None" in kind:  # set but blank: off, where unset is possible
                values[item.name] = None
        return cls(**values)


@dataclass(frozen=True)
class Settings(_FromEnv):
    """What the service process reads: the app (``create_app``) and gunicorn.conf.py."""

    model_file: Path = var("MODEL_FILE", Path(DEFAULT_MODEL_FILE), "the model (`.json` beside it)")
    threshold: float | None = var(
        THRESHOLD_ENV, None, "probability from which `churn` is true", 0, 1, shown="the model's"
    )
    max_batch_size: int = var("MAX_BATCH_SIZE", 1000, "most customers in a request", 1, 10**6)
    max_body_bytes: int = var("MAX_BODY_BYTES", 2 << 20, "largest body, bytes", 1024, 1 << 30)
    api_key: str | None = var(
        "API_KEY", None, "key the API asks for (`Authorization: Bearer KEY` or `X-API-Key: KEY`)"
    )
    host: str = var("HOST", "0.0.0.0", "interface to listen on")  # noqa: S104 - a container's
    port: int = var("PORT", 9696, "port to listen on", 1, 65535)
    workers: int = var("WEB_CONCURRENCY", CORES, "worker processes", 1, 256, shown="cores")
    threads: int = var("GUNICORN_THREADS", 2, "threads per worker", 1, 64)
    keepalive: int = var("GUNICORN_KEEPALIVE", 5, "seconds an idle connection stays", 0, 3600)
    timeout: int = var("GUNICORN_TIMEOUT", 30, "seconds before a stuck worker restarts", 1, 3600)
    graceful_timeout: int = var(
        "GUNICORN_GRACEFUL_TIMEOUT", 8, "seconds requests get to finish at a stop", 0, 3600
    )
    reuse_port: bool = var(
        "GUNICORN_REUSE_PORT", True, "`0`: one socket for all workers", shown="`1`"
    )
    access_log: str | None = var(
        "GUNICORN_ACCESSLOG", "-", "access log (`-`: stdout; empty: off, the image's default)"
    )
    log_level: str = var("LOG_LEVEL", "info", "least level logged", choices=LEVELS)
    log_format: str = var("LOG_FORMAT", TTY_FORMAT, "`json` or `text`", choices=FORMATS, shown=TTY)
    metrics_dir: Path | None = var(
        "PROMETHEUS_MULTIPROC_DIR", None, "workers' metric files (emptied)", shown="a temp folder"
    )
    shadow_model_file: Path | None = var(
        "SHADOW_MODEL_FILE", None, "a model to compare, not answer"
    )
    shadow_sample: float = var("SHADOW_SAMPLE", 1.0, "share of requests it scores", 0, 1)
    capture_database_url: str | None = var(
        "CAPTURE_DATABASE_URL", None, "PostgreSQL URL to record predictions in (unset: not kept)"
    )
    capture_features: bool = var(
        "CAPTURE_FEATURES", False, "`1`: record customers' fields too (personal data)", shown="`0`"
    )
    flask_debug: bool = var("FLASK_DEBUG", False, "`1`: debugger, `predict.py` only", shown="`0`")


@dataclass(frozen=True)
class DataSettings(_FromEnv):
    """What training and the tests read to find the Telco CSV (churn/data.py)."""

    data_file: Path | None = var(
        "CHURN_DATA", None, "the Telco CSV", shown=f"`{DEFAULT_DATA_PATH}`"
    )
    data_url: str = var("CHURN_DATA_URL", DATA_URL, "where it is downloaded from", shown="GitHub")


def markdown_table() -> str:
    """The README's configuration table."""
    rows = [
        f"| `{item.metadata['env']}` | {item.metadata['shown']} | {item.metadata['doc']} |"
        for item in (*fields(Settings), *fields(DataSettings))
    ]
    return "\n".join(["| variable | default | what |", "| --- | --- | --- |", *rows])


if __name__ == "__main__":
    print(markdown_table())
