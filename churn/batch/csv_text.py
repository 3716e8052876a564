"""How customer CSV text becomes Arrow columns, the same for both engines.

The local engine streams a file through Arrow's CSV reader; the Spark engine reads lines with
Spark's text reader and parses each batch of lines here, with the same options: only the
columns scoring needs, categories as dictionaries (each distinct value once), empty fields as
"" (never null), quotes as in RFC 4180, empty lines skipped. Nothing here needs more than
pyarrow, so Spark's executors can import it.
"""

from __future__ import annotations

import csv
import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from churn.batch.columns import InputFileError
from churn.features import CATEGORICAL_FIELDS, FEATURE_FIELDS, FLAG_FIELDS, normalize_token
from churn.schema import ID_KEYS

WANTED = frozenset((*FEATURE_FIELDS, *ID_KEYS))
CODED = frozenset((*CATEGORICAL_FIELDS, *FLAG_FIELDS))  # few distinct values: read as dictionary
BOM = "\ufeff"


def wanted(names: list[str]) -> list[str]:
    """The columns scoring needs, in any spelling; unknown columns are ignored."""
    return [name for name in names if normalize_token(name) in WANTED]


def column_types(header: list[str]) -> dict[str, pa.DataType]:
    """The wanted columns of a file with this header, and the Arrow type each is read as."""
    dictionary = pa.dictionary(pa.int32(), pa.string())
    return {n: dictionary if normalize_token(n) in CODED else pa.string() for n in wanted(header)}


def convert_options(header: list[str]) -> pa_csv.ConvertOptions:
    types = column_types(header)
    return pa_csv.ConvertOptions(
        column_types=types, include_columns=list(types), strings_can_be_null=False
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
    if not size:
        return _empty(header)
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
    return batches[0] if batches else _empty(header)


def _empty(header: list[str]) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist([], schema=pa.schema(column_types(header).items()))
