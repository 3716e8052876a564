"""How customer CSV text becomes Arrow columns, the same for both engines.

The local engine streams a file through Arrow's CSV reader; the Spark engine reads lines with
Spark's text reader and its tasks parse each batch of lines here, with the same options: only
the columns scoring needs, every field as text (the validator reads text as /predict does), an
empty field as "" (never null), quotes as in RFC 4180, empty lines skipped. Spark's own CSV
reader, with ~20 text columns handed to Python, made a Spark CSV job 2.2× slower end to end
(docs/performance.md).
"""

from __future__ import annotations

import csv
import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from churn.batch.columns import InputFileError, wanted

BOM = "\ufeff"


def convert_options(header: list[str]) -> pa_csv.ConvertOptions:
    columns = wanted(header)
    return pa_csv.ConvertOptions(
        column_types=dict.fromkeys(columns, pa.string()),
        include_columns=columns,
        strings_can_be_null=False,  # an empty field is "", as in a /predict body
    )


def header_names(line: str) -> list[str]:
    """A CSV header line's column names (a UTF-8 byte order mark dropped)."""
    return next(csv.reader([line.removeprefix(BOM)]), [])


def parse_lines(lines: pa.Array, header: list[str], source: str) -> pa.RecordBatch:
    """Data lines of a CSV file (without line ends) as one batch of the wanted columns.

    Raises ``InputFileError`` naming ``source`` when a line does not parse (e.g. it has more
    or fewer fields than the header), as the local engine does.
    """
    end, nothing = pa.scalar("\n", lines.type), pa.scalar("", lines.type)
    joined = pc.binary_join_element_wise(lines, end, nothing)  # each line with its line end back
    width = np.int64 if pa.types.is_large_string(joined.type) else np.int32
    size = int(np.frombuffer(joined.buffers()[1], width)[len(joined)]) if len(joined) else 0
    empty = pa.schema([(name, pa.string()) for name in wanted(header)])
    if not size:
        return pa.RecordBatch.from_pylist([], empty)
    read = pa_csv.ReadOptions(column_names=header, use_threads=False, block_size=size + 1)
    try:
        table = pa_csv.read_csv(
            pa.BufferReader(joined.buffers()[2].slice(0, size)),
            read_options=read,
            convert_options=convert_options(header),
        )
    except pa.ArrowInvalid as error:  # its row number counts from this batch: misleading
        raise InputFileError(f"{source}: {re.sub(r'Row #[0-9]+: ', '', str(error))}") from None
    batches = table.combine_chunks().to_batches()
    return batches[0] if batches else pa.RecordBatch.from_pylist([], empty)
