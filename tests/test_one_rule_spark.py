"""The one rule on Spark: ``score.py --engine spark`` gives each drawn customer, valid or spoiled,
the decision and the bits of probability /predict gives it alone (tests/test_one_rule.py draws
the customers and checks the other paths; Spark gets a smaller draw: a job costs seconds).
"""

from __future__ import annotations

import math

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from churn.batch.cli import main as score_main
from churn.features import normalize_token
from tests.conftest import COMMITTED_MODEL
from tests.test_one_rule import customers, decision, predict_alone, text_of

pytestmark = [pytest.mark.spark, pytest.mark.slow]


def in_a_file(customer: dict) -> bool:
    """A customer a text file can carry with the same meaning (no null, no NaN)."""
    return all(v is not None and not (isinstance(v, float) and not math.isfinite(v))
               for v in customer.values())  # fmt: skip


def as_text_table(batch: list[dict]) -> pa.Table:
    """The customers as text columns under the course's names (one header for the file); no
    id, so the outputs name each customer by its row."""
    rows = [
        {normalize_token(k): text_of(v) for k, v in c.items() if k != "customerID"} for c in batch
    ]
    return pa.Table.from_pylist(rows)


def decisions_by_row(output, rejects) -> dict[int, object]:
    found = {}
    for row in pq.read_table(output).to_pylist():
        found[row["row"]] = decision([row], [])
    problems: dict[int, list] = {}
    for problem in pq.read_table(rejects).to_pylist():
        problems.setdefault(problem["row"], []).append(problem)
    found.update({row: decision([], listed) for row, listed in problems.items()})
    return found


@settings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck))
@given(batch=st.lists(customers().filter(in_a_file), min_size=15, max_size=30))
def test_spark_gives_each_customer_predicts_decision_and_bits(spark, batch, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("spark-rule")
    expected = {row: predict_alone(c) for row, c in enumerate(batch, start=1)}
    table = as_text_table(batch)
    sources = {"csv": tmp / "in.csv", "parquet": tmp / "in.parquet"}
    pa_csv.write_csv(table, sources["csv"])
    pq.write_table(table, sources["parquet"])
    for kind, source in sources.items():
        output, rejects = tmp / f"{kind}.scores.parquet", tmp / f"{kind}.rejects.parquet"
        code = score_main(["--engine", "spark", "--input", str(source), "--output", str(output),
                           "--rejects", str(rejects), "--model", str(COMMITTED_MODEL),
                           "--max-invalid", "1"])  # fmt: skip
        assert code == 0
        assert decisions_by_row(output, rejects) == expected, kind
