"""The local engine's files, by extension (``.csv``, ``.parquet`` or a directory of its parts,
``.jsonl``): read in batches of the columns scoring needs, so memory stays flat; written atomically.
A JSON line is a customer as /predict takes one: its values keep their JSON types.
"""

from __future__ import annotations

import csv
import os
import uuid
from collections.abc import Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from functools import partial
from itertools import islice
from pathlib import Path, PurePath
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from churn.batch.columns import InputFileError, wanted
from churn.batch.csv_text import convert_options
from churn.features import CATEGORICAL_FIELDS, normalize_token

BATCH_ROWS = 65_536  # rows per batch: large enough to amortize, small enough for flat memory
ROW_BYTES = 256  # about one Telco row of CSV or JSON lines, to size the CSV reader's blocks
# Arrow's CSV reader holds many times its block size while parsing one block: blocks this small
# keep the peak low at a cost of a few percent in speed (docs/batch-benchmarks.md).
TEXT_BLOCK_BYTES = 2 << 20
FORMATS = (".csv", ".parquet", ".jsonl")


def file_format(path: str | PurePath, formats: tuple[str, ...] = FORMATS) -> str:
    suffix = PurePath(str(path).rstrip("/")).suffix.lower()
    if suffix not in formats:
        raise InputFileError(
            f"{path}: unknown format {suffix or '(none)'}; use {', '.join(formats)}"
        )
    return suffix


@dataclass(frozen=True)
class Source:
    names: list[str]  # of the columns its batches hold
    batches: Iterator[pa.RecordBatch | list[Any]]  # a list: JSON values, one per line
    rows: int | None  # Parquet's, from its metadata


def open_source(path: Path, batch_rows: int = BATCH_ROWS) -> Source:
    if not path.exists():
        raise InputFileError(f"{path} does not exist")
    kind = ".parquet" if path.is_dir() else file_format(path)
    try:
        if kind == ".csv":
            reader = _csv_reader(path, min(batch_rows * ROW_BYTES, TEXT_BLOCK_BYTES))
            return Source(reader.schema.names, _guarded(reader, path), None)
        if kind == ".jsonl":
            return Source(_json_keys(path), _json_lines(path, batch_rows), None)
        # A directory as Spark writes it: parts in name order; _SUCCESS, .crc files skipped.
        parts = [path]
        if path.is_dir():
            parts = sorted(p for p in path.iterdir() if p.is_file() and p.name[0] not in "._")
        if not parts:
            raise InputFileError(f"{path} is a directory without Parquet parts")
        schema = pq.read_schema(parts[0])
        columns = pa.schema([schema.field(name) for name in wanted(schema.names)])
        rows = sum(pq.read_metadata(part).num_rows for part in parts)
        return Source(columns.names, _parquet_batches(parts, columns, batch_rows), rows)
    except (pa.ArrowInvalid, OSError) as error:
        raise InputFileError(f"{path} is not a readable {kind} file: {error}") from None


def _csv_reader(path: Path, block_bytes: int) -> pa_csv.CSVStreamingReader:
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            header = next(csv.reader(handle), None)
    except (UnicodeDecodeError, csv.Error) as error:
        raise InputFileError(f"{path} is not a UTF-8 CSV file ({error})") from None
    if not header:
        raise InputFileError(f"{path} is empty; expected a header line, then customers")
    read = pa_csv.ReadOptions(block_size=block_bytes)
    return pa_csv.open_csv(path, read_options=read, convert_options=convert_options(header))


def _json_keys(path: Path) -> list[str]:
    with open(path, "rb") as lines:
        first = next((value for value in map(_json, lines) if isinstance(value, dict)), None)
    if first is None:
        raise InputFileError(f"{path} holds no JSON object; expected one customer per line")
    return list(first)


def _json_lines(path: Path, batch_rows: int) -> Iterator[list[Any]]:
    with open(path, "rb") as lines:
        values = (_json(line) for line in lines if line.strip())
        while batch := list(islice(values, batch_rows)):
            yield batch


def _json(line: bytes) -> Any:
    """A line's JSON value, or its text, which the validator refuses as not a customer."""
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        return line.decode("utf-8", "replace")


def _parquet_batches(
    parts: list[Path], columns: pa.Schema, batch_rows: int
) -> Iterator[pa.RecordBatch]:
    # Categories as dictionaries, as the validator wants them; ids and numbers, nearly all
    # distinct, plain. No threads: they cost CPU, not time. Not pre-buffered: memory follows
    # the batch size, not the writer's row groups (Spark's are 128 MB).
    categories = [
        field.name
        for field in columns
        if normalize_token(field.name) in CATEGORICAL_FIELDS and pa.types.is_string(field.type)
    ]
    for part in parts:
        file = pq.ParquetFile(
            part, read_dictionary=categories, pre_buffer=False, buffer_size=1 << 20
        )
        yield from _guarded(
            file.iter_batches(batch_rows, columns=columns.names, use_threads=False), part
        )


def _guarded(batches: Iterable[pa.RecordBatch], path: Path) -> Iterator[pa.RecordBatch]:
    try:
        yield from batches
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as error:
        raise InputFileError(f"{path}: {error}") from None


class _JsonLinesWriter:  # Arrow's writer interface
    def __init__(self, sink: pa.NativeFile, schema: pa.Schema):
        self.sink = sink

    def write(self, batch: pa.RecordBatch) -> None:
        lines = (orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE) for row in batch.to_pylist())
        self.sink.write(b"".join(lines))

    def close(self) -> None:
        pass


# Parquet without dictionaries: ids and probabilities are nearly all distinct, and trying
# dictionaries first cost 3x the writing time for a larger file.
WRITERS = {
    ".csv": pa_csv.CSVWriter,
    ".parquet": partial(pq.ParquetWriter, use_dictionary=False),
    ".jsonl": _JsonLinesWriter,
}


class AtomicWriter:
    """Batches written to a hidden file beside ``path``, renamed to it by ``commit`` or removed
    by ``discard`` (a no-op after ``commit``): ``path`` is the previous file or the new one."""

    def __init__(self, path: Path, schema: pa.Schema):
        make_writer = WRITERS[file_format(path)]
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.partial")
        self._sink = pa.OSFile(str(self.temporary), "wb")  # made as open() makes files: umask
        self._writer = make_writer(self._sink, schema)

    def write(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows:
            self._writer.write(batch)

    def commit(self) -> None:
        self._writer.close()  # the sink, an OSFile, has no buffer of its own to flush
        os.fsync(self._sink.fileno())
        self._sink.close()
        os.replace(self.temporary, self.path)

    def discard(self) -> None:
        for close in (self._writer.close, self._sink.close):
            with suppress(Exception):
                close()
        self.temporary.unlink(missing_ok=True)
