"""The batch benchmark's smoke run: every contender runs on generated files and is reported."""

from __future__ import annotations

import subprocess
import sys

import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from bench import customers
from churn.config import PROJECT_ROOT


def test_the_generated_files_have_the_exports_structure(tmp_path):
    table = pa_csv.read_csv(customers.write(tmp_path / "c.csv", 4000, seed=1))
    rows = table.to_pylist()
    assert len(rows) == 4000 and len({r["customerID"] for r in rows}) == 4000
    no_internet = [r for r in rows if r["InternetService"] == "No"]
    assert no_internet and all(r["StreamingTV"] == "No internet service" for r in no_internet)
    assert {r["TotalCharges"] for r in rows if r["tenure"] == 0} <= {" "}
    parquet = pq.read_table(customers.write(tmp_path / "c.parquet", 100, seed=1))
    assert parquet.schema.field("tenure").type == "int64"


@pytest.mark.slow  # a benchmark run, for `make test`
def test_the_smoke_run_measures_ours_and_the_courses_way(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "bench.batch", "--smoke", "--workdir", str(tmp_path)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ours")]
    assert len(rows) == 4 and "| course's chunked pandas CSV→CSV, 5,000 |" in result.stdout
    assert "peak memory, 15,000 vs 5,000 rows" in result.stdout and "load average" in result.stdout
