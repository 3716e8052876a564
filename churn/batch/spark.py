"""``--engine spark``: the executors run ``score_record_batch`` through ``mapInArrow`` on
Parquet columns or on CSV lines they parse as the local engine does (csv_text.py). Local mode
when no master is configured, else the cluster spark-submit names (YARN, EMR Serverless); paths
may be URIs (s3://).

Row numbers: a task numbers rows within each split (file, byte offset) of the input and counts
them; the driver turns the counts into offsets. A task yields one stream of three kinds of rows
(``KIND``): scored customers, rejects and per-split counts, so one pass gives all three.
"""

from __future__ import annotations

import atexit
import json
import re
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator
from functools import partial
from itertools import accumulate, pairwise
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pyarrow as pa
from pyspark import SparkConf, StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.functions import broadcast, col, monotonically_increasing_id
from pyspark.sql.pandas.types import from_arrow_schema

from churn import artifact
from churn.artifact import ModelFileError, metadata_path
from churn.batch.columns import ROW, BatchModel, InputFileError, Layout, score_record_batch, wanted
from churn.batch.csv_text import header_names, parse_lines
from churn.batch.files import BATCH_ROWS, file_format

FORMATS = (".csv", ".parquet")
# Columns the driver adds to every input row (from Spark's hidden _metadata column): its split.
FILE, BLOCK = "_churn_file", "_churn_block"
# Columns of the tasks' stream besides the scored and rejects columns, and its kinds of rows.
KIND, SPLIT_ROWS, SPLIT_SCORED = "_churn_kind", "_churn_split_rows", "_churn_split_scored"
SCORED, REJECT, SPLIT = 0, 1, 2
OFFSET = "_churn_offset"  # of the driver's table of rows before each split
LINE = "value"  # the one column of Spark's text reader: a line without its line end
SplitKey = tuple[str, int]
_SHIPPED_TO: set[str] = set()  # Spark applications that have this package already


def session() -> SparkSession:
    """The active session, or a local one on all cores, on loopback, with this interpreter."""
    builder = SparkSession.builder.appName("churn-score")
    if not SparkConf().contains("spark.master"):
        builder = (
            builder.master("local[*]")
            .config("spark.pyspark.python", sys.executable)
            .config("spark.driver.bindAddress", "127.0.0.1")
            .config("spark.driver.host", "127.0.0.1")
        )
    return builder.getOrCreate()


def score(
    spark: SparkSession,
    source: str,
    output: str,
    rejects: str,
    model_path: str,
    threshold: float | None = None,
) -> tuple[dict[str, int], BatchModel]:
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(BATCH_ROWS))
    file_format(output, FORMATS)
    file_format(rejects, FORMATS)
    ship_package(spark)
    model = load_model(spark, model_path, threshold)
    frame, layout, csv_header = read_input(spark, source)
    scored_schema, rejects_schema = layout.output_schema(), layout.rejects_schema()
    schema = stream_schema(spark, scored_schema, rejects_schema)
    numbered = layout.id_column is None  # scored rows are then named by their row number
    task = partial(score_partition, model, schema, numbered, csv_header)
    stream = frame.mapInArrow(task, from_arrow_schema(schema)).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        counts = stream.where(col(KIND) == SPLIT).select(FILE, BLOCK, SPLIT_ROWS, SPLIT_SCORED)
        splits = sorted(_collect(counts, source))  # files by path, then by byte offset
        before = accumulate((split[2] for split in splits), initial=0)  # rows before each split
        offsets = spark.createDataFrame(
            [(file, block, rows) for (file, block, *_), rows in zip(splits, before, strict=False)],
            f"{FILE} string, {BLOCK} long, {OFFSET} long",
        )
        scored = stream.where(col(KIND) == SCORED)
        if numbered:
            scored = renumbered(scored, offsets)
        write_atomically(spark, scored.select(scored_schema.names), output)
        problems = renumbered(stream.where(col(KIND) == REJECT), offsets)
        # Within a row, problems keep the order the batch function gave them.
        problems = problems.withColumn("_churn_order", monotonically_increasing_id())
        problems = problems.orderBy(ROW, "_churn_order").select(rejects_schema.names)
        write_atomically(spark, problems.coalesce(1), rejects)
    finally:
        stream.unpersist()
    rows_in, scored_rows = sum(split[2] for split in splits), sum(split[3] for split in splits)
    return {"rows_in": rows_in, "scored": scored_rows, "rejected": rows_in - scored_rows}, model


def renumbered(lines: DataFrame, offsets: DataFrame) -> DataFrame:
    """Split-local row numbers turned into the input's 1-based data rows."""
    lines = lines.join(broadcast(offsets), [FILE, BLOCK])
    return lines.withColumn(ROW, col(ROW) + col(OFFSET))


def read_input(spark: SparkSession, path: str) -> tuple[DataFrame, Layout, list[str] | None]:
    """The input (CSV as lines) with each row's split (file, byte offset), its layout, and a
    CSV's header; ``InputFileError`` as the local engine raises it."""
    is_csv = file_format(path, FORMATS) == ".csv"
    try:
        frame = spark.read.text(path) if is_csv else spark.read.parquet(path)
        first = frame.first() if is_csv else None
    except Exception as error:  # Spark's AnalysisException: missing path, unreadable file
        raise InputFileError(f"cannot read {path}: {first_line(error)}") from None
    header = header_names(first[0]) if first is not None else None
    names = header if is_csv else frame.columns
    if not names:
        raise InputFileError(f"{path} is empty; expected a header line, then customers")
    layout = Layout.of(names)
    data = [col(LINE)] if is_csv else [col(f"`{name}`") for name in wanted(names)]
    split = [col("_metadata.file_path").alias(FILE), col("_metadata.file_block_start").alias(BLOCK)]
    return frame.select(*data, *split), layout, header


def load_model(spark: SparkSession, model: str, threshold: float | None) -> BatchModel:
    """The model from a local path or any URI Spark reads (s3://), checked as the service does."""
    if "://" not in model:
        return BatchModel.load(Path(model), threshold)
    scheme, _, rest = model.partition("://")
    beside = metadata_path(PurePosixPath(rest))  # type: ignore[arg-type]
    metadata = json.loads(read_bytes(spark, f"{scheme}://{beside}"))
    weights = artifact.weights_from_bytes(read_bytes(spark, model), Path(model))
    return BatchModel.checked(weights, metadata, model, threshold)


def read_bytes(spark: SparkSession, uri: str) -> bytes:
    try:
        rows = spark.read.format("binaryFile").load(uri).select("content").collect()
    except Exception as error:
        raise ModelFileError(f"cannot read {uri}: {first_line(error)}") from None
    if len(rows) != 1:
        raise ModelFileError(f"cannot read {uri}: it is not one file")
    return bytes(rows[0]["content"])


def _collect(frame: DataFrame, path: str) -> list[Any]:
    """``frame.collect()``, with a task's or a reader's failure raised as the local engine's."""
    try:
        return frame.collect()
    except Exception as error:
        for refused in (ModelFileError, InputFileError):  # raised in a task: the same message
            if found := re.search(f"{refused.__name__}: (.*)", str(error)):
                raise refused(found[1]) from None
        if found := re.search("FAILED_READ_FILE.*Exception: (.*)", str(error)):
            raise InputFileError(f"cannot read {path}: {found[1].strip()}") from None
        raise


def first_line(error: Exception) -> str:
    return (str(error).strip() or type(error).__name__).splitlines()[0]


def write_atomically(spark: SparkSession, frame: DataFrame, path: str) -> None:
    """In local mode, written under a hidden name and renamed into place; on a cluster's storage
    (s3://, HDFS, which cannot rename atomically) in place, ``_SUCCESS`` marking it complete."""
    kind = file_format(path, FORMATS).lstrip(".")
    writer = frame.write.mode("overwrite").format(kind)
    if kind == "csv":
        writer = writer.option("header", "true").option("escape", '"')
    scheme, _, local = path.rpartition("://")
    if scheme not in ("", "file") or not str(spark.sparkContext.master).startswith("local"):
        writer.save(path)
        return
    target = Path(local)
    hidden = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        writer.save(str(hidden))
        shutil.rmtree(target, ignore_errors=True)
        hidden.rename(target)
    finally:
        shutil.rmtree(hidden, ignore_errors=True)


def ship_package(spark: SparkSession) -> None:
    """Make this package importable on the executors when it runs from a checkout (not from
    spark-submit's ``--py-files churn.zip``)."""
    package = Path(__file__).resolve().parent.parent  # churn/, when not inside a zip
    context = spark.sparkContext
    if not package.is_dir() or context.applicationId in _SHIPPED_TO:
        return
    folder = tempfile.mkdtemp(prefix="churn-spark-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)  # executors fetch it lazily
    archive = shutil.make_archive(
        str(Path(folder) / package.name), "zip", root_dir=package.parent, base_dir=package.name
    )
    context.addPyFile(archive)
    _SHIPPED_TO.add(context.applicationId)


def stream_schema(spark: SparkSession, scored: pa.Schema, rejects: pa.Schema) -> pa.Schema:
    """The one schema a task yields: kind, scored columns, reject columns, split location;
    text as this Spark expects it (Spark 4's ``useLargeVarTypes``)."""
    try:
        large = spark.conf.get("spark.sql.execution.arrow.useLargeVarTypes") or ""
    except Exception:  # Spark 3.5: no such option
        large = ""
    text = pa.large_string() if large.lower() == "true" else pa.string()
    fields = [pa.field(KIND, pa.int8(), nullable=False), *scored]
    fields += [field for field in rejects if field.name not in scored.names]
    fields += [(FILE, pa.string()), (BLOCK, pa.int64()), (SPLIT_ROWS, pa.int64())]
    schema = pa.schema([*fields, (SPLIT_SCORED, pa.int64())])
    return pa.schema(f.with_type(text) if pa.types.is_string(f.type) else f for f in schema)


# What the executors run: numpy, pyarrow, pydantic and this package (no scikit-learn, pandas).


def score_partition(
    model: BatchModel,
    schema: pa.Schema,
    locate_scored: bool,
    csv_header: list[str] | None,
    batches: Iterator[pa.RecordBatch],
) -> Iterator[pa.RecordBatch]:
    """One partition's batches scored into the tasks' stream of ``schema``; ``locate_scored``:
    scored rows carry their split, to be renumbered; ``csv_header``: the batches are CSV lines."""
    counts: dict[SplitKey, list[int]] = {}  # per split: rows, scored rows
    for batch in batches:
        for key, piece in splits_of(batch):
            if csv_header is not None:
                if key not in counts and key[1] == 0:  # the split that starts a file: its header
                    piece = piece.slice(1)
                piece = parse_lines(piece.column(LINE), csv_header, key[0])
            split = counts.setdefault(key, [0, 0])
            scored, rejects = score_record_batch(piece, model, split[0] + 1)
            split[0] += piece.num_rows
            split[1] += scored.num_rows
            yield located(scored, SCORED, key if locate_scored else None, schema)
            if rejects.num_rows:
                yield located(rejects, REJECT, key, schema)
    splits = [
        {KIND: SPLIT, FILE: file, BLOCK: block, SPLIT_ROWS: rows, SPLIT_SCORED: scored_rows}
        for (file, block), (rows, scored_rows) in counts.items()
    ]
    yield pa.RecordBatch.from_pylist(splits, schema=schema)


def splits_of(batch: pa.RecordBatch) -> Iterator[tuple[SplitKey, pa.RecordBatch]]:
    """Runs of consecutive rows from one split (file, byte offset), with that split's key."""
    files = batch.column(FILE).dictionary_encode()
    codes = files.indices.to_numpy(zero_copy_only=False)
    blocks = batch.column(BLOCK).to_numpy(zero_copy_only=False)
    changes = np.flatnonzero((codes[1:] != codes[:-1]) | (blocks[1:] != blocks[:-1])) + 1
    for start, stop in pairwise([0, *changes.tolist(), batch.num_rows]):
        key = (files.dictionary[codes[start]].as_py(), int(blocks[start]))
        yield key, batch.slice(start, stop - start)


def located(
    part: pa.RecordBatch, kind: int, key: SplitKey | None, schema: pa.Schema
) -> pa.RecordBatch:
    """Scored rows or rejects as a batch of exactly the stream's ``schema``, with their split
    when ``key`` is given: the columns they lack as nulls, the others cast to its types."""
    n = part.num_rows
    columns = dict(zip(part.schema.names, part.columns, strict=True))
    columns[KIND] = pa.repeat(pa.scalar(kind, pa.int8()), n)
    if key is not None:
        columns[FILE] = pa.repeat(pa.scalar(key[0], pa.string()), n)
        columns[BLOCK] = pa.repeat(pa.scalar(key[1], pa.int64()), n)
    arrays = [
        columns[field.name].cast(field.type) if field.name in columns else pa.nulls(n, field.type)
        for field in schema
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)
