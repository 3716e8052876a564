"""The Spark engine, in local mode, against the local engine on the same generated files.

One SparkSession serves the whole run (``spark`` in conftest.py): local[2], UI off, ANSI mode on
(Spark 4's default, and where a blank TotalCharges would throw if anything cast it with SQL).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.csv
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from churn.artifact import ModelFileError
from churn.batch import spark as engine
from churn.batch.columns import BatchModel, InputFileError
from churn.config import PROJECT_ROOT
from tests.conftest import COMMITTED_MODEL
from tests.synthetic import raw_frame, write_csv

# Rows the validator must refuse, planted at known 0-based positions of the generated frame.
PLANTED = {
    10: ("Contract", "Weekly"),
    11: ("tenure", "-3"),
    2_500: ("MonthlyCharges", "abc"),
    3_999: ("gender", ""),
}
ROWS = 4_000
pytestmark = pytest.mark.spark


def customers_with_bad_rows(rows: int = ROWS, seed: int = 7):
    frame = raw_frame(rows, seed=seed)
    for position, (column, value) in PLANTED.items():
        if position < rows:
            frame.loc[position, column] = value
    # An empty TotalCharges is a blank, scored as 0 like " ": Spark reads it as null.
    frame.loc[20, ["tenure", "TotalCharges"]] = ["0", ""]
    return frame


@pytest.fixture(scope="module")
def raw_csv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("spark-in") / "customers.csv"
    frame = customers_with_bad_rows()
    assert (frame["TotalCharges"] == " ").any(), "the file must hold blank TotalCharges"
    write_csv(path, frame)
    return path


def run_local(source: Path, work: Path) -> tuple[pa.Table, pa.Table]:
    """The local engine through its command line, as a user runs it."""
    output, rejects = work / "local.parquet", work / "local-rejects.csv"
    command = [sys.executable, "score.py", "--input", str(source), "--output", str(output)]
    command += ["--rejects", str(rejects), "--model", str(COMMITTED_MODEL), "--max-invalid", "1"]
    done = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return pq.read_table(output), read_rejects(rejects)


def run_spark(spark, source: Path, work: Path) -> tuple[pa.Table, pa.Table, dict]:
    output, rejects = work / "spark.parquet", work / "spark-rejects.csv"
    counts, _ = engine.score(spark, str(source), str(output), str(rejects), str(COMMITTED_MODEL))
    return pq.read_table(output), read_rejects(rejects), counts


@contextlib.contextmanager
def spark_settings(spark, settings: dict[str, str]):
    """Session settings for one test, restored after it (the session is shared)."""
    for key, value in settings.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key in settings:
            spark.conf.unset(key)


def read_rejects(path: Path) -> pa.Table:
    """A rejects CSV, a single file (local engine) or Spark's folder of parts, as text."""
    names = ds.dataset(path, format="csv").schema.names
    text = ds.CsvFileFormat(
        convert_options=pa.csv.ConvertOptions(column_types={n: pa.string() for n in names})
    )
    return ds.dataset(path, format=text).to_table()


def test_spark_output_equals_local_engine_row_for_row(spark, raw_csv, tmp_path):
    splits = {"spark.sql.files.maxPartitionBytes": str(raw_csv.stat().st_size // 3)}
    with spark_settings(spark, splits):  # three splits, read in parallel
        scored, rejects, counts = run_spark(spark, raw_csv, tmp_path)
    local_scored, local_rejects = run_local(raw_csv, tmp_path)
    assert scored.to_pylist() == local_scored.to_pylist()
    assert rejects.to_pylist() == local_rejects.to_pylist()
    bad_rows = sorted(position + 1 for position in PLANTED)
    assert sorted({int(row) for row in rejects.column("row").to_pylist()}) == bad_rows
    assert (counts["rows_in"], counts["scored"], counts["rejected"]) == (ROWS, ROWS - 4, 4)


def test_rows_are_numbered_across_a_directory_of_parquet_parts(spark, tmp_path):
    frame = customers_with_bad_rows()
    parts = tmp_path / "customers.parquet"
    parts.mkdir()
    # Parts of different sizes: Spark schedules big splits first, the numbering must not care.
    for index, (start, stop) in enumerate([(0, 600), (600, 3_000), (3_000, ROWS)]):
        part = pa.Table.from_pandas(frame.iloc[start:stop], preserve_index=False)
        pq.write_table(part, parts / f"part-{index:05d}.parquet", row_group_size=500)
    scored, rejects, _ = run_spark(spark, parts, tmp_path)
    local_scored, local_rejects = run_local(parts, tmp_path)
    assert rejects.to_pylist() == local_rejects.to_pylist()
    assert sorted(scored.to_pylist(), key=str) == sorted(local_scored.to_pylist(), key=str)


def test_arrow_large_strings_are_cast_to_what_spark_declares(spark, tmp_path):
    source = Path(write_csv(tmp_path / "few.csv", customers_with_bad_rows(300)))
    with spark_settings(spark, {"spark.sql.execution.arrow.useLargeVarTypes": "true"}):
        scored, rejects, _ = run_spark(spark, source, tmp_path)
    local_scored, local_rejects = run_local(source, tmp_path)
    assert scored.to_pylist() == local_scored.to_pylist()
    assert rejects.to_pylist() == local_rejects.to_pylist()


def test_csv_text_is_read_as_the_local_engine_reads_it(spark, tmp_path):
    """Tasks parse CSV lines themselves: a byte order mark, CRLF line ends, blank lines,
    quoted fields and empty fields must come out as the local engine's Arrow reader gives."""
    frame = customers_with_bad_rows(300)
    frame.loc[5, "customerID"] = 'A, "quoted" id'
    frame.loc[6, "PaymentMethod"] = "Mailed check, twice"  # a comma inside quotes: rejected
    lines = frame.to_csv(index=False, lineterminator="\r\n").split("\r\n")
    lines.insert(120, "")  # a blank line: skipped, not a row
    source = tmp_path / "quirks.csv"
    source.write_bytes(("\ufeff" + "\r\n".join(lines)).encode())
    splits = {"spark.sql.files.maxPartitionBytes": str(source.stat().st_size // 3)}
    with spark_settings(spark, splits):
        scored, rejects, counts = run_spark(spark, source, tmp_path)
    local_scored, local_rejects = run_local(source, tmp_path)
    assert scored.to_pylist() == local_scored.to_pylist()
    assert rejects.to_pylist() == local_rejects.to_pylist()
    assert 'A, "quoted" id' in scored.column("customerID").to_pylist()
    assert [r["row"] for r in rejects.to_pylist() if r["field"].lower() == "paymentmethod"] == ["7"]
    assert counts["rows_in"] == 300


def damaged_in_transit(monkeypatch) -> None:
    """Every pickled BatchModel leaves the driver with one byte of its model changed."""
    honest = BatchModel.__reduce__

    def damaged(model):
        build, (raw, *others) = honest(model)
        return build, (bytes([raw[0] ^ 1]) + raw[1:], *others)

    monkeypatch.setattr(BatchModel, "__reduce__", damaged)


def test_tasks_refuse_model_bytes_damaged_on_the_way(spark, raw_csv, tmp_path, monkeypatch):
    output = tmp_path / "spark.parquet"
    pq.write_table(pa.table({"previous": [1, 2, 3]}), tmp_path / "previous.parquet")
    (tmp_path / "previous.parquet").rename(output)
    damaged_in_transit(monkeypatch)
    with pytest.raises(ModelFileError, match="SHA-256"):
        run_spark(spark, raw_csv, tmp_path)
    # The failed run left the previous output as it was, and nothing else.
    assert pq.read_table(output).to_pylist() == [{"previous": v} for v in (1, 2, 3)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spark.parquet"]


def test_output_batches_take_the_declared_string_type():
    schema = pa.schema([pa.field("id", pa.large_string()), pa.field("p", pa.float64())])
    part = pa.record_batch([pa.array(["a", "b"], pa.string())], names=["id"])
    batch = engine.located(part, engine.SCORED, None, schema)
    assert batch.schema == schema
    assert batch.column("p").null_count == 2


@pytest.mark.parametrize(
    ("name", "text", "problem"),
    [
        ("missing.csv", None, "missing.csv"),
        ("customers.txt", "not a customer file\n", "unknown format"),
        ("columns.csv", "customerID,gender\n1,Male\n", "missing column"),
        ("ragged.csv", None, r"ragged\.csv: .*Expected \d+ columns"),
        ("empty.csv", "", "empty; expected a header line"),
    ],
)
def test_a_bad_input_stops_with_an_input_error(spark, tmp_path, name, text, problem):
    source = tmp_path / name
    if name == "ragged.csv":
        lines = Path(write_csv(tmp_path / "good.csv", raw_frame(30))).read_text().splitlines()
        lines[17] = lines[17].rsplit(",", 2)[0]  # a row short of two fields
        text = "\n".join(lines) + "\n"
    if text is not None:
        source.write_text(text)
    with pytest.raises(InputFileError, match=problem):
        run_spark(spark, source, tmp_path)


def test_score_py_runs_the_spark_engine_in_local_mode(tmp_path):
    source = write_csv(tmp_path / "few.csv", customers_with_bad_rows(50))
    output, rejects = tmp_path / "out.parquet", tmp_path / "rejects.csv"
    command = [sys.executable, str(PROJECT_ROOT / "score.py"), "--engine", "spark"]
    command += ["--input", source, "--output", str(output), "--rejects", str(rejects)]
    command += ["--model", str(COMMITTED_MODEL)]
    # From another folder: the executors find this package only because the job ships it.
    done = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False
    )
    # 2 of 50 rows rejected is more than the default --max-invalid of 1%: a flood, exit 3,
    # reported with both outputs left for inspection.
    assert done.returncode == 3, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert (summary["engine"], summary["status"]) == ("spark", "too_many_invalid")
    assert (summary["rows_in"], summary["scored"], summary["rejected"]) == (50, 48, 2)
    assert pq.read_table(output).num_rows == 48
    assert read_rejects(rejects).column("row").to_pylist() == ["11", "12"]
