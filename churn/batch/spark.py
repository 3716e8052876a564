"""The ``--engine spark`` engine: batch scoring as a Spark job, for bases beyond one machine.

The driver reads the input with Spark and has the executors run the local engine's Arrow batch
function through ``mapInArrow`` (churn/batch/spark_tasks.py), the model shipped as data. Then it
numbers the rows (``split_offsets``) and writes the scored rows and the rejects, each to its own
output, each atomically where the file system can rename.

``python score.py --engine spark`` runs Spark in local mode on all cores when no master is
configured; ``spark-submit score.py --engine spark`` runs on whatever cluster spark-submit names
(YARN, EMR Serverless, Kubernetes). Nothing here casts with Spark SQL: CSV columns are read as
text and all parsing and checking happens in the batch function, so Spark 4's ANSI mode (where
casting a blank TotalCharges throws) changes nothing.
"""

from __future__ import annotations

import atexit
import json
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pyarrow as pa
from pyspark import SparkConf, StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.functions import broadcast, col, monotonically_increasing_id
from pyspark.sql.pandas.types import from_arrow_schema

from churn import artifact
from churn.artifact import ModelFileError
from churn.batch import spark_tasks
from churn.batch.columns import ROW, InputFileError, Layout
from churn.batch.model import BatchModel
from churn.batch.spark_tasks import BLOCK, FILE, KIND, SPLIT_ROWS, SPLIT_SCORED
from churn.config import metadata_path
from churn.predictor import Predictor

APP_NAME = "churn-score"
# Rows per Arrow batch handed to the batch function: big enough that per-batch costs vanish.
ARROW_BATCH_ROWS = 65_536
FORMATS = {".csv": "csv", ".parquet": "parquet"}
# Object stores cannot rename atomically: there Spark's committer writes in place and the
# _SUCCESS file marks a complete output.
NO_RENAME_SCHEMES = frozenset({"s3", "s3a", "s3n", "gs", "abfs", "abfss", "wasb", "wasbs"})
OFFSET = "_churn_offset"
_SHIPPED_TO: set[str] = set()  # Spark applications that have this package already


@dataclass(frozen=True)
class SparkRun:
    input: str
    output: str
    rejects: str
    model: str
    threshold: float | None = None


def session() -> SparkSession:
    """The active session, or a local one on all cores when no master is configured.

    In local mode the Python workers run this interpreter (it has pyarrow and this package);
    under spark-submit the cluster's settings decide.
    """
    builder = SparkSession.builder.appName(APP_NAME)
    if not SparkConf().contains("spark.master"):
        builder = builder.master("local[*]").config("spark.pyspark.python", sys.executable)
    return builder.getOrCreate()


def score(spark: SparkSession, run: SparkRun) -> dict[str, Any]:
    """Score ``run.input`` into ``run.output`` and ``run.rejects``; return the counts.

    Raises ``InputFileError`` (input cannot be scored) or ``ModelFileError`` before any task.
    """
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(ARROW_BATCH_ROWS))
    _check_format(run.output)
    _check_format(run.rejects)
    ship_package(spark)
    model = load_model(spark, run.model, run.threshold)
    frame, layout = read_input(spark, run.input)
    scored_schema, rejects_schema = layout.output_schema(), layout.rejects_schema()
    schema = spark_tasks.combined_schema(scored_schema, rejects_schema)
    schema = _text_as(schema, pa.large_string() if _large_strings(spark) else pa.string())
    numbered_scored = layout.id_column is None  # scored rows are then named by their row
    task = spark_tasks.PartitionScorer(model, list(layout.names), schema, numbered_scored)
    combined = frame.mapInArrow(task, from_arrow_schema(schema))
    combined = combined.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        counts = combined.where(col(KIND) == spark_tasks.SPLIT).collect()
        offsets = offsets_table(
            spark, split_offsets((c[FILE], c[BLOCK], c[SPLIT_ROWS]) for c in counts)
        )
        scored = combined.where(col(KIND) == spark_tasks.SCORED)
        if numbered_scored:
            scored = renumbered(scored, offsets)
        write_atomically(spark, scored.select(scored_schema.names), run.output)
        rejects = renumbered(combined.where(col(KIND) == spark_tasks.REJECT), offsets)
        # Within a row, problems keep the order the batch function gave them.
        rejects = rejects.withColumn("_churn_order", monotonically_increasing_id())
        rejects = rejects.orderBy(ROW, "_churn_order").select(rejects_schema.names)
        write_atomically(spark, rejects.coalesce(1), run.rejects)
    finally:
        combined.unpersist()
    rows_in = sum(c[SPLIT_ROWS] for c in counts)
    scored_count = sum(c[SPLIT_SCORED] for c in counts)
    return {
        "rows": rows_in,
        "scored": scored_count,
        "rejected": rows_in - scored_count,
        "model_version": model.version,
    }


def split_offsets(counts: Iterable[tuple[str, int, int]]) -> dict[tuple[str, int], int]:
    """Rows before each split (file, byte offset) in input order: files by path, then offset.

    A directory of parts is read in path order, as the local engine reads it; within a file,
    splits follow their byte offsets.
    """
    offsets, before = {}, 0
    for file, block, rows in sorted(counts):
        offsets[(file, block)] = before
        before += rows
    return offsets


def offsets_table(spark: SparkSession, offsets: dict[tuple[str, int], int]) -> DataFrame:
    return spark.createDataFrame(
        [(file, block, offset) for (file, block), offset in offsets.items()],
        f"{FILE} string, {BLOCK} long, {OFFSET} long",
    )


def renumbered(lines: DataFrame, offsets: DataFrame) -> DataFrame:
    """Split-local row numbers turned into the input's 1-based data rows."""
    lines = lines.join(broadcast(offsets), [FILE, BLOCK])
    return lines.withColumn(ROW, col(ROW) + col(OFFSET))


def read_input(spark: SparkSession, path: str) -> tuple[DataFrame, Layout]:
    """The columns the scorer needs, as text (CSV) or as stored (Parquet), with each row's split.

    Raises ``InputFileError`` as the local engine does: unknown format, unreadable file,
    missing or doubled columns.
    """
    fmt = _check_format(path)
    try:
        if fmt == "csv":
            # Every column as text, quotes doubled as in RFC 4180. Spark reads an empty field
            # as null; it is "" again here, as the local engine reads it.
            frame = spark.read.csv(path, header=True, escape='"', inferSchema=False)
            frame = frame.na.fill("")
        else:
            frame = spark.read.parquet(path)
        columns = frame.columns
    except Exception as error:  # Spark's AnalysisException: missing path, unreadable file
        raise InputFileError(f"cannot read {path}: {_first_line(error)}") from None
    layout = Layout.of(pa.schema([(name, pa.string()) for name in columns]))
    frame = frame.select(
        *[col(f"`{name}`") for name in layout.names],
        col("_metadata.file_path").alias(FILE),
        col("_metadata.file_block_start").alias(BLOCK),
    )
    return frame, layout


def load_model(spark: SparkSession, model: str, threshold: float | None) -> BatchModel:
    """The model from a local path or any URI Spark reads (s3://), checked as the service does."""
    if "://" not in model:
        return BatchModel.load(Path(model), threshold)
    raw = read_bytes(spark, model)
    metadata = json.loads(read_bytes(spark, _metadata_uri(model)))
    weights = artifact.weights_from_bytes(raw, Path(model))
    predictor = Predictor.build(weights, metadata, Path(model), threshold)
    return BatchModel(raw, metadata, predictor.version, predictor.threshold, model)


def read_bytes(spark: SparkSession, uri: str) -> bytes:
    """A whole file from any URI Spark can read (s3://, hdfs://)."""
    try:
        rows = spark.read.format("binaryFile").load(uri).select("content").collect()
    except Exception as error:
        raise ModelFileError(f"cannot read {uri}: {_first_line(error)}") from None
    if len(rows) != 1:
        raise ModelFileError(f"cannot read {uri}: it is not one file")
    return bytes(rows[0]["content"])


def write_atomically(spark: SparkSession, frame: DataFrame, path: str) -> None:
    """Write ``frame`` to a hidden folder beside ``path``, then rename it to ``path``.

    A failed or killed run leaves at most the hidden folder, never a half-written ``path``.
    """
    writer = frame.write.mode("overwrite").format(_check_format(path))
    if _check_format(path) == "csv":
        writer = writer.option("header", "true").option("escape", '"')
    hadoop = spark.sparkContext._jvm.org.apache.hadoop.fs  # type: ignore[union-attr]
    target = hadoop.Path(path)
    fs = target.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())  # type: ignore[union-attr]
    if fs.getScheme() in NO_RENAME_SCHEMES:
        writer.save(path)
        return
    hidden = hadoop.Path(target.getParent(), f".{target.getName()}.{uuid.uuid4().hex}.tmp")
    try:
        writer.save(hidden.toString())
        fs.delete(target, True)
        if not fs.rename(hidden, target):
            raise OSError(f"could not rename {hidden.toString()} to {path}")
    finally:
        fs.delete(hidden, True)


def ship_package(spark: SparkSession) -> None:
    """Make this package importable on the executors when it runs from a checkout.

    Under spark-submit with ``--py-files churn.zip`` it already is (and lives in that zip).
    """
    package = Path(spark_tasks.__file__).resolve().parent.parent
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


def _check_format(path: str) -> str:
    suffix = PurePosixPath(path.rstrip("/")).suffix.lower()
    if suffix not in FORMATS:
        raise InputFileError(f"{path}: unknown format {suffix!r}; use .csv or .parquet")
    return FORMATS[suffix]


def _text_as(schema: pa.Schema, text: pa.DataType) -> pa.Schema:
    def is_text(kind: pa.DataType) -> bool:
        return pa.types.is_string(kind) or pa.types.is_large_string(kind)

    return pa.schema(field.with_type(text) if is_text(field.type) else field for field in schema)


def _large_strings(spark: SparkSession) -> bool:
    """Whether this Spark hands Arrow large_string (a Spark 4 option; Spark 3.5 lacks it)."""
    try:
        return str(spark.conf.get("spark.sql.execution.arrow.useLargeVarTypes")).lower() == "true"
    except Exception:  # Spark 3.5: no such option
        return False


def _metadata_uri(model: str) -> str:
    """The metadata beside a model given as a URI (for local paths: ``metadata_path``)."""
    scheme, separator, rest = model.partition("://")
    return scheme + separator + str(metadata_path(PurePosixPath(rest)))  # type: ignore[arg-type]


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
