"""``python -m churn.outcomes``: loading outcome files (bad rows, refused files, loading twice),
the report's join window, and ``score.py --capture-database``, on a real PostgreSQL."""

from __future__ import annotations

import csv
import json
import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from churn.config import PROJECT_ROOT
from churn.outcomes.__main__ import main as outcomes
from tests.capturing import captured, customers

pytestmark = pytest.mark.postgres

TODAY = datetime.now(UTC).date()


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    with open(path, "w", newline="") as handle:
        csv.writer(handle).writerows([["customer_id", "churned", "observed_on"], *rows])
    return path


def stored(url: str) -> dict[tuple[str, str], bool]:
    with psycopg.connect(url) as connection:
        rows = connection.execute("SELECT customer_id, observed_on, churned FROM churn_outcomes")
        return {(c, d.isoformat()): churned for c, d, churned in rows}


def load(url: str, path: Path, *options: str) -> int:
    return outcomes(["load", "--database", url, str(path), *options])


def good_rows(count: int) -> list[list[str]]:
    words = ["yes", "no", "True", "false", "1", "0"]
    return [[f"c{n}", words[n % len(words)], TODAY.isoformat()] for n in range(count)]


def test_bad_rows_are_rejected_with_their_row_numbers(database, tmp_path, capsys):
    rows = good_rows(6)
    rows[1][1] = "maybe"  # data row 2
    rows[3][0] = " "  # data row 4
    rows[4][2] = "05/12/2026"  # data row 5
    rows.append(["c0", "no", TODAY.isoformat()])  # data row 7: c0 again, same day
    future = (TODAY + timedelta(days=30)).isoformat()
    rows.append(["c9", "yes", future])  # data row 8
    path = write_csv(tmp_path / "outcomes.csv", rows)
    assert load(database, path, "--max-invalid", "0.9") == 0
    with open(tmp_path / "outcomes.rejects.csv", newline="") as handle:
        rejects = [(int(r["row"]), r["field"]) for r in csv.DictReader(handle)]
    assert rejects == [
        (2, "churned"),
        (4, "customer_id"),
        (5, "observed_on"),
        (7, "observed_on"),
        (8, "observed_on"),
    ]
    assert set(stored(database)) == {(f"c{n}", TODAY.isoformat()) for n in (0, 2, 5)}
    summary = json.loads(capsys.readouterr().out)
    assert (summary["rows_in"], summary["loaded"], summary["rejected"]) == (8, 3, 5)


def test_a_refused_file_loads_nothing(database, tmp_path, capsys):
    rows = good_rows(50)
    rows[10][1] = "perhaps"  # 1 bad row in 50: more than the default 1%
    assert load(database, write_csv(tmp_path / "flood.csv", rows)) == 3
    assert stored(database) == {}
    assert "nothing loaded" in capsys.readouterr().err

    missing = tmp_path / "missing.csv"
    missing.write_text("customer_id,observed_on\nc1,2026-01-01\n")
    assert load(database, missing) == 2
    assert "missing column(s) churned" in capsys.readouterr().err
    assert stored(database) == {}


def test_loading_the_same_file_twice_counts_its_outcomes_once(database, tmp_path, capsys):
    path = write_csv(tmp_path / "outcomes.csv", good_rows(20))
    assert load(database, path) == 0
    first = stored(database)
    assert load(database, path) == 0
    assert stored(database) == first and len(first) == 20
    summaries = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [s["new"] for s in summaries] == [20, 0]
    assert summaries[1]["unchanged"] == 20
    corrected = good_rows(20)
    corrected[0][1] = "no"  # c0 said yes
    assert load(database, write_csv(tmp_path / "corrected.csv", corrected)) == 0
    assert stored(database)[("c0", TODAY.isoformat())] is False
    assert json.loads(capsys.readouterr().out)["corrected"] == 1


def test_parquet_outcomes_load_with_their_own_types(database, tmp_path):
    table = pa.table(
        {
            "CustomerID": ["p1", "p2", "p3"],
            "Churn": [True, False, None],
            "observed_on": [TODAY, TODAY, TODAY],
        }
    )
    pq.write_table(table, tmp_path / "outcomes.parquet")
    assert load(database, tmp_path / "outcomes.parquet", "--max-invalid", "0.5") == 0
    assert stored(database) == {("p1", TODAY.isoformat()): True, ("p2", TODAY.isoformat()): False}


def insert_predictions(url: str, rows: list[tuple[datetime, str, float]]) -> None:
    """Predictions as capture writes them, made at chosen moments in the past."""
    with (
        psycopg.connect(url) as connection,
        connection.cursor() as cursor,
        cursor.copy(
            "COPY churn_predictions (predicted_at, request_id, customer_id, model_version, "
            "probability, churn, threshold, source) FROM STDIN"
        ) as copy,
    ):
        for at, customer_id, probability in rows:
            copy.write_row(
                (at, "r", customer_id, "v1", probability, probability >= 0.5, 0.5, "predict")
            )


def test_an_outcome_joins_the_predictions_it_follows_within_the_window(database, tmp_path):
    now = datetime.now(UTC)
    insert_predictions(
        database,
        [
            (now - timedelta(days=100), "a", 0.9),  # outcome 100 days later
            (now - timedelta(days=10), "b", 0.2),  # outcome 10 days later
            (now - timedelta(days=10), "c", 0.7),  # outcome 10 days later
            (now + timedelta(days=1), "d", 0.4),  # its outcome came before it
        ],
    )
    today = TODAY.isoformat()
    rows = [["a", "yes", today], ["b", "no", today], ["c", "yes", today], ["d", "yes", today]]
    assert load(database, write_csv(tmp_path / "outcomes.csv", rows)) == 0

    def report(*options: str) -> dict:
        folder = tmp_path / "-".join(options or ("default",))
        assert outcomes(["report", "--database", database, "--output", str(folder), *options]) == 0
        return json.loads((folder / "metrics.json").read_text())

    default = report()
    assert default["versions"]["v1"]["with_outcome"] == 2  # b and c: a's came too late
    assert default["outcomes"] == {"loaded": 4, "joined": 2}
    assert default["versions"]["v1"]["auc"] == 1.0
    assert "no training metadata" in default["versions"]["v1"]["verdict"]
    wide = report("--window-days", "120")
    assert wide["versions"]["v1"]["with_outcome"] == 3
    last_day = report("--window-days", "10")  # b's and c's outcomes came on the window's last day
    assert last_day["versions"]["v1"]["with_outcome"] == 2
    assert report("--window-days", "9")["versions"]["v1"]["with_outcome"] == 0
    since = report("--since", (TODAY - timedelta(days=20)).isoformat())
    assert since["versions"]["v1"]["customers"] == 3


@pytest.mark.parametrize(
    ("customers", "promised", "verdict"),
    [
        (400, 0.3, "earns its place"),  # a coin beats a promise below a coin's
        (400, 0.9, "falls short"),  # many outcomes: the whole interval is below the promise
        (6, 0.9, "within noise"),  # a handful: the interval still reaches it
    ],
)
def test_the_verdict_weighs_the_realized_auc_and_its_interval(
    database, tmp_path, customers, promised, verdict
):
    """Probabilities that know nothing of the outcomes (an AUC near 0.5), against a model whose
    training promised ``promised``."""
    yesterday = datetime.now(UTC) - timedelta(days=1)
    draws = random.Random(7)  # noqa: S311 - test data, not a secret
    insert_predictions(database, [(yesterday, f"u{n}", draws.random()) for n in range(customers)])
    churned = [["yes", "no"][n % 2] for n in range(customers)]
    rows = [[f"u{n}", churned[n], TODAY.isoformat()] for n in range(customers)]
    assert load(database, write_csv(tmp_path / "outcomes.csv", rows)) == 0
    model = tmp_path / "model.bin"  # only its metadata is read: the version and its promise
    (tmp_path / "model.json").write_text(
        json.dumps({"artifact_sha256": "v1", "metrics": {"test_auc": promised}})
    )
    folder = tmp_path / "report"
    command = ["report", "--database", database, "--output", str(folder), "--model", str(model)]
    assert outcomes(command) == 0
    figures = json.loads((folder / "metrics.json").read_text())["versions"]["v1"]
    assert figures["promised_auc"] == promised
    assert verdict in figures["verdict"], figures["verdict"]


def test_score_py_records_its_scored_rows(database, tmp_path):
    sent = customers("batch", 30, seed=3)
    source = tmp_path / "customers.csv"
    with open(source, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(sent[0]))
        writer.writeheader()
        writer.writerows(sent)
    output = tmp_path / "scores.csv"
    command = [sys.executable, "score.py", "--input", str(source), "--output", str(output)]
    result = subprocess.run(
        [*command, "--capture-database", database],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["captured"] == 30
    with open(output, newline="") as handle:
        scores = {
            row["customer_id"]: float(row["churn_probability"]) for row in csv.DictReader(handle)
        }
    rows = captured(database)
    assert {row["customer_id"]: row["probability"] for row in rows} == scores
    assert {row["source"] for row in rows} == {"score.py"}
    assert len({row["request_id"] for row in rows}) == 1  # one run

    wrong = database.rsplit("/", 1)[0] + "/no_such_database"
    refused = subprocess.run(
        [*command, "--capture-database", wrong],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode == 2
    assert "--capture-database" in refused.stderr and "no_such_database" in refused.stderr
