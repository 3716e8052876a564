"""Every environment variable the project reads, each read once here (with pydantic: a value it
refuses raises ``ConfigError`` naming the variable; blank text is unset), and the project's
constants. ``python -m churn.config`` prints the README's configuration table."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Self, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DATA_FILENAME = "WA_Fn-UseC_-Telco-Customer-Churn.csv"
COURSE_CODE = "https://raw.githubusercontent.com/alexeygrigorev/mlbookcamp-code/master"
DATA_URL = f"{COURSE_CODE}/chapter-03-churn-prediction/{DATA_FILENAME}"
DEFAULT_DATA_PATH = Path("data") / DATA_FILENAME
DEFAULT_MODEL_FILE = "model_C=1.0.bin"
THRESHOLD_FROM_ENVIRONMENT = "CHURN_THRESHOLD"  # a threshold that overrides the model's
Lower = BeforeValidator(str.lower)  # LOG_FORMAT=TEXT is text
Level = Annotated[Literal["debug", "info", "warning", "error", "critical"], Lower]
Format = Annotated[Literal["json", "text"], Lower]


class ConfigError(ValueError):
    """An environment variable holds a value the project cannot use."""


def var(env: str, default: Any, doc: str, ge: float | None = None, le: float | None = None,
        shown: str = "") -> Any:  # fmt: skip
    """A setting read from ``env``, within [ge, le]; ``shown``: the README's default if not it."""
    literal = f"{default:d}" if isinstance(default, bool) else default  # `1`, not `True`
    shown = shown or ("unset" if default is None else f"`{literal}`")
    # The description is the README table's two cells after the name (markdown_table).
    return Field(default, alias=env, description=f"{shown} | {doc}", ge=ge, le=le)


class _FromEnv(BaseModel):
    model_config = ConfigDict(frozen=True, validate_by_name=True, allow_inf_nan=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Self:
        """The settings in ``env`` (default: this process's environment)."""
        env = os.environ if env is None else env
        values: dict[str, str | None] = {}
        for item in cls.model_fields.values():
            name = str(item.alias)
            raw = env.get(name, "").strip()
            if raw:
                values[name] = raw
            elif name in env and type(None) in get_args(item.annotation):  # blank: off
                values[name] = None
        try:
            return cls.model_validate(values)
        except ValidationError as error:
            problem = error.errors()[0]  # "Input should be ...": say which input
            name, why = str(problem["loc"][0]), problem["msg"].removeprefix("Input ")
            raise ConfigError(f"{name}={values[name]!r} {why}") from None


# fmt: off
class Settings(_FromEnv):
    """What the service process reads: the app (``create_app``) and gunicorn.conf.py."""

    model_file: Path = var("MODEL_FILE", Path(DEFAULT_MODEL_FILE), "the model (`.json` beside it)")
    threshold: float | None = var(THRESHOLD_FROM_ENVIRONMENT, None,
        "probability from which `churn` is true", 0, 1, shown="the model's")
    max_batch_size: int = var("MAX_BATCH_SIZE", 1000, "most customers in a request", 1, 10**6)
    max_body_bytes: int = var("MAX_BODY_BYTES", 2 << 20, "largest body, bytes", 1024, 1 << 30)
    api_key: str | None = var("API_KEY", None,
        "key the API asks for (`Authorization: Bearer KEY` or `X-API-Key: KEY`)")
    host: str = var("HOST", "0.0.0.0", "interface to listen on")  # noqa: S104 - a container's
    port: int = var("PORT", 9696, "port to listen on", 1, 65535)
    workers: int = var("WEB_CONCURRENCY", os.cpu_count() or 1, "worker processes", 1, 256,
        shown="cores")
    threads: int = var("GUNICORN_THREADS", 2, "threads per worker", 1, 64)
    keepalive: int = var("GUNICORN_KEEPALIVE", 5, "seconds an idle connection stays", 0, 3600)
    timeout: int = var("GUNICORN_TIMEOUT", 30, "seconds before a stuck worker restarts", 1, 3600)
    graceful_timeout: int = var("GUNICORN_GRACEFUL_TIMEOUT", 8,
        "seconds requests get to finish at a stop", 0, 3600)
    reuse_port: bool = var("GUNICORN_REUSE_PORT", True, "`0`: one socket for all workers")
    access_log: str | None = var("GUNICORN_ACCESSLOG", "-",
        "access log (`-`: stdout; empty: off, the image's default)")
    log_level: Level = var("LOG_LEVEL", "info", "least level logged")
    log_format: Format = var("LOG_FORMAT", "text" if sys.stderr.isatty() else "json",  # a person
        "`json` or `text`", shown="`text` in a terminal, else `json`")  # reads a terminal
    metrics_dir: Path | None = var("PROMETHEUS_MULTIPROC_DIR", None,
        "workers' metric files (emptied)", shown="a temp folder")
    shadow_model_file: Path | None = var("SHADOW_MODEL_FILE", None,
        "a model to compare, not answer")
    shadow_sample: float = var("SHADOW_SAMPLE", 1.0, "share of requests it scores", 0, 1)
    capture_database_url: str | None = var("CAPTURE_DATABASE_URL", None,
        "PostgreSQL URL to record predictions in (unset: not kept)")
    capture_features: bool = var("CAPTURE_FEATURES", False,
        "`1`: record customers' fields too (personal data)")
    flask_debug: bool = var("FLASK_DEBUG", False, "`1`: debugger, `predict.py` only")


class DataSettings(_FromEnv):
    """What training and the tests read to find the Telco CSV (churn/data.py)."""

    data_file: Path | None = var("CHURN_DATA", None, "the Telco CSV",
        shown=f"`{DEFAULT_DATA_PATH}`")
    data_url: str = var("CHURN_DATA_URL", DATA_URL, "where it is downloaded from", shown="GitHub")
# fmt: on


def markdown_table() -> str:
    """The README's configuration table."""
    variables = [*Settings.model_fields.values(), *DataSettings.model_fields.values()]
    rows = [f"| `{variable.alias}` | {variable.description} |" for variable in variables]
    return "\n".join(["| variable | default | what |", "| --- | --- | --- |", *rows])


if __name__ == "__main__":
    print(markdown_table())
