"""``score_record_batch``, what both engines run on a batch: the service's validator and scorer,
every row in exactly one of the scores and the rejects; ``BatchModel``, the model they run."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from churn import artifact
from churn.artifact import ModelFileError
from churn.columns import KNOWN_KEYS, Problem, to_arrow
from churn.features import FEATURE_FIELDS, normalize_token
from churn.predictor import Predictor
from churn.schema import ID_KEYS

PROBABILITY, DECISION, ROW = "churn_probability", "churn", "row"
DEFAULT_ID_COLUMN = "customer_id"  # the rejects' id column when the input has none


class InputFileError(Exception):
    """The input file cannot be scored at all (missing or duplicated columns, unreadable)."""


@dataclass(frozen=True)
class BatchModel:
    """The artifact's bytes, their metadata and a threshold: a few kilobytes pickled, rebuilt on
    each Spark task into the service's ``Predictor`` (numpy and pydantic only). Every copy,
    built or unpickled, first checks the bytes against their SHA-256."""

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


def wanted(names: list[str]) -> list[str]:
    """The columns scoring needs, in any spelling; unknown columns are ignored."""
    return [name for name in names if normalize_token(name) in KNOWN_KEYS]


@dataclass(frozen=True)
class Layout:
    """Where each field is in a batch: column index by course-spelling field name."""

    index: Mapping[str, int]
    id_column: str | None  # the input's own name for the customer id, if it has one

    @classmethod
    def of(cls, names: list[str]) -> Layout:
        """From a batch's or a file's column names; unknown columns are ignored."""
        index: dict[str, int] = {}
        for position, name in enumerate(names):
            field = normalize_token(name)
            if field in index:
                raise InputFileError(
                    f"columns {names[index[field]]!r} and {name!r} are both {field}"
                )
            if field in KNOWN_KEYS:
                index[field] = position
        missing = [field for field in FEATURE_FIELDS if field not in index]
        if missing:
            raise InputFileError(f"missing column(s): {', '.join(missing)}")
        ids = [names[index[key]] for key in ID_KEYS if key in index]  # in precedence
        return cls(index, ids[0] if ids else None)

    def output_schema(self) -> pa.Schema:
        key = (self.id_column, pa.string()) if self.id_column else (ROW, pa.int64())
        return pa.schema([key, (PROBABILITY, pa.float64()), (DECISION, pa.bool_())])

    def rejects_schema(self) -> pa.Schema:
        """One line per problem: the 1-based data row, the customer id, the field, the message."""
        texts = (self.id_column or DEFAULT_ID_COLUMN, "field", "message")
        return pa.schema([(ROW, pa.int64()), *((name, pa.string()) for name in texts)])


def score_record_batch(
    batch: pa.RecordBatch | list[Any],
    model: BatchModel,
    first_row: int,
    layout: Layout | None = None,
) -> tuple[pa.RecordBatch, pa.RecordBatch]:
    """(scored, rejects) for ``batch``, whose first row is data row ``first_row`` (1-based):
    an Arrow batch (CSV, Parquet) or a list of JSON values (JSON lines). ``layout`` defaults to
    the Arrow batch's own."""
    layout = layout or Layout.of(batch.schema.names)  # type: ignore[union-attr]
    validator = model.predictor.validator
    if isinstance(batch, list):
        checked = validator.check_json(batch)
    else:
        columns = {field: batch.column(index) for field, index in layout.index.items()}
        checked = validator.check(columns, batch.num_rows)
    valid = np.flatnonzero(checked.valid)
    probabilities = model.predictor.scorer.probabilities(checked)[valid]
    if layout.id_column:  # a file's ids are already one Arrow array; JSON lines' a list
        ids = checked.ids
        key = ids if isinstance(ids, pa.Array) else pa.array(ids, pa.string())
        key = key if len(valid) == len(key) else key.take(to_arrow(valid))
    else:
        key = to_arrow(valid + first_row)
    scored = [key, to_arrow(probabilities), to_arrow(probabilities >= model.threshold)]
    return (
        pa.RecordBatch.from_arrays(scored, schema=layout.output_schema()),
        _rejects(checked.problems, first_row, layout.rejects_schema()),
    )


def _rejects(problems: list[Problem], first_row: int, schema: pa.Schema) -> pa.RecordBatch:
    if not problems:  # not pa.array([]): it imports pandas (churn.columns.to_arrow)
        return pa.RecordBatch.from_arrays([pa.nulls(0, f.type) for f in schema], schema=schema)
    lines = [(p.row + first_row, p.customer_id, p.field, p.message) for p in problems]
    columns = [pa.array(c, f.type) for c, f in zip(zip(*lines, strict=True), schema, strict=True)]
    return pa.RecordBatch.from_arrays(columns, schema=schema)
