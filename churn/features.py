"""The feature schema: which fields a customer has, how values are spelled, what is allowed.

Each field is defined once here (``FIELDS``: name, label, kind, the course's example value);
training, validation, the try-it page, the OpenAPI example and the client all read it.

Training and serving both go through ``normalize_token`` so that a request in the raw Telco CSV
spelling ("Fiber optic") and one in the course's spelling ("fiber_optic") mean the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

TARGET = "churn"
ID_FIELD = "customerid"

CATEGORICAL, FLAG, NUMERIC = "categorical", "flag", "numeric"


@dataclass(frozen=True)
class Field:
    """One customer field: its name (the course's spelling), how the page labels it, its kind,
    and its value for the course's standard customer."""

    name: str
    label: str
    kind: str  # CATEGORICAL (text from a vocabulary), FLAG (0/1) or NUMERIC
    example: Any
    # NUMERIC only: the domain bounds a request must respect. They are wider than anything in
    # the data (so a real customer is never refused) but catch nonsense such as tenure=1e20.
    # Saved into the metadata so the service validates against what the model was trained with.
    limits: dict[str, Any] | None = None


# Every customer field, once, in the order of the course's standard customer (xyz-123, ML
# Zoomcamp's deployment chapter, predict-test.py). seniorcitizen is 0/1 in the data, so
# DictVectorizer treats it as a number, as the course does.
FIELDS: tuple[Field, ...] = (
    Field("gender", "Gender", CATEGORICAL, "female"),
    Field("seniorcitizen", "Senior citizen", FLAG, 0),
    Field("partner", "Partner", CATEGORICAL, "yes"),
    Field("dependents", "Dependents", CATEGORICAL, "no"),
    Field("phoneservice", "Phone service", CATEGORICAL, "no"),
    Field("multiplelines", "Multiple lines", CATEGORICAL, "no_phone_service"),
    Field("internetservice", "Internet service", CATEGORICAL, "dsl"),
    Field("onlinesecurity", "Online security", CATEGORICAL, "no"),
    Field("onlinebackup", "Online backup", CATEGORICAL, "yes"),
    Field("deviceprotection", "Device protection", CATEGORICAL, "no"),
    Field("techsupport", "Tech support", CATEGORICAL, "no"),
    Field("streamingtv", "Streaming TV", CATEGORICAL, "no"),
    Field("streamingmovies", "Streaming movies", CATEGORICAL, "no"),
    Field("contract", "Contract", CATEGORICAL, "month-to-month"),
    Field("paperlessbilling", "Paperless billing", CATEGORICAL, "yes"),
    Field("paymentmethod", "Payment method", CATEGORICAL, "electronic_check"),
    Field("tenure", "Tenure (months)", NUMERIC, 24, {"min": 0, "max": 1200, "integer": True}),
    Field("monthlycharges", "Monthly charges", NUMERIC, 29.85, {"min": 0, "max": 100_000}),
    Field("totalcharges", "Total charges", NUMERIC, 24 * 29.85, {"min": 0, "max": 10_000_000}),
)
CATEGORICAL_FIELDS = tuple(field.name for field in FIELDS if field.kind == CATEGORICAL)
FLAG_FIELDS = tuple(field.name for field in FIELDS if field.kind == FLAG)
NUMERIC_FIELDS = tuple(field.name for field in FIELDS if field.kind == NUMERIC)
NUMBER_FIELDS = FLAG_FIELDS + NUMERIC_FIELDS  # the feature matrix's number columns, in order
# Codes first, then numbers: the order of the feature matrix (churn/columns.py ``Checked``).
FEATURE_FIELDS: tuple[str, ...] = CATEGORICAL_FIELDS + NUMBER_FIELDS
LABELS = {field.name: field.label for field in FIELDS}
# The one field whose blank text means 0: the raw CSV's TotalCharges of a customer with no bill
# yet, which training reads as 0 too (churn/data.py). Any other blank number is missing.
BLANK_MEANS_ZERO = ("totalcharges",)

# The course's standard customer: the client's default, the try-it page's defaults, the OpenAPI
# and docs page example and the benchmark request.
EXAMPLE_CUSTOMER_ID = "xyz-123"
EXAMPLE_CUSTOMER: dict[str, Any] = {field.name: field.example for field in FIELDS}


def normalize_token(text: str) -> str:
    """The course's spelling of a name or value: lower case, spaces as underscores."""
    return text.strip().lower().replace(" ", "_")


def learn_schema(features: Any) -> dict[str, Any]:
    """The vocabulary and ranges a cleaned training frame shows, for the model's metadata."""
    categorical = {
        field: sorted(str(value) for value in features[field].unique())
        for field in CATEGORICAL_FIELDS
    }
    numeric = {}
    for field in FIELDS:
        if field.kind == NUMERIC:
            column = features[field.name].to_numpy(dtype=np.float64)
            numeric[field.name] = {
                "integer": False,
                **(field.limits or {}),
                "observed_min": float(column.min()),
                "observed_max": float(column.max()),
            }
    flags = {field: [0, 1] for field in FLAG_FIELDS}
    return {"categorical": categorical, "numeric": numeric, "flags": flags}
