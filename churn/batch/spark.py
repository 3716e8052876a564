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

import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
from pyspark import SparkConf, StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.functions import broadcast, col, monotonically_increasing_id
from pyspark.sql.pandas.types import from_arrow_schema

from churn import artifact
from churn.artifact import ModelFileError
from churn.batch import spark_tasks
from churn.batch.columns import ROW, InputFileError, Layout, wanted
from churn.batch.model import BatchModel
from churn.batch.spark_files import (
    check_format,
    first_line,
    metadata_uri,
    read_bytes,
    ship_package,
    write_atomically,
)
from churn.batch.spark_tasks import BLOCK, FILE, KIND, SPLIT_ROWS, SPLIT_SCORED
from churn.predictor import Predictor

APP_NAME = "churn-score"
# Rows per Arrow batch handed to the batch function: big enough that per-batch costs vanish.
ARROW_BATCH_ROWS = 65_536
OFFSET = "_churn_offset"
NEVER_NULL = "\u0000"  # no CSV field means null: an empty one is "", as in the local engine


@dataclass(frozen=True)
class SparkRun:
    input: str
    output: str
    rejects: str
    model: str
    threshold: float | None = None


def session() -> SparkSession:
    """The active session, or a local one on all cores when no master is configured.

    In local mode the Python workers run this interpreter (it has pyarrow and this package)
    and nothing listens beyond loopback; under spark-submit the cluster's settings decide.
    """
    builder = SparkSession.builder.appName(APP_NAME)
    if not SparkConf().contains("spark.master"):
        builder = (
            builder.master("local[*]")
            .config("spark.pyspark.python", sys.executable)
            .config("spark.driver.bindAddress", "127.0.0.1")  # local mode stays on loopback
            .config("spark.driver.host", "127.0.0.1")
        )
    return builder.getOrCreate()


def score(spark: SparkSession, run: SparkRun) -> dict[str, Any]:
    """Score ``run.input`` into ``run.output`` and ``run.rejects``; return the counts.

    Raises ``InputFileError`` (input cannot be scored) or ``ModelFileError`` before any task.
    """
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(ARROW_BATCH_ROWS))
    check_format(run.output)
    check_format(run.rejects)
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
        counts = _collect(combined.where(col(KIND) == spark_tasks.SPLIT), run.input)
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
    """The input with each row's split (file, byte offset), and the layout of its columns.

    CSV is read with Spark's reader as the local engine reads it: every field as text, an empty
    field as "" (not null), quotes as in RFC 4180. Raises ``InputFileError`` as the local engine
    does: unknown format, unreadable or empty file, missing or doubled columns.
    """
    try:
        if check_format(path) == "csv":
            reader = spark.read.options(header=True, inferSchema=False, escape='"')
            frame = reader.options(nullValue=NEVER_NULL, emptyValue="").csv(path)
        else:
            frame = spark.read.parquet(path)
        names = frame.columns
    except InputFileError:
        raise
    except Exception as error:  # Spark's AnalysisException: missing path, unreadable file
        raise InputFileError(f"cannot read {path}: {first_line(error)}") from None
    if not names:
        raise InputFileError(f"{path} is empty; expected a header line, then customers")
    frame = frame.select(
        *[col(f"`{name}`") for name in wanted(names)],
        col("_metadata.file_path").alias(FILE),
        col("_metadata.file_block_start").alias(BLOCK),
    )
    return frame, Layout.of(pa.schema([(name, pa.string()) for name in wanted(names)]))


def load_model(spark: SparkSession, model: str, threshold: float | None) -> BatchModel:
    """The model from a local path or any URI Spark reads (s3://), checked as the service does."""
    if "://" not in model:
        return BatchModel.load(Path(model), threshold)
    raw = read_bytes(spark, model)
    metadata = json.loads(read_bytes(spark, metadata_uri(model)))
    weights = artifact.weights_from_bytes(raw, Path(model))
    predictor = Predictor.build(weights, metadata, Path(model), threshold)
    return BatchModel(raw, metadata, predictor.version, predictor.threshold, model)


def _collect(frame: DataFrame, path: str) -> list[Any]:
    """``frame.collect()``, the first action: a file Spark cannot read, a line a task could
    not parse, or a model a task refused, surface as the errors the local engine raises (exit
    code 2)."""
    try:
        return frame.collect()
    except Exception as error:
        text = str(error)
        for refused in (ModelFileError, InputFileError):  # raised by a task: same message
            marker = f"{refused.__name__}: "
            line = next((line for line in text.splitlines() if marker in line), None)
            if line is not None:
                raise refused(line.partition(marker)[2]) from None
        reason = next((line for line in text.splitlines() if "FAILED_READ_FILE" in line), None)
        if reason is not None:
            raise InputFileError(f"cannot read {path}: {reason.strip()}") from None
        raise


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
