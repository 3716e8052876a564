"""The model as batch scoring ships it: the artifact's bytes, their metadata and a threshold.

A ``BatchModel`` pickles to a few kilobytes, so Spark can send it to every executor, where it
rebuilds the service's ``Predictor`` with numpy and pydantic only (no scikit-learn, no pandas).
Every copy, built or unpickled, first checks the bytes against their SHA-256.
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
    source: str  # the path or URI it was read from, for messages

    @classmethod
    def load(cls, path: Path, threshold: float | None = None) -> BatchModel:
        weights, metadata = artifact.load_weights(path), artifact.load_metadata(path)
        return cls.checked(weights, metadata, str(path), threshold)

    @classmethod
    def checked(
        cls,
        weights: artifact.ModelWeights,
        metadata: dict[str, Any],
        source: str,
        threshold: float | None,
    ) -> BatchModel:
        """Checked against its metadata as the service checks it; raises ``ModelFileError``."""
        predictor = Predictor.build(weights, metadata, Path(source), threshold)
        return cls(weights.raw, metadata, predictor.version, predictor.threshold, source)

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

    def __reduce__(self) -> tuple[type, tuple[Any, ...]]:
        # Unpickled through the constructor, so each copy (each Spark task) checks its bytes;
        # the built predictor holds pydantic classes made at run time and is rebuilt, not sent.
        fields = (self.artifact_bytes, self.metadata, self.version, self.threshold, self.source)
        return type(self), fields
