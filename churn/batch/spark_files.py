"""Files for the Spark engine: formats, whole-file reads from URIs, atomic folder writes, and
shipping this package to the executors. Paths are text: they may be URIs (s3://, hdfs://).
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import uuid
from pathlib import Path, PurePosixPath

from pyspark.sql import DataFrame, SparkSession

from churn.artifact import ModelFileError
from churn.batch.columns import InputFileError
from churn.config import metadata_path

FORMATS = {".csv": "csv", ".parquet": "parquet"}
# Object stores cannot rename atomically: there Spark's committer writes in place and the
# _SUCCESS file marks a complete output.
NO_RENAME_SCHEMES = frozenset({"s3", "s3a", "s3n", "gs", "abfs", "abfss", "wasb", "wasbs"})
_SHIPPED_TO: set[str] = set()  # Spark applications that have this package already


def read_bytes(spark: SparkSession, uri: str) -> bytes:
    """A whole file from any URI Spark can read (s3://, hdfs://)."""
    try:
        rows = spark.read.format("binaryFile").load(uri).select("content").collect()
    except Exception as error:
        raise ModelFileError(f"cannot read {uri}: {first_line(error)}") from None
    if len(rows) != 1:
        raise ModelFileError(f"cannot read {uri}: it is not one file")
    return bytes(rows[0]["content"])


def write_atomically(spark: SparkSession, frame: DataFrame, path: str) -> None:
    """Write ``frame`` to a hidden folder beside ``path``, then rename it to ``path``.

    A failed or killed run leaves at most the hidden folder, never a half-written ``path``.
    """
    writer = frame.write.mode("overwrite").format(check_format(path))
    if check_format(path) == "csv":
        writer = writer.option("header", "true").option("escape", '"')
    hadoop = spark.sparkContext._jvm.org.apache.hadoop.fs  # type: ignore[union-attr]
    target = hadoop.Path(path)
    fs = target.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
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


def check_format(path: str) -> str:
    suffix = PurePosixPath(path.rstrip("/")).suffix.lower()
    if suffix not in FORMATS:
        raise InputFileError(f"{path}: unknown format {suffix!r}; use .csv or .parquet")
    return FORMATS[suffix]


def metadata_uri(model: str) -> str:
    """The metadata beside a model given as a URI (for local paths: ``metadata_path``)."""
    scheme, separator, rest = model.partition("://")
    return scheme + separator + str(metadata_path(PurePosixPath(rest)))  # type: ignore[arg-type]


def first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
