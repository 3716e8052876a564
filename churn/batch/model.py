"""The model as batch scoring ships it: the artifact's bytes, their metadata and a threshold.

A ``BatchModel`` pickles to a few kilobytes, so Spark can send it to every executor. Each copy
checks the bytes against their SHA-256 when it is built or unpickled, then rebuilds the same
``Predictor`` the service uses (weights, pydantic validator, rules) with numpy and pydantic only:
no scikit-learn and no pandas on executors.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from churn import artifact
from churn.artifact import ModelFileError
from churn.predictor import Predictor


@dataclass(frozen=True)
class BatchModel:
    artifact_bytes: bytes
    metadata: dict[str, Any]
    version: str  # SHA-256 of artifact_bytes, as the service reports it
    threshold: float
    source: str = "model"

    @classmethod
    def load(cls, path: Path, threshold: float | None = None) -> BatchModel:
        """Load and check the artifact as the service does; raises ``ModelFileError``."""
        weights = artifact.load_weights(path)
        metadata = artifact.load_metadata(path)
        predictor = Predictor.build(weights, metadata, path, threshold)
        return cls(weights.raw, metadata, predictor.version, predictor.threshold, str(path))

    def __post_init__(self) -> None:
        actual = artifact.sha256_hex(self.artifact_bytes)
        if actual != self.version:
            raise ModelFileError(
                f"the model bytes of {self.source} have SHA-256 {actual}, expected "
                f"{self.version}: they were damaged on the way; submit the job again."
            )

    @cached_property
    def predictor(self) -> Predictor:
        weights = artifact.weights_from_bytes(self.artifact_bytes, Path(self.source))
        return Predictor.build(weights, self.metadata, Path(self.source), self.threshold)

    def __getstate__(self) -> dict[str, Any]:
        # The built predictor holds pydantic classes made at run time: rebuilt, not pickled.
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            object.__setattr__(self, name, value)
        self.__post_init__()  # every unpickled copy (each Spark task) checks its bytes
