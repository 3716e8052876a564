"""What a Spark executor runs: the local engine's Arrow batch function over one partition.

Executors need numpy, pyarrow, pydantic and this package: no scikit-learn, and no pandas code
(pyspark itself only imports pandas). The model travels inside the task as a ``BatchModel``, the
artifact's bytes and metadata; every task unpickles its own copy, which checks the bytes'
SHA-256 against the version the driver loaded before a row is scored.

A task cannot know the global row number of its first row (Spark splits a file into byte
ranges and reads them in parallel), so it numbers rows within each split (file, byte offset)
and reports how many rows each split had; the driver turns those counts into offsets and the
split-local row numbers into the input's 1-based data rows (churn/batch/spark.py).

A task yields one stream with three kinds of rows, told apart by ``KIND``: scored customers,
rejection lines and per-split row counts. One pass over the input thus gives both outputs and
the counts, instead of parsing the input once per output.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import pairwise

import numpy as np
import pyarrow as pa

from churn.batch.columns import Layout, score_record_batch
from churn.batch.model import BatchModel

# Location columns the driver adds to every input row (from Spark's hidden _metadata column).
FILE = "_churn_file"
BLOCK = "_churn_block"
# Columns of the combined stream besides the scored and rejects columns.
KIND = "_churn_kind"
SPLIT_ROWS = "_churn_split_rows"
SPLIT_SCORED = "_churn_split_scored"
SCORED, REJECT, SPLIT = 0, 1, 2
LOCATION_FIELDS = (
    pa.field(FILE, pa.string()),
    pa.field(BLOCK, pa.int64()),
    pa.field(SPLIT_ROWS, pa.int64()),
    pa.field(SPLIT_SCORED, pa.int64()),
)
SplitKey = tuple[str, int]


def combined_schema(scored: pa.Schema, rejects: pa.Schema) -> pa.Schema:
    """The one schema a task yields: kind, scored columns, reject columns, split location."""
    fields = [pa.field(KIND, pa.int8(), nullable=False)]
    fields += [field.with_nullable(True) for field in scored]
    fields += [field.with_nullable(True) for field in rejects if field.name not in scored.names]
    return pa.schema(fields + list(LOCATION_FIELDS))


def splits_of(batch: pa.RecordBatch) -> Iterator[tuple[SplitKey, pa.RecordBatch]]:
    """Runs of consecutive rows from one split (file, byte offset), with that split's key."""
    files = batch.column(FILE).dictionary_encode()
    codes = files.indices.to_numpy(zero_copy_only=False)
    blocks = batch.column(BLOCK).to_numpy(zero_copy_only=False)
    changes = np.flatnonzero((codes[1:] != codes[:-1]) | (blocks[1:] != blocks[:-1])) + 1
    bounds = [0, *changes.tolist(), batch.num_rows]
    for start, stop in pairwise(bounds):
        key = (files.dictionary[codes[start]].as_py(), int(blocks[start]))
        yield key, batch.slice(start, stop - start)


class PartitionScorer:
    """Scores one partition's batches into the combined stream (see the module docstring).

    ``columns``: the input's columns that scoring reads.
    ``locate_scored``: scored rows carry their split too, when the output identifies customers
    by row number (an input without customer ids) and the driver must renumber them.
    """

    def __init__(
        self,
        model: BatchModel,
        columns: list[str],
        schema: pa.Schema,
        locate_scored: bool,
    ):
        self.model, self.columns, self.schema = model, columns, schema
        self.locate_scored = locate_scored

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        rows: dict[SplitKey, int] = {}
        scored_rows: dict[SplitKey, int] = {}
        for batch in batches:
            for key, piece in splits_of(batch):
                done = rows.get(key, 0)
                data = piece.select(self.columns)
                layout = Layout.of(data.schema)
                scored, rejects = score_record_batch(data, self.model, done + 1, layout)
                rows[key] = done + data.num_rows
                scored_rows[key] = scored_rows.get(key, 0) + scored.num_rows
                yield self._combined(scored, SCORED, key if self.locate_scored else None)
                if rejects.num_rows:
                    yield self._combined(rejects, REJECT, key)
        yield self._split_counts(rows, scored_rows)

    def _combined(self, part: pa.RecordBatch, kind: int, key: SplitKey | None) -> pa.RecordBatch:
        n = part.num_rows
        columns = {KIND: pa.array(np.full(n, kind, dtype=np.int8))}
        columns.update(zip(part.schema.names, part.columns, strict=True))
        if key is not None:
            columns[FILE] = pa.array([key[0]] * n, pa.string())
            columns[BLOCK] = pa.array(np.full(n, key[1], dtype=np.int64))
        return conform(columns, n, self.schema)

    def _split_counts(
        self, rows: dict[SplitKey, int], scored: dict[SplitKey, int]
    ) -> pa.RecordBatch:
        keys = list(rows)
        columns = {
            KIND: pa.array(np.full(len(keys), SPLIT, dtype=np.int8)),
            FILE: pa.array([file for file, _ in keys], pa.string()),
            BLOCK: pa.array([block for _, block in keys], pa.int64()),
            SPLIT_ROWS: pa.array([rows[key] for key in keys], pa.int64()),
            SPLIT_SCORED: pa.array([scored[key] for key in keys], pa.int64()),
        }
        return conform(columns, len(keys), self.schema)


def conform(columns: dict[str, pa.Array], n: int, schema: pa.Schema) -> pa.RecordBatch:
    """A batch of exactly ``schema``: missing columns as nulls, every column cast to its type.

    The cast keeps the output Spark-version proof: Spark 3.5 reads ``string`` while Spark 4 can
    be set to expect ``large_string``; the driver declares which in ``schema``.
    """
    arrays = [
        columns[field.name].cast(field.type) if field.name in columns else pa.nulls(n, field.type)
        for field in schema
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)
