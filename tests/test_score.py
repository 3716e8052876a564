"""score.py, the batch scoring command: formats, rejects, bad files, floods, interruptions."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

import churn.batch
from bench.servers import poll
from churn.batch.cli import DEFAULT_MAX_INVALID, Progress, main
from churn.config import PROJECT_ROOT
from churn.features import normalize_token
from tests.conftest import COMMITTED_MODEL
from tests.modelcheck import sklearn_probabilities
from tests.synthetic import raw_frame, write_csv

SCORE = [sys.executable, str(PROJECT_ROOT / "score.py")]


@pytest.fixture(scope="module")
def customers():
    return raw_frame(3000, seed=11)


@pytest.fixture(scope="module")
def raw_csv(tmp_path_factory, customers):
    return write_csv(tmp_path_factory.mktemp("in") / "customers.csv", customers)


def score(*args, capsys) -> tuple[int, dict | None, str]:
    code = main([*map(str, args), "--model", str(COMMITTED_MODEL)])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip() else None), err


def read(path) -> pa.Table:
    path = str(path)
    if path.endswith(".csv"):
        return pa_csv.read_csv(
            path, convert_options=pa_csv.ConvertOptions(strings_can_be_null=False)
        )
    if path.endswith(".jsonl"):
        return pa.Table.from_pylist([json.loads(line) for line in open(path)])
    return pq.read_table(path)


def test_a_raw_export_scores_like_sklearn_with_a_summary(raw_csv, customers, tmp_path, capsys):
    out = tmp_path / "scores.parquet"
    code, summary, err = score("--input", raw_csv, "--output", out, capsys=capsys)
    assert code == 0 and err == ""  # no progress bar when stderr is not a terminal
    assert summary["rows_in"] == summary["scored"] == len(customers) and summary["rejected"] == 0
    assert (
        summary["model_version"]
        == COMMITTED_MODEL.with_suffix(".json").read_text().split('"artifact_sha256": "')[1][:64]
    )
    table = read(out)
    assert table.column("customerID").to_pylist() == customers["customerID"].tolist()
    expected = sklearn_probabilities(customers)
    np.testing.assert_allclose(table.column("churn_probability"), expected, rtol=0, atol=1e-12)
    assert read(tmp_path / "scores.rejects.parquet").num_rows == 0
    assert oct(out.stat().st_mode & 0o777) != oct(0o600)  # a normal file, not mkstemp's


@pytest.mark.parametrize("output", ["scores.csv", "scores.jsonl"])
def test_course_form_parquet_parts_give_the_same_scores_in_any_format(
    customers, tmp_path, capsys, output
):
    course = customers.rename(columns=normalize_token).drop(columns="churn")
    parts = tmp_path / "parts"
    parts.mkdir()
    (parts / "_SUCCESS").write_text("")
    for number, start in enumerate(range(0, len(course), 1000)):
        chunk = course.iloc[start : start + 1000]
        pq.write_table(
            pa.Table.from_pandas(chunk, preserve_index=False), parts / f"part-{number:05d}.parquet"
        )
    code, summary, _ = score("--input", parts, "--output", tmp_path / output, capsys=capsys)
    assert code == 0 and summary["scored"] == len(customers)
    table = read(tmp_path / output)
    assert table.column("customerid").to_pylist() == customers["customerID"].tolist()
    np.testing.assert_allclose(
        table.column("churn_probability"), sklearn_probabilities(customers), rtol=0, atol=1e-12
    )


def test_a_parquet_file_with_unused_columns_before_the_fields_scores(customers, tmp_path, capsys):
    frame = customers.iloc[:300]
    path = tmp_path / "customers.parquet"  # the export's Churn column first, a note in between
    table = pa.Table.from_pandas(
        frame[["Churn", *frame.columns.drop("Churn")]], preserve_index=False
    )
    pq.write_table(table.add_column(3, "note", pa.array(["vip"] * len(frame))), path)
    out = tmp_path / "s.parquet"
    code, summary, _ = score("--input", path, "--output", out, capsys=capsys)
    assert code == 0 and summary["scored"] == len(frame)
    assert read(out).column("customerID").to_pylist() == frame["customerID"].tolist()
    np.testing.assert_allclose(
        read(out).column("churn_probability"), sklearn_probabilities(frame), rtol=0, atol=1e-12
    )


def test_jsonl_input_is_read_too(customers, tmp_path, capsys):
    path = tmp_path / "customers.jsonl"
    customers.iloc[:200].to_json(path, orient="records", lines=True)
    code, summary, _ = score("--input", path, "--output", tmp_path / "s.parquet", capsys=capsys)
    assert code == 0 and summary["scored"] == 200


def test_rejected_rows_are_listed_with_row_id_field_and_message(customers, tmp_path, capsys):
    frame = customers.iloc[:1000].copy()
    frame.loc[9, "tenure"] = "ten"
    frame.loc[500, "PaymentMethod"] = "cash"
    path = write_csv(tmp_path / "some_bad.csv", frame)
    out, rejects = tmp_path / "s.csv", tmp_path / "r.csv"
    code, summary, _ = score("--input", path, "--output", out, "--rejects", rejects, capsys=capsys)
    assert code == 0 and (summary["scored"], summary["rejected"]) == (998, 2)
    assert summary["scored"] + summary["rejected"] == summary["rows_in"] == 1000
    lines = read(rejects).to_pylist()
    assert [(r["row"], r["customerID"], r["field"]) for r in lines] == [
        (10, frame.loc[9, "customerID"], "tenure"),
        (501, frame.loc[500, "customerID"], "paymentmethod"),
    ]
    assert "bank_transfer_(automatic)" in lines[1]["message"]
    assert frame.loc[9, "customerID"] not in read(out).column("customerID").to_pylist()


def test_a_flood_of_bad_rows_exits_3_and_writes_no_scores(customers, tmp_path, capsys):
    frame = customers.iloc[:1000].copy()
    frame.loc[:49, "Contract"] = "Quarterly"  # 5% of rows: an export that changed
    path = write_csv(tmp_path / "flood.csv", frame)
    out = tmp_path / "s.parquet"
    code, summary, err = score("--input", path, "--output", out, capsys=capsys)
    assert DEFAULT_MAX_INVALID < 0.05
    assert code == 3 and summary["status"] == "too_many_invalid" and "--max-invalid" in err
    assert not out.exists() and read(tmp_path / "s.rejects.parquet").num_rows == 50
    code, summary, _ = score(
        "--input", path, "--output", out, "--max-invalid", "0.1", capsys=capsys
    )
    assert code == 0 and read(out).num_rows == 950


@pytest.mark.parametrize(
    ("name", "content", "named"),
    [
        ("missing.csv", None, "does not exist"),
        ("customers.xlsx", b"PK\x03\x04", "unknown format"),
        ("empty.csv", b"", "empty"),
        ("binary.csv", bytes(range(256)) * 4, "UTF-8"),
        ("columns.csv", b"customerID,gender\n1,Male\n", "missing column(s): partner"),
        ("broken.parquet", b"PAR1 not really", "not a readable .parquet file"),
    ],
)
def test_a_bad_input_file_exits_2_naming_the_problem(tmp_path, capsys, name, content, named):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    code, summary, err = score("--input", path, "--output", tmp_path / "s.parquet", capsys=capsys)
    assert code == 2 and summary is None and named in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ([name] if content is not None else [])


def test_a_ragged_csv_row_stops_the_run_without_output(customers, tmp_path, capsys):
    path = tmp_path / "ragged.csv"
    write_csv(path, customers.iloc[:100])
    with open(path, "a") as handle:
        handle.write("only,three,fields\n")
    code, _, err = score("--input", path, "--output", tmp_path / "s.csv", capsys=capsys)
    assert code == 2 and "ragged.csv" in err and "columns" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ragged.csv"]


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_an_interrupted_run_leaves_no_output(customers, tmp_path, how):
    # Rows the array checks cannot vouch for (unusual but valid totals) take the slow path, so
    # the run lasts long enough to be stopped after its first batch is written.
    frame = customers.copy()
    frame["TotalCharges"] = [f" {i}.5" for i in range(len(frame))]
    path = write_csv(tmp_path / "slow.csv", frame)
    out = tmp_path / "scores.csv"
    process = subprocess.Popen(
        [*SCORE, "--input", path, "--output", out, "--batch-rows", "50"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        poll(lambda: _partial_written(tmp_path), bool, timeout=60, interval=0.02)
        process.send_signal(how)
        process.wait(timeout=30)
    finally:
        process.kill()
    assert process.returncode != 0 and not out.exists()
    assert not (tmp_path / "scores.rejects.csv").exists()
    if how == signal.SIGTERM:  # a stop it can handle: its temporary files go too
        assert sorted(p.name for p in tmp_path.iterdir()) == ["slow.csv"]


def _partial_written(directory) -> bool:
    """Whether the run has written scores (more than a header) to its temporary file."""
    return any(
        p.name.startswith(".scores.csv.") and p.stat().st_size > 1000 for p in directory.iterdir()
    )


def test_the_command_runs_as_a_script_and_prints_one_json_line(raw_csv, tmp_path):
    result = subprocess.run(
        [*SCORE, "--input", raw_csv, "--output", tmp_path / "s.parquet"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    (line,) = result.stdout.splitlines()
    assert json.loads(line)["scored"] == 3000


def test_progress_is_drawn_only_on_a_terminal(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("churn.batch.cli.REFRESH_SECONDS", 0.0)
    for stream, drawn in ((Terminal(), True), (io.StringIO(), False)):
        progress = Progress(total=2_000, stream=stream)
        time.sleep(0.01)
        progress.update(1_000)
        progress.close()
        text = stream.getvalue()
        assert ("1,000 / 2,000 rows (50%)" in text and "rows/s" in text) == drawn
        assert (text == "") != drawn


def test_without_pyspark_the_spark_engine_says_so(raw_csv, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "churn.batch.spark", None)  # import fails as without pyspark
    # Once another test has imported the engine, the package holds it as an attribute too.
    monkeypatch.delattr(churn.batch, "spark", raising=False)
    code, summary, err = score(
        "--engine", "spark", "--input", raw_csv, "--output", tmp_path / "s.parquet", capsys=capsys
    )
    assert code == 2 and summary is None and "Spark engine is not available" in err
