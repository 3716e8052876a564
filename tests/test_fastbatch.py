"""/predict batches on the column fast path (churn/fastbatch.py, churn/checked.py) against the
pydantic validator: answers, the columns drift counting and the shadow model see, numbers written
as text, and the key layouts a batch can have. tests/test_fastpath.py checks generated batches.
"""

from __future__ import annotations

import copy
import json
import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from churn.features import FEATURE_FIELDS, NUMERIC_FIELDS
from churn.schema import RequestValidationError
from tests.conftest import make_app
from tests.synthetic import raw_frame

PREDICTOR = make_app().extensions["churn.predictor"]
# The raw export's rows: its spelling, numbers as text, blank TotalCharges for new customers.
RAW_ROWS = raw_frame(120, seed=3).drop(columns="Churn").to_dict("records")
RAW_ROWS[3].update(tenure="0", TotalCharges=" ")  # a new customer, as the export writes one
COURSE_ROWS = PREDICTOR.validator.many(RAW_ROWS)  # the same customers in the course's form
CHECKS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def fast(batch: list) -> tuple[list | None, Any]:
    """The fast path's answer and the columns it hands to drift counting and the shadow."""
    seen: dict[str, Any] = {}
    answer = PREDICTOR.fast_batch.answer(
        copy.deepcopy(batch), lambda columns, results: seen.update(columns=columns)
    )
    return answer, seen.get("columns")


def validator_answer(batch: list) -> list | None:
    try:
        return PREDICTOR.predict(PREDICTOR.validator.many(batch))
    except RequestValidationError:
        return None


def test_raw_rows_and_their_course_form_take_the_fast_path_with_the_validators_answers():
    for batch in (RAW_ROWS, COURSE_ROWS):
        answer, _ = fast(batch)
        assert answer is not None
        assert json.dumps(answer) == json.dumps(validator_answer(batch))


def test_the_checked_columns_hold_exactly_the_customers_the_validator_gives():
    _, columns = fast(RAW_ROWS)
    for field in FEATURE_FIELDS:
        expected = [customer[field] for customer in COURSE_ROWS]
        if field in NUMERIC_FIELDS:
            assert columns[field].tolist() == expected
            continue
        assert [(type(v), v) for v in columns[field]] == [(type(v), v) for v in expected]
    assert set(columns) == set(FEATURE_FIELDS)


number_texts = (
    st.from_regex(r"\s*[+-]?(\d{1,4}(\.\d{0,3})?|\.\d{1,3})([eE][+-]?\d{1,3})?\s*", fullmatch=True)
    | st.sampled_from(["1_000", "２４", "\u2003 24\u3000", "\x1c24", "nan", "-inf", "-0", "1e999"])
    | st.sampled_from(["", " ", "24" + " " * 99, "24" + " " * 98, "24.0", "24.5", "1e3"])
    | st.text(alphabet="0123456789._ eE+-\u00a0\u2003\u0663", max_size=8)
)


@CHECKS
@given(
    field=st.sampled_from(NUMERIC_FIELDS),
    texts=st.lists(number_texts, min_size=1, max_size=3),
    course_form=st.booleans(),
)
def test_numbers_written_as_text_are_read_as_the_validator_reads_them(field, texts, course_form):
    batch = copy.deepcopy(COURSE_ROWS[:20] if course_form else RAW_ROWS[:20])
    key = field if course_form else next(k for k in batch[0] if k.lower() == field)
    for customer, text in zip(batch, texts * 20, strict=False):
        customer[key] = text
    answer, _ = fast(batch)
    expected = validator_answer(batch)
    if expected is None:
        assert answer is None
    elif answer is not None:
        assert json.dumps(answer) == json.dumps(expected)
    plain = all(text.isascii() and text.replace(".", "", 1).isdigit() for text in texts)
    if plain and expected is not None:
        assert answer is not None  # plain decimals never need the validator


def test_customers_with_their_keys_in_different_orders_take_the_fast_path():
    shuffler = random.Random(5)  # noqa: S311 - a test layout, not a secret
    batch = [dict(shuffler.sample(list(row.items()), len(row))) for row in RAW_ROWS[:40]]
    answer, _ = fast(batch)
    assert answer is not None
    assert json.dumps(answer) == json.dumps(validator_answer(batch))


def test_two_spellings_of_one_field_are_decided_customer_by_customer_as_the_validator_does():
    in_one_customer = [{**row, "contract": "two_year"} for row in RAW_ROWS[:20]]  # later: wins
    across_customers = copy.deepcopy(RAW_ROWS[:20])
    for customer in across_customers[::2]:
        customer["contract"] = customer.pop("Contract").lower().replace(" ", "_")
    across_customers[1]["contract"] = "two_year"  # beside Contract, and later
    for batch in (in_one_customer, across_customers):
        answer, _ = fast(batch)
        assert answer is not None
        assert json.dumps(answer) == json.dumps(validator_answer(batch))
    assert validator_answer(in_one_customer) != validator_answer(RAW_ROWS[:20])


def test_a_customer_missing_a_field_gets_the_validators_422_naming_it_and_its_row():
    client = make_app().test_client()
    batch = copy.deepcopy(RAW_ROWS[:20])
    del batch[7]["tenure"]
    assert fast(batch)[0] is None
    body = client.post("/predict", json=batch).get_json()
    assert [(p["index"], p["field"]) for p in body["problems"]] == [(7, "tenure")]
