"""Reading and writing the model artifact: the pickled pair and the JSON metadata beside it.

The artifact stays what the course's ``predict.py`` loads (``dv, model = pickle.load(f)``), but
the service never calls plain ``pickle.load`` on it: a pickle can name any callable, so loading
goes through an unpickler that only resolves the handful of classes the pair is made of.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LogisticRegression

from churn.config import metadata_path

# (module, name) pairs a (DictVectorizer, LogisticRegression) pickle needs, across the numpy 1.x
# ("numpy.core") and 2.x ("numpy._core") module names.
ALLOWED_GLOBALS = frozenset(
    {
        ("sklearn.feature_extraction._dict_vectorizer", "DictVectorizer"),
        ("sklearn.linear_model._logistic", "LogisticRegression"),
        ("numpy", "dtype"),
        ("numpy", "ndarray"),
        ("numpy", "float64"),
        ("numpy", "int64"),
        *(
            (f"numpy.{core}.{module}", name)
            for core in ("core", "_core")
            for module, name in (
                ("numeric", "_frombuffer"),
                ("multiarray", "_reconstruct"),
                ("multiarray", "scalar"),
            )
        ),
    }
)


class ModelFileError(Exception):
    """The model file is missing, unreadable, unsafe or not the expected pair."""


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ALLOWED_GLOBALS:
            raise ModelFileError(
                f"refusing to load {module}.{name}: a model file may only contain a "
                "DictVectorizer and a LogisticRegression"
            )
        return super().find_class(module, name)


def _retrain_hint(path: Path) -> str:
    return f"Retrain with `python train.py --output {path}` or restore the committed file."


def load_pair(path: Path) -> tuple[DictVectorizer, LogisticRegression, bytes]:
    """Load ``(dv, model)`` safely; also return the raw bytes (their hash is the version)."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise ModelFileError(
            f"cannot read model file {path}: {error.strerror}. " + _retrain_hint(path)
        ) from None
    try:
        pair = _RestrictedUnpickler(io.BytesIO(raw)).load()
    except ModelFileError as error:
        raise ModelFileError(f"{path}: {error}. " + _retrain_hint(path)) from None
    except Exception as error:  # truncated or foreign files fail in many ways inside pickle
        raise ModelFileError(
            f"{path} is not a readable model pickle ({type(error).__name__}). "
            + _retrain_hint(path)
        ) from None
    _check_pair(pair, path)
    dv, model = pair
    return dv, model, raw


def _check_pair(pair: Any, path: Path) -> None:
    if not (
        isinstance(pair, tuple)
        and len(pair) == 2
        and isinstance(pair[0], DictVectorizer)
        and isinstance(pair[1], LogisticRegression)
        and hasattr(pair[0], "vocabulary_")
        and hasattr(pair[1], "coef_")
        and len(pair[1].classes_) == 2
    ):
        raise ModelFileError(
            f"{path} does not hold a fitted (DictVectorizer, LogisticRegression) pair "
            "for a yes/no target. " + _retrain_hint(path)
        )


def load_metadata(model_path: Path) -> dict[str, Any]:
    path = metadata_path(model_path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ModelFileError(
            f"cannot read model metadata {path}: {error.strerror}. " + _retrain_hint(model_path)
        ) from None
    except ValueError:
        raise ModelFileError(f"{path} is not valid JSON. " + _retrain_hint(model_path)) from None


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_atomically(path: Path, data: bytes) -> None:
    """Write to a temporary file beside ``path``, flush it to disk, then rename over ``path``.

    A crash at any point leaves either the old file or the new one, never half of one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    finally:
        Path(tmp_name).unlink(missing_ok=True)


def save(
    path: Path, dv: DictVectorizer, model: LogisticRegression, metadata: dict[str, Any]
) -> dict[str, Any]:
    """Save the pair as the course's plain pickle, and its metadata (with the pickle's hash)."""
    raw = pickle.dumps((dv, model), protocol=pickle.HIGHEST_PROTOCOL)
    metadata = {**metadata, "artifact_sha256": sha256_hex(raw), "artifact_file": path.name}
    write_atomically(path, raw)
    text = json.dumps(metadata, indent=2, sort_keys=True) + "\n"
    write_atomically(metadata_path(path), text.encode("utf-8"))
    return metadata
