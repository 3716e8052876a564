"""POST /predict through Flask's test client: results, batches, settings and validation."""

from __future__ import annotations

import math

import pytest

from churn.features import FEATURE_FIELDS
from tests.conftest import assert_json_error, make_app, sklearn_probability

# --- predictions ---------------------------------------------------------------------------


def test_the_course_customer_gets_the_course_response(client, customer):
    response = client.post("/predict", json=customer)
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"churn_probability", "churn"}
    assert body["churn_probability"] == pytest.approx(sklearn_probability(customer), abs=1e-12)
    assert body["churn"] == (body["churn_probability"] >= 0.5)


def test_raw_csv_form_gives_the_same_probability(client, customer, raw_customer):
    normalized = client.post("/predict", json=customer).get_json()
    raw = client.post("/predict", json=raw_customer).get_json()
    assert raw["churn_probability"] == pytest.approx(normalized["churn_probability"], abs=1e-12)
    assert raw["customer_id"] == "7590-VHVEG"


def test_mixed_case_and_numeric_strings_are_accepted(client, customer):
    shouted = {
        key.upper(): (v.upper() if isinstance(v, str) else str(v)) for key, v in customer.items()
    }
    body = client.post("/predict", json=shouted).get_json()
    assert body["churn_probability"] == pytest.approx(sklearn_probability(customer), abs=1e-12)


def test_blank_totalcharges_means_zero(client, customer):
    blank = client.post("/predict", json={**customer, "totalcharges": " "}).get_json()
    zero = sklearn_probability({**customer, "totalcharges": 0.0})
    assert blank["churn_probability"] == pytest.approx(zero, abs=1e-12)


def test_seniorcitizen_accepts_yes_no(client, customer):
    yes = client.post("/predict", json={**customer, "seniorcitizen": "Yes"}).get_json()
    assert yes["churn_probability"] == pytest.approx(
        sklearn_probability({**customer, "seniorcitizen": 1}), abs=1e-12
    )


def test_unknown_extra_fields_are_ignored(client, customer):
    body = client.post("/predict", json={**customer, "favourite_colour": "blue"}).get_json()
    assert body["churn_probability"] == pytest.approx(sklearn_probability(customer), abs=1e-12)


@pytest.mark.parametrize("key", ["customerID", "customer_id"])
def test_customer_id_is_echoed(client, customer, key):
    body = client.post("/predict", json={**customer, key: "abc-1"}).get_json()
    assert body["customer_id"] == "abc-1"


def test_a_batch_answers_in_order(client, customer):
    batch = [{**customer, "tenure": tenure, "customer_id": str(tenure)} for tenure in (1, 30, 70)]
    body = client.post("/predict", json=batch).get_json()
    assert [item["customer_id"] for item in body] == ["1", "30", "70"]
    for item, member in zip(body, batch, strict=True):
        assert item["churn_probability"] == pytest.approx(sklearn_probability(member), abs=1e-12)


def test_a_batch_with_bad_members_lists_every_problem_with_its_index(client, customer):
    batch = [customer, {**customer, "tenure": -1}, "not a customer", {**customer, "contract": "x"}]
    body = assert_json_error(client.post("/predict", json=batch), 422, "validation_error")
    found = {(p["index"], p["field"]) for p in body["problems"]}
    assert found == {(1, "tenure"), (2, "(customer)"), (3, "contract")}


def test_batch_size_limit(customer):
    client = make_app(max_batch_size=3).test_client()
    assert client.post("/predict", json=[customer] * 3).status_code == 200
    body = assert_json_error(client.post("/predict", json=[customer] * 4), 422)
    assert "3" in body["message"]
    assert_json_error(client.post("/predict", json=[]), 422)


def test_threshold_setting_overrides_the_metadata(customer):
    probability = sklearn_probability(customer)
    low = make_app(threshold=probability - 0.01).test_client()
    high = make_app(threshold=probability + 0.01).test_client()
    assert low.post("/predict", json=customer).get_json()["churn"] is True
    assert high.post("/predict", json=customer).get_json()["churn"] is False


def test_explanation_adds_up_to_the_logit(client, customer):
    body = client.post("/predict?explain=true", json=customer).get_json()
    explanation = body["explanation"]
    total = explanation["intercept"] + math.fsum(
        part["contribution"] for part in explanation["contributions"]
    )
    probability = body["churn_probability"]
    assert total == pytest.approx(math.log(probability / (1 - probability)), abs=1e-9)
    sizes = [abs(part["contribution"]) for part in explanation["contributions"]]
    assert sizes == sorted(sizes, reverse=True)
    assert {"tenure", "contract=month-to-month"} <= {
        p["feature"] for p in explanation["contributions"]
    }


def test_explain_flag_must_be_boolean(client, customer):
    assert_json_error(
        client.post("/predict?explain=maybe", json=customer), 400, "invalid_parameter"
    )


# --- validation ----------------------------------------------------------------------------


def test_an_empty_object_lists_every_required_field(client):
    body = assert_json_error(client.post("/predict", json={}), 422, "validation_error")
    assert {p["field"] for p in body["problems"]} == set(FEATURE_FIELDS)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("tenure", 1e20),
        ("tenure", -1),
        ("tenure", 2.5),
        ("tenure", True),
        ("tenure", "soon"),
        ("monthlycharges", "NaN"),
        ("monthlycharges", "Infinity"),
        ("totalcharges", -5),
        ("totalcharges", [1]),
        ("seniorcitizen", 2),
        ("seniorcitizen", "maybe"),
        ("contract", "weekly"),
        ("contract", 3),
        ("contract", None),
        ("gender", "x" * 1000),
        ("customer_id", "y" * 1000),
        ("customer_id", False),
        ("customer_id", 1.5),
    ],
)
def test_a_bad_value_gets_422_naming_the_field(client, customer, field, value):
    body = assert_json_error(client.post("/predict", json={**customer, field: value}), 422)
    assert [p["field"] for p in body["problems"]] == [field]


def test_every_problem_is_reported_not_just_the_first(client, customer):
    bad = {**customer, "tenure": -1, "gender": "robot", "monthlycharges": "lots"}
    del bad["contract"]
    body = assert_json_error(client.post("/predict", json=bad), 422)
    assert {p["field"] for p in body["problems"]} == {
        "tenure",
        "gender",
        "monthlycharges",
        "contract",
    }


def test_categorical_error_names_the_allowed_values(client, customer):
    body = assert_json_error(client.post("/predict", json={**customer, "contract": "weekly"}), 422)
    assert "month-to-month" in body["problems"][0]["message"]


@pytest.mark.parametrize("payload", ["5", '"text"', "null", "true", "[[1]]"])
def test_json_that_is_not_a_customer_gets_422(client, payload):
    response = client.post("/predict", data=payload, content_type="application/json")
    assert_json_error(response, 422, "validation_error")


def test_a_falsy_customer_id_is_still_echoed(client, customer):
    body = client.post("/predict", json={**customer, "customerID": 0}).get_json()
    assert body["customer_id"] == "0"
    both = client.post("/predict", json={**customer, "customerID": "a", "customer_id": "b"})
    assert both.get_json()["customer_id"] == "a"
