"""Reading and writing the model artifact: the pickled pair and the JSON metadata beside it.

The artifact stays what the course's ``predict.py`` loads (``dv, model = pickle.load(f)``), but
the service never calls plain ``pickle.load`` on it: a pickle can name any callable. Loading goes
through an unpickler that resolves only numpy's array builders and, for the two scikit-learn
classes, inert stand-ins that just keep the fitted state. So no code from the file runs, and
serving needs neither scikit-learn nor the scipy and pandas it imports.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# numpy's array and scalar builders, under numpy 1.x ("numpy.core") and 2.x ("numpy._core").
NUMPY_GLOBALS = {("numpy", name) for name in ("dtype", "ndarray", "float64", "int64")} | {
    (f"numpy.{core}.{module}", name)
    for core in ("core", "_core")
    for module, name in (
        ("numeric", "_frombuffer"),
        ("multiarray", "_reconstruct"),
        ("multiarray", "scalar"),
    )
}


# The threshold a model's metadata holds: the course's, or one chosen from costs at training.
DEFAULT_THRESHOLD, THRESHOLD_FROM_DEFAULT, THRESHOLD_FROM_COSTS = 0.5, "default", "costs"


def model_filename(c: float) -> str:
    """The course's artifact name: ``model_C=1.0.bin`` for C=1.0."""
    return f"model_C={c}.bin"


def metadata_path(model_path: Path) -> Path:
    """Where a model's JSON metadata lives: beside it, same stem."""
    return model_path.with_suffix(".json")


class ModelFileError(Exception):
    """The model file is missing, unreadable, unsafe or not the expected pair."""


class _FittedState:
    """Stands in for a scikit-learn estimator: keeps the pickled attributes, runs nothing."""

    def __setstate__(self, state: Any) -> None:
        self.state = state if isinstance(state, dict) else {}


class _Vectorizer(_FittedState): ...


class _Classifier(_FittedState): ...


STAND_INS = {
    ("sklearn.feature_extraction._dict_vectorizer", "DictVectorizer"): _Vectorizer,
    ("sklearn.linear_model._logistic", "LogisticRegression"): _Classifier,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in STAND_INS:
            return STAND_INS[module, name]
        if (module, name) in NUMPY_GLOBALS:
            return super().find_class(module, name)
        raise ModelFileError(
            f"refusing to load {module}.{name}: a model file may only contain a "
            "DictVectorizer and a LogisticRegression"
        )


@dataclass(frozen=True)
class ModelWeights:
    """What serving needs from the pair: each feature's weight, the intercept, the raw bytes."""

    weights: dict[str, float]
    separator: str
    intercept: float
    raw: bytes


def _retrain_hint(path: Path) -> str:
    return f"Retrain with `python train.py --output {path}` or restore the committed file."


def load_weights(path: Path) -> ModelWeights:
    """Load the pair without running any code from the file; raise ``ModelFileError``."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        reason = f"cannot read model file {path}: {error.strerror}. "
        raise ModelFileError(reason + _retrain_hint(path)) from None
    return weights_from_bytes(raw, path)


def weights_from_bytes(raw: bytes, path: Path) -> ModelWeights:
    """The pair in ``raw``, the bytes of the file at ``path``."""
    try:
        pair = _RestrictedUnpickler(io.BytesIO(raw)).load()
    except ModelFileError as error:
        raise ModelFileError(f"{path}: {error}. " + _retrain_hint(path)) from None
    except Exception as error:  # truncated or foreign files fail in many ways inside pickle
        reason = f"{path} is not a readable model pickle ({type(error).__name__}). "
        raise ModelFileError(reason + _retrain_hint(path)) from None
    try:
        vectorizer, classifier = pair  # ValueError/TypeError unless a pair
        if not (isinstance(vectorizer, _Vectorizer) and isinstance(classifier, _Classifier)):
            raise TypeError("not a (DictVectorizer, LogisticRegression) pair")
        vocabulary: dict[str, int] = vectorizer.state["vocabulary_"]
        coef = np.asarray(classifier.state["coef_"], dtype=np.float64)
        intercept = np.asarray(classifier.state["intercept_"], dtype=np.float64)
        if len(classifier.state["classes_"]) != 2 or coef.shape != (1, len(vocabulary)):
            raise ValueError("not a binary model over the vectorizer's features")
        weights = {str(name): float(coef[0, int(column)]) for name, column in vocabulary.items()}
        separator = str(vectorizer.state.get("separator", "="))
        return ModelWeights(weights, separator, float(intercept[0]), raw)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError):
        raise ModelFileError(
            f"{path} does not hold a fitted (DictVectorizer, LogisticRegression) pair "
            "for a yes/no target. " + _retrain_hint(path)
        ) from None


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
    """Write to a temporary file beside ``path``, flush it to disk, then rename over ``path``:
    a crash at any point leaves either the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp makes the file private (0600); give it the mode a plain open() would, so a
        # retrained model stays readable by the container's unprivileged user.
        umask = os.umask(0)  # the only way to read the umask is to set it
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    finally:
        Path(tmp_name).unlink(missing_ok=True)


def pack(path: Path, dv: Any, model: Any, metadata: dict[str, Any]) -> tuple[bytes, dict]:
    """The course's plain pickle of the pair, and the metadata completed with its hash."""
    raw = pickle.dumps((dv, model), protocol=pickle.HIGHEST_PROTOCOL)
    return raw, {**metadata, "artifact_sha256": sha256_hex(raw), "artifact_file": path.name}


def write(path: Path, raw: bytes, metadata: dict[str, Any]) -> None:
    """Write the pickle, then its metadata, each atomically."""
    write_atomically(path, raw)
    text = json.dumps(metadata, indent=2, sort_keys=True) + "\n"
    write_atomically(metadata_path(path), text.encode("utf-8"))
