"""Paths, data-set constants and service settings read from the environment.

Every knob the project has lives here so there is one place to read what can be configured;
the README's configuration table mirrors ``ServiceSettings.from_env``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

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


class ConfigError(ValueError):
    """An environment variable holds a value the service cannot use."""


def model_filename(c: float) -> str:
    """The course's artifact name: ``model_C=1.0.bin`` for C=1.0."""
    return f"model_C={c}.bin"


def metadata_path(model_path: Path) -> Path:
    """Where the JSON metadata of a model artifact lives: beside it, same stem."""
    return model_path.with_suffix(".json")


def _number(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if not low <= value <= high:
        raise ConfigError(f"{name}={raw!r} must be between {low:g} and {high:g}")
    return value


@dataclass(frozen=True)
class ServiceSettings:
    """What the web service reads from its environment (see README, Configuration)."""

    model_file: Path = Path(DEFAULT_MODEL_FILE)
    threshold: float | None = None  # None: use the threshold saved in the model's metadata
    max_batch_size: int = 1000
    max_body_bytes: int = 2 * 1024 * 1024
    api_key: str | None = None
    # How often each worker hands its tallied counts to the shared Prometheus files (tally.py).
    metrics_flush_seconds: float = 1.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ServiceSettings:
        env = os.environ if env is None else env
        threshold_raw = env.get("CHURN_THRESHOLD", "").strip()
        return cls(
            model_file=Path(env.get("MODEL_FILE", "").strip() or DEFAULT_MODEL_FILE),
            threshold=_number(env, "CHURN_THRESHOLD", 0.5, 0.0, 1.0) if threshold_raw else None,
            max_batch_size=int(_number(env, "MAX_BATCH_SIZE", 1000, 1, 1_000_000)),
            max_body_bytes=int(_number(env, "MAX_BODY_BYTES", 2 * 1024 * 1024, 1024, 1 << 30)),
            api_key=env.get("API_KEY", "").strip() or None,
            metrics_flush_seconds=_number(env, "METRICS_FLUSH_SECONDS", 1.0, 0.05, 3600),
        )
