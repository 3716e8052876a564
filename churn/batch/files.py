"""The local engine's files: customer files read as a stream of batches, results written atomically.

Formats go by extension: ``.csv``, ``.parquet`` or a directory of Parquet parts (what Spark
writes), ``.jsonl``. Only the columns scoring needs are read, CSV fields as text (the validator
reads text as /predict does) and Parquet's typed, in batches, so memory stays flat whatever the
file size. A JSON line is a customer as /predict takes one, so its values keep their JSON types
(a column may mix numbers and blank text, as the raw Telco data does).
"""

from __future__ import annotations

import csv
import os
import uuid
from collections.abc import Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from functools import partial
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
    """The format of ``path`` by its extension (``.csv``); text paths may be URIs (Spark's)."""
    suffix = PurePath(str(path).rstrip("/")).suffix.lower()
    if suffix not in formats:
        raise InputFileError(
            f"{path}: unknown format {suffix or '(none)'}; use {', '.join(formats)}"
        )
    return suffix


@dataclass(frozen=True)
class Source:
    """An input file opened for streaming: its columns, its batches (lazy), its row count."""

    schema: pa.Schema
    batches: Iterator[pa.RecordBatch | list[Any]]  # a list: JSON values, one per line
    rows: int | None  # known up front for Parquet, from its metadata


def open_source(path: Path, batch_rows: int = BATCH_ROWS) -> Source:
    """Open ``path`` for reading in batches; ``InputFileError`` says what is wrong with it."""
    if not path.exists():
        raise InputFileError(f"{path} does not exist")
    kind = ".parquet" if path.is_dir() else file_format(path)
    try:
        if kind == ".csv":
            reader = _csv_reader(path, min(batch_rows * ROW_BYTES, TEXT_BLOCK_BYTES))
            return Source(reader.schema, _guarded(reader, path), None)
        if kind == ".jsonl":
            return Source(_json_keys(path), _json_lines(path, batch_rows), None)
        parts = _parquet_parts(path)
        files = [pq.ParquetFile(part) for part in parts]
        rows = sum(file.metadata.num_rows for file in files)
        schema = files[0].schema_arrow  # as the batches hold it: only the wanted columns
        columns = pa.schema([schema.field(name) for name in wanted(schema.names)])
        return Source(columns, _parquet_batches(parts, batch_rows), rows)
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


def _json_keys(path: Path) -> pa.Schema:
    """The keys of the first JSON object in the file, as the columns the layout matches."""
    with open(path, "rb") as lines:
        for line in lines:
            with suppress(orjson.JSONDecodeError):
                first = orjson.loads(line)
                if isinstance(first, dict):
                    return pa.schema([(str(key), pa.string()) for key in first])
    raise InputFileError(f"{path} holds no JSON object; expected one customer per line")


def _json_lines(path: Path, batch_rows: int) -> Iterator[list[Any]]:
    """The file's non-blank lines parsed, ``batch_rows`` at a time; a line that is not JSON
    stays as its text, which the validator refuses as not a customer object."""
    batch: list[Any] = []
    with open(path, "rb") as lines:
        for line in lines:
            if not line.strip():
                continue
            try:
                batch.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                batch.append(line.decode("utf-8", "replace"))
            if len(batch) == batch_rows:
                yield batch
                batch = []
    if batch:
        yield batch


def _parquet_parts(path: Path) -> list[Path]:
    if not path.is_dir():
        return [path]
    # Spark's layout: part files in name order; _SUCCESS, .crc and other hidden files skipped.
    parts = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith((".", "_")))
    if not parts:
        raise InputFileError(f"{path} is a directory without Parquet parts")
    return parts


def _parquet_batches(parts: list[Path], batch_rows: int) -> Iterator[pa.RecordBatch]:
    for part in parts:
        schema = pq.ParquetFile(part).schema_arrow
        names = wanted(schema.names)
        # Categories read as dictionaries: each distinct value once per batch, as the validator
        # wants; ids and numbers as text stay plain (nearly all distinct: a dictionary of them
        # cost more than the whole rest of the read). No threads: they cost CPU, not time saved.
        # Column chunks read page by page rather than whole: memory follows the batch size,
        # not the row-group size the writer chose (Spark writes row groups of 128 MB).
        categories = [
            name
            for name in names
            if normalize_token(name) in CATEGORICAL_FIELDS
            and pa.types.is_string(schema.field(name).type)
        ]
        reader = pq.ParquetFile(
            part, read_dictionary=categories, pre_buffer=False, buffer_size=1 << 20
        )
        yield from _guarded(reader.iter_batches(batch_rows, columns=names, use_threads=False), part)


def _guarded(batches: Iterable[pa.RecordBatch], path: Path) -> Iterator[pa.RecordBatch]:
    """Batches, with a reading error mid-file turned into ``InputFileError`` naming the file."""
    try:
        yield from batches
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as error:
        raise InputFileError(f"{path}: {error}") from None


class _JsonLinesWriter:
    """Arrow's writer interface for JSON lines: a row per line."""

    def __init__(self, sink: pa.NativeFile, schema: pa.Schema):
        self.sink = sink

    def write(self, batch: pa.RecordBatch) -> None:
        rows = batch.to_pylist()
        self.sink.write(
            b"".join(orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE) for row in rows)
        )

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
    """Batches written to a hidden temporary file beside ``path``, renamed to it by ``commit``.

    ``discard`` (after an error, a Ctrl-C, a SIGTERM; a no-op after ``commit``) removes the
    temporary file, so ``path`` holds either the previous complete file or the new one.
    """

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
        self._writer.close()
        self._sink.flush()
        os.fsync(self._sink.fileno())
        self._sink.close()
        os.replace(self.temporary, self.path)

    def discard(self) -> None:
        with suppress(Exception):
            self._writer.close()
        with suppress(Exception):
            self._sink.close()
        self.temporary.unlink(missing_ok=True)
