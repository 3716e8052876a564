"""Scoring one batch of a file: the service's validator and scorer, then scores and rejects.

``score_record_batch`` is the batch function both engines run (the local CLI and Spark's
``mapInArrow``). Every row ends up in exactly one of its two outputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from churn.batch.model import BatchModel
from churn.columns import KNOWN_KEYS
from churn.features import FEATURE_FIELDS, normalize_token
from churn.schema import ID_KEYS

PROBABILITY, DECISION, ROW = "churn_probability", "churn", "row"
DEFAULT_ID_COLUMN = "customer_id"  # the rejects' id column when the input has none


class InputFileError(Exception):
    """The input file cannot be scored at all (missing or duplicated columns, unreadable)."""


def wanted(names: list[str]) -> list[str]:
    """The columns scoring needs, in any spelling; unknown columns are ignored."""
    return [name for name in names if normalize_token(name) in KNOWN_KEYS]


@dataclass(frozen=True)
class Layout:
    """Where each field is in a batch: column index by course-spelling field name."""

    index: Mapping[str, int]
    id_column: str | None  # the input's own name for the customer id, if it has one

    @classmethod
    def of(cls, schema: pa.Schema) -> Layout:
        index: dict[str, int] = {}
        for position, name in enumerate(schema.names):
            field = normalize_token(name)
            if field in index:
                raise InputFileError(
                    f"columns {schema.names[index[field]]!r} and {name!r} are both {field}"
                )
            if field in KNOWN_KEYS:
                index[field] = position
        missing = [field for field in FEATURE_FIELDS if field not in index]
        if missing:
            raise InputFileError(f"missing column(s): {', '.join(missing)}")
        ids = [schema.names[index[key]] for key in ID_KEYS if key in index]  # in precedence
        return cls(index, ids[0] if ids else None)

    def output_schema(self) -> pa.Schema:
        key = pa.field(self.id_column, pa.string()) if self.id_column else pa.field(ROW, pa.int64())
        return pa.schema([key, pa.field(PROBABILITY, pa.float64()), pa.field(DECISION, pa.bool_())])

    def rejects_schema(self) -> pa.Schema:
        """One line per problem: the 1-based data row, the customer id, the field, the message."""
        return pa.schema(
            [
                pa.field(ROW, pa.int64()),
                pa.field(self.id_column or DEFAULT_ID_COLUMN, pa.string()),
                pa.field("field", pa.string()),
                pa.field("message", pa.string()),
            ]
        )


def score_record_batch(
    batch: pa.RecordBatch | list[Any],
    model: BatchModel,
    first_row: int,
    layout: Layout | None = None,
) -> tuple[pa.RecordBatch, pa.RecordBatch]:
    """(scored, rejects) for ``batch``, whose first row is data row ``first_row`` (1-based).

    ``batch`` is an Arrow batch (CSV, Parquet) or a list of JSON values (JSON lines).
    ``layout``: where the fields are (default: from an Arrow batch's own columns).
    """
    layout = layout or Layout.of(batch.schema)  # type: ignore[union-attr]
    validator = model.predictor.validator
    if isinstance(batch, list):
        checked = validator.check_json(batch)
    else:
        columns = {field: batch.column(index) for field, index in layout.index.items()}
        checked = validator.check(columns, batch.num_rows)
    valid = np.flatnonzero(checked.valid)
    probabilities = model.predictor.probabilities(checked)[valid]
    if layout.id_column:
        key = pa.array(checked.ids, pa.string())
        key = key if len(valid) == len(checked.ids) else key.take(valid)
    else:
        key = pa.array(valid + first_row, pa.int64())
    scored = [
        key,
        pa.array(probabilities, pa.float64()),
        pa.array(probabilities >= model.threshold),
    ]
    problems = checked.problems
    rejects = [
        pa.array([problem.row + first_row for problem in problems], pa.int64()),
        pa.array([problem.customer_id for problem in problems], pa.string()),
        pa.array([problem.field for problem in problems], pa.string()),
        pa.array([problem.message for problem in problems], pa.string()),
    ]
    return (
        pa.RecordBatch.from_arrays(scored, schema=layout.output_schema()),
        pa.RecordBatch.from_arrays(rejects, schema=layout.rejects_schema()),
    )
