"""CSV text to Arrow columns with the same options in both engines: the local one streams a file
through Arrow's CSV reader; Spark's tasks parse here lines from Spark's text reader (its own CSV
reader made a Spark job 2.2x slower end to end, docs/performance.md).
"""

from __future__ import annotations

import csv
import re

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from churn.batch.columns import InputFileError, wanted


def convert_options(header: list[str]) -> pa_csv.ConvertOptions:
    columns = wanted(header)
    return pa_csv.ConvertOptions(
        column_types=dict.fromkeys(columns, pa.string()),
        include_columns=columns,
        strings_can_be_null=False,  # an empty field is "", as in a /predict body
    )


def header_names(line: str) -> list[str]:
    return next(csv.reader([line.removeprefix("\ufeff")]), [])  # without a byte order mark


def parse_lines(lines: pa.Array, header: list[str], source: str) -> pa.RecordBatch:
    """Data lines of a CSV file (without line ends) as one batch of the wanted columns;
    ``InputFileError`` naming ``source`` when a line does not parse."""
    end, nothing = pa.scalar("\n", lines.type), pa.scalar("", lines.type)
    joined = pc.binary_join_element_wise(lines, end, nothing)  # each line with its line end back
    size = pc.sum(pc.binary_length(joined)).as_py()
    empty = pa.schema([(name, pa.string()) for name in wanted(header)])
    if not size:
        return pa.RecordBatch.from_pylist([], empty)
    text = pa.BufferReader(joined.buffers()[2].slice(0, size))
    read = pa_csv.ReadOptions(column_names=header, use_threads=False, block_size=size + 1)
    try:
        table = pa_csv.read_csv(text, read_options=read, convert_options=convert_options(header))
    except pa.ArrowInvalid as error:  # its row number counts from this batch: misleading
        raise InputFileError(f"{source}: {re.sub(r'Row #[0-9]+: ', '', str(error))}") from None
    batches = table.combine_chunks().to_batches()
    return batches[0] if batches else pa.RecordBatch.from_pylist([], empty)
