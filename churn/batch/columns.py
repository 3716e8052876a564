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
from churn.columns import KNOWN_KEYS, Problem, to_arrow
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
    if problems:
        lines = [(p.row + first_row, p.customer_id, p.field, p.message) for p in problems]
        columns = [
            pa.array(column, f.type)
            for column, f in zip(zip(*lines, strict=True), schema, strict=True)
        ]
    else:  # not pa.array([]): it imports pandas (churn.columns.to_arrow)
        columns = [pa.nulls(0, field.type) for field in schema]
    return pa.RecordBatch.from_arrays(columns, schema=schema)
