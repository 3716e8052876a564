"""The Arrow batch function both engines run (churn/batch/columns.py), on generated customers."""

from __future__ import annotations

import pickle

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import strategies as st

from churn.artifact import ModelFileError
from churn.batch.columns import BatchModel, InputFileError, score_record_batch
from churn.features import normalize_token
from tests.conftest import COMMITTED_MODEL
from tests.modelcheck import sklearn_probabilities
from tests.synthetic import raw_frame

MODEL = BatchModel.load(COMMITTED_MODEL)


def as_batch(frame, **types) -> pa.RecordBatch:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    for name, kind in types.items():
        table = table.set_column(table.schema.get_field_index(name), name, table[name].cast(kind))
    return table.combine_chunks().to_batches()[0]


def test_raw_export_rows_score_as_sklearn_does_in_input_order():
    frame = raw_frame(500, seed=3)
    scored, rejects = score_record_batch(as_batch(frame), MODEL, first_row=1)
    assert rejects.num_rows == 0
    assert scored.column("customerID").to_pylist() == frame["customerID"].tolist()
    probabilities = scored.column("churn_probability").to_numpy()
    np.testing.assert_allclose(probabilities, sklearn_probabilities(frame), rtol=0, atol=1e-12)
    assert scored.column("churn").to_pylist() == (probabilities >= 0.5).tolist()


def test_the_course_form_with_typed_numbers_scores_the_same_as_the_raw_form():
    raw = raw_frame(300, seed=4)
    course = raw.rename(columns=normalize_token)
    for column in course.columns:
        if column not in {"customerid", "tenure", "monthlycharges", "totalcharges"}:
            course[column] = course[column].map(normalize_token)
    course["totalcharges"] = course["totalcharges"].str.strip().replace("", "0").astype(float)
    course = course.drop(columns="churn").assign(
        tenure=course["tenure"].astype("int64"), seniorcitizen=course["seniorcitizen"].astype(int)
    )
    from_raw, _ = score_record_batch(as_batch(raw), MODEL, 1)
    from_course, rejects = score_record_batch(as_batch(course), MODEL, 1)
    assert rejects.num_rows == 0 and from_course.schema.names[0] == "customerid"
    assert from_course.column(1).to_pylist() == from_raw.column(1).to_pylist()


def test_batches_agree_with_predict_on_the_same_customers(client):
    frame = raw_frame(200, seed=5)
    scored, _ = score_record_batch(as_batch(frame), MODEL, 1)
    answers = client.post("/predict", json=frame.to_dict(orient="records")).get_json()
    assert [a["customer_id"] for a in answers] == scored.column("customerID").to_pylist()
    assert [a["churn_probability"] for a in answers] == scored.column(1).to_pylist()


def test_bad_rows_are_rejected_with_the_apis_problems_and_counts_add_up(client):
    frame = raw_frame(50, seed=6)
    frame.loc[3, "tenure"] = "-2"
    frame.loc[7, ["Contract", "TotalCharges"]] = ["weekly", "lots"]
    frame.loc[9, "customerID"] = "x" * 65
    frame.loc[11, "SeniorCitizen"] = " YES "  # another spelling: accepted
    scored, rejects = score_record_batch(as_batch(frame), MODEL, first_row=101)
    bad = [3, 7, 9]
    assert scored.num_rows + len(bad) == len(frame)
    assert set(rejects.column("row").to_pylist()) == {101 + i for i in bad}
    for i in bad:
        answer = client.post("/predict", json=frame.iloc[i].to_dict()).get_json()
        expected = [(p["field"], p["message"]) for p in answer["problems"]]
        lines = [r for r in rejects.to_pylist() if r["row"] == 101 + i]
        assert [(r["field"], r["message"]) for r in lines] == expected
        assert {r["customerID"] for r in lines} == {frame.loc[i, "customerID"]}


def test_output_types_are_declared_whatever_the_input_types():
    frame = raw_frame(40, seed=7).drop(columns="Churn").assign(favourite_colour="blue")
    frame.loc[0, "tenure"] = "nope"
    batch = as_batch(frame, customerID=pa.large_string(), Contract=pa.large_string())
    scored, rejects = score_record_batch(batch, MODEL, 1)
    assert scored.schema.field("customerID").type == pa.string()
    assert [f.type for f in rejects.schema] == [pa.int64(), pa.string(), pa.string(), pa.string()]
    assert rejects.to_pylist()[0]["message"] == "must be a number"


def test_without_an_id_column_rows_are_keyed_by_row_number():
    frame = raw_frame(5, seed=8).drop(columns="customerID")
    scored, _ = score_record_batch(as_batch(frame), MODEL, first_row=11)
    assert scored.column("row").to_pylist() == [11, 12, 13, 14, 15]


def test_a_missing_column_is_a_bad_file_not_a_bad_row():
    with pytest.raises(InputFileError, match="tenure"):
        score_record_batch(as_batch(raw_frame(5).drop(columns="tenure")), MODEL, 1)


def test_the_model_travels_by_pickle_and_refuses_damaged_bytes():
    data = pickle.dumps(MODEL)
    assert pickle.loads(data).predictor.version == MODEL.version
    spot = data.index(MODEL.artifact_bytes[200:220])
    damaged = data[:spot] + bytes([data[spot] ^ 1]) + data[spot + 1 :]
    with pytest.raises(ModelFileError, match="SHA-256"):
        pickle.loads(damaged)


NUMBER_TEXT = st.sampled_from(
    ["0", "24", "72", "29.85", " 12 ", "", " ", "1e3", "-0", "+5", "-1", "1201", "2.5", "nan",
     "inf", "1_000", "１２", "0x10", "abc", "9" * 30]
)  # fmt: skip
FLAG_TEXT = st.sampled_from(["0", "1", "yes", " No ", "TRUE", "2", "", "1.0", "-0"])


def text_of(values: list[str]) -> st.SearchStrategy[str]:
    spelled = st.sampled_from(values).flatmap(
        lambda v: st.sampled_from([v, v.upper(), v.replace("_", " ").title(), f" {v}"])
    )
    return spelled | st.sampled_from(["", "maybe", "x" * 101]) | st.text(max_size=3)
