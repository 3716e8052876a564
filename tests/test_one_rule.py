"""One rule on every path: a customer, valid or spoiled, gets the same decision and the same
bits of probability from /predict (alone and inside an array) and from score.py on CSV,
Parquet and JSON lines. The Spark engine is checked on a smaller draw in tests/test_spark.py.

Customers are drawn valid (random spellings of the raw CSV and of the course), then spoiled
with the kinds of values the API refuses: blanks, wrong types, out-of-range and unknown values,
NaN and infinity (typed files only), integers past 2^53, booleans.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from churn.batch.cli import main as score_main
from tests.conftest import COMMITTED_MODEL, make_app

APP = make_app()
CLIENT = APP.test_client()
SCHEMA = APP.extensions["churn.predictor"].metadata["schema"]
NOT_IN_JSON = "not in JSON"  # a value JSON cannot carry (NaN, infinity)
NOT_IN_CSV = "not in CSV"  # a value CSV cannot carry (null)


def spellings(value: str) -> st.SearchStrategy[str]:
    """The course's spelling, or the raw CSV's ("fiber_optic" / "Fiber optic"), in any case."""
    raw = value.replace("_", " ")
    return st.sampled_from([value, raw, raw.title(), value.upper(), f" {raw} "])


def number_text(value: float) -> st.SearchStrategy[Any]:
    return st.sampled_from([value, repr(value), f" {value!r} "])


@st.composite
def valid_customers(draw: st.DrawFn) -> dict[str, Any]:
    customer: dict[str, Any] = {"customerID": draw(st.text("abc-123", min_size=1, max_size=8))}
    for field, values in SCHEMA["categorical"].items():
        customer[draw(spellings(field))] = draw(st.sampled_from(values).flatmap(spellings))
    customer["seniorcitizen"] = draw(st.sampled_from([0, 1, 1.0, "1", "0.0", "Yes", "no", True]))
    tenure = draw(st.integers(0, 72))
    customer["tenure"] = draw(st.sampled_from([tenure, float(tenure), str(tenure), f"{tenure}.0"]))
    for field in ("monthlycharges", "totalcharges"):
        customer[field] = draw(st.floats(0, 9000, allow_nan=False).flatmap(number_text))
    return customer


SPOILERS: list[Any] = [
    "", " ", "abc", "1,5", [1], {"a": 1}, True, False, -1, 1e9, 2**53 + 1, 2**62, 0.5,
    "unknown value", None, float("nan"), float("inf"), -float("inf"), "nan", "1e400",
]  # fmt: skip


@st.composite
def customers(draw: st.DrawFn) -> dict[str, Any]:
    """A valid customer, or one with one feature spoiled (CSV cannot tell an id's JSON type)."""
    customer = draw(valid_customers())
    if draw(st.booleans()):
        key = draw(st.sampled_from(sorted(set(customer) - {"customerID"})))
        customer[key] = draw(st.sampled_from(SPOILERS))
    return customer


def decision(scored: list[dict], rejects: list[dict]) -> Any:
    """("scored", probability) or ("refused", the fields named)."""
    if scored:
        return ("scored", scored[0]["churn_probability"])
    return ("refused", tuple(sorted({problem["field"] for problem in rejects})))


def predict_alone(customer: dict) -> Any:
    response = CLIENT.post("/predict", data=orjson.dumps(customer), content_type="application/json")
    body = response.get_json()
    if response.status_code == 200:
        return decision([body], [])
    assert response.status_code == 422, body
    return decision([], body["problems"])


def predict_among_others(customer: dict, others: list[dict]) -> Any:
    batch = [*others, customer, *others]
    response = CLIENT.post("/predict", data=orjson.dumps(batch), content_type="application/json")
    body = response.get_json()
    if response.status_code == 200:
        return decision([body[len(others)]], [])
    assert response.status_code == 422, body
    assert {p["index"] for p in body["problems"]} == {len(others)}
    return decision([], body["problems"])


def text_of(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | dict):
        return orjson.dumps(value).decode()
    return value if isinstance(value, str) else repr(value)


def arrow_column(value: Any) -> pa.Array:
    """One value as the column a typed file would hold it in."""
    if isinstance(value, list | dict):
        return pa.array([orjson.dumps(value).decode()])
    return pa.array([value])


def score_file(tmp: Path, name: str, write: Any) -> Any:
    source, output = tmp / name, tmp / f"{name}.scores.jsonl"
    write(source)
    rejects = tmp / f"{name}.rejects.jsonl"
    code = score_main(["--input", str(source), "--output", str(output), "--rejects", str(rejects),
                       "--model", str(COMMITTED_MODEL), "--max-invalid", "1"])  # fmt: skip
    assert code == 0
    read = [orjson.loads(line) for line in output.read_bytes().splitlines()]
    return decision(read, [orjson.loads(line) for line in rejects.read_bytes().splitlines()])


def every_path(customer: dict, others: list[dict], tmp: Path) -> dict[str, Any]:
    values = customer.values()
    in_json = all(not (isinstance(v, float) and not math.isfinite(v)) for v in values)
    in_csv = None not in values
    found: dict[str, Any] = {}
    if in_json:
        found["/predict alone"] = predict_alone(customer)
        found["/predict in an array"] = predict_among_others(customer, others)
        found["score.py JSON lines"] = score_file(
            tmp, "c.jsonl", lambda path: path.write_bytes(orjson.dumps(customer) + b"\n")
        )
    if in_csv:
        table = pa.table({key: [text_of(value)] for key, value in customer.items()})
        found["score.py CSV"] = score_file(tmp, "c.csv", lambda path: pa_csv.write_csv(table, path))
    typed = pa.table({key: arrow_column(value) for key, value in customer.items()})
    found["score.py Parquet"] = score_file(
        tmp, "c.parquet", lambda path: pq.write_table(typed, path)
    )
    return found


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(customer=customers(), others=st.lists(valid_customers(), max_size=3))
def test_every_path_gives_the_same_decision_and_bits(customer, others, tmp_path_factory):
    found = every_path(customer, others, tmp_path_factory.mktemp("paths"))
    assert len(set(found.values())) == 1, found


@pytest.mark.parametrize(
    ("field", "value"),
    [("monthlycharges", ""), ("monthlycharges", " "), ("tenure", ""), ("tenure", 2**53 + 1),
     ("tenure", 2**62), ("totalcharges", 2**62)],
)  # fmt: skip
def test_blank_or_huge_numbers_are_refused_naming_the_field(field, value, customer, tmp_path):
    response = CLIENT.post("/predict", json={**customer, field: value})
    assert response.status_code == 422
    assert [p["field"] for p in response.get_json()["problems"]] == [field]
    # In a file the row is rejected, the others scored, and the run exits 0 under --max-invalid.
    valid = {**customer, field: 24} if isinstance(value, int) else customer  # one column type
    rows = [valid, {**customer, field: value}, valid]
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows))
    parquet = tmp_path / "in.parquet"
    column_of = {f: [row[f] for row in rows] for f in customer}  # typed as Parquet types them
    if isinstance(value, int):  # typed: an int64 column holding the huge integer
        pq.write_table(pa.table(column_of), parquet)
        sources = [source, parquet]
    else:
        sources = [source]
    for path in sources:
        scores, rejects = tmp_path / f"{path.name}.s.csv", tmp_path / f"{path.name}.r.csv"
        code = score_main(["--input", str(path), "--output", str(scores), "--rejects", str(rejects),
                           "--model", str(COMMITTED_MODEL), "--max-invalid", "0.5"])  # fmt: skip
        assert code == 0
        rejected = pa_csv.read_csv(rejects).to_pylist()
        assert [(r["row"], r["field"]) for r in rejected] == [(2, field)]
        assert pa_csv.read_csv(scores).num_rows == 2


@pytest.mark.parametrize(
    ("field", "value", "beside"),
    [("tenure", 24.5, 24), ("tenure", "24.5", "24"), ("seniorcitizen", 0.5, 0),
     ("seniorcitizen", 2, 1), ("tenure", True, 1), ("monthlycharges", False, 0)],
)  # fmt: skip
def test_a_refused_value_is_refused_on_every_path_beside_its_look_alike(
    field, value, beside, customer, tmp_path
):
    """A fraction where a whole number is required, a flag past 1, or true/false where a number
    is, stays refused in a batch whose other rows hold a valid value like it (24.5 beside whole
    numbers, True beside 1, which Python finds equal): the array checks and the remembered
    answers must not let it through."""
    look_alike = {**customer, field: beside}
    found = every_path({**customer, field: value}, [look_alike], tmp_path)
    assert set(found.values()) == {("refused", (field,))}, found


def test_a_blank_total_charge_is_zero_and_a_number_may_be_written_as_text(customer):
    blank = CLIENT.post("/predict", json={**customer, "totalcharges": " "}).get_json()
    zero = CLIENT.post("/predict", json={**customer, "totalcharges": 0}).get_json()
    assert blank == zero
    as_text = {**customer, "tenure": "24.0", "seniorcitizen": "1.0", "monthlycharges": "29.85"}
    as_numbers = {**customer, "tenure": 24, "seniorcitizen": 1, "monthlycharges": 29.85}
    assert (
        CLIENT.post("/predict", json=as_text).get_json()
        == CLIENT.post("/predict", json=as_numbers).get_json()
    )
