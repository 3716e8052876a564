"""Reading customer files as a stream of Arrow batches, and writing results atomically.

Formats go by extension: ``.csv``, ``.parquet`` or a directory of Parquet parts (what Spark
writes), ``.jsonl``. Only the columns scoring needs are read, CSV fields as text (the validator
reads text as /predict does) and Parquet's typed, in batches, so memory stays flat whatever the
file size. A JSON line is a customer as /predict takes one, so its values keep their JSON types
(a column may mix numbers and blank text, as the raw Telco data does).
Outputs go to a hidden temporary file beside the target and are renamed over it only when the
run succeeds: an interrupted run leaves no partial output under the target's name.
"""

from __future__ import annotations

import csv
import os
import tempfile
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from churn.batch.columns import InputFileError, wanted

BATCH_ROWS = 65_536  # rows per batch: large enough to amortize, small enough for flat memory
ROW_BYTES = 256  # about one Telco row of CSV or JSON lines, to size the text readers' blocks
# Arrow's CSV reader holds many times its block size while parsing one block: blocks this small
# keep the peak low at a cost of a few percent in speed (docs/batch-benchmarks.md).
TEXT_BLOCK_BYTES = 2 << 20
FORMATS = (".csv", ".parquet", ".jsonl")


def file_format(path: Path) -> str:
    if path.is_dir():
        return ".parquet"
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise InputFileError(
            f"{path}: unknown format {suffix or '(none)'}; use {', '.join(FORMATS)}"
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
    kind = file_format(path)
    try:
        if kind == ".csv":
            reader = _csv_reader(path, _block_bytes(batch_rows))
            return Source(reader.schema, _guarded(reader, path), None)
        if kind == ".jsonl":
            return Source(_json_keys(path), _json_lines(path, batch_rows), None)
        parts = _parquet_parts(path)
        files = [pq.ParquetFile(part) for part in parts]
        rows = sum(parquet.metadata.num_rows for parquet in files)
        return Source(files[0].schema_arrow, _parquet_batches(parts, batch_rows), rows)
    except (pa.ArrowInvalid, OSError) as error:
        raise InputFileError(f"{path} is not a readable {kind} file: {error}") from None


def _block_bytes(batch_rows: int) -> int:
    return min(batch_rows * ROW_BYTES, TEXT_BLOCK_BYTES)


def _csv_reader(path: Path, block_bytes: int) -> pa_csv.CSVStreamingReader:
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            header = next(csv.reader(handle), None)
    except (UnicodeDecodeError, csv.Error) as error:
        raise InputFileError(f"{path} is not a UTF-8 CSV file ({error})") from None
    if not header:
        raise InputFileError(f"{path} is empty; expected a header line, then customers")
    read = pa_csv.ReadOptions(block_size=block_bytes)
    columns = wanted(header)
    convert = pa_csv.ConvertOptions(
        column_types=dict.fromkeys(columns, pa.string()),
        include_columns=columns,
        strings_can_be_null=False,  # an empty field is "", as in a /predict body
    )
    return pa_csv.open_csv(path, read_options=read, convert_options=convert)


def _json_keys(path: Path) -> pa.Schema:
    """The keys of the first JSON object in the file, as the columns the layout matches."""
    with open(path, "rb") as lines:
        for line in lines:
            try:
                first = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
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
        text = [name for name in names if pa.types.is_string(schema.field(name).type)]
        # Text read as dictionaries: each distinct value once per batch, as the validator wants.
        # Column chunks read page by page rather than whole: memory follows the batch size,
        # not the row-group size the writer chose (Spark writes row groups of 128 MB).
        reader = pq.ParquetFile(part, read_dictionary=text, pre_buffer=False, buffer_size=1 << 20)
        yield from _guarded(reader.iter_batches(batch_rows, columns=names), part)


def _guarded(batches, path: Path) -> Iterator[pa.RecordBatch]:
    """Batches, with a reading error mid-file turned into ``InputFileError`` naming the file."""
    try:
        yield from batches
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as error:
        raise InputFileError(f"{path}: {error}") from None


class AtomicWriter:
    """Batches written to a hidden temporary file, renamed to ``path`` by ``commit``.

    ``discard`` (or an exception, a Ctrl-C, a SIGTERM turned into SystemExit) removes the
    temporary file, so ``path`` holds either the previous complete file or the new one.
    """

    def __init__(self, path: Path, schema: pa.Schema):
        self.path, self.schema = path, schema
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
        os.close(fd)
        os.chmod(name, 0o666 & ~_umask())  # mkstemp makes it private; the result is not
        self.temporary = Path(name)
        self._sink = pa.OSFile(name, "wb")
        self._writer = _format_writer(file_format_for_output(path), self._sink, schema)

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


def file_format_for_output(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise InputFileError(f"{path}: unknown output format; use {', '.join(FORMATS)}")
    return suffix


class _JsonLinesWriter:
    def __init__(self, sink: pa.NativeFile):
        self._sink = sink

    def write(self, batch: pa.RecordBatch) -> None:
        lines = b"".join(
            orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE) for row in batch.to_pylist()
        )
        self._sink.write(lines)

    def close(self) -> None:
        pass


def _format_writer(kind: str, sink: pa.NativeFile, schema: pa.Schema):
    if kind == ".csv":
        return pa_csv.CSVWriter(sink, schema)
    if kind == ".parquet":
        return pq.ParquetWriter(sink, schema)
    return _JsonLinesWriter(sink)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
