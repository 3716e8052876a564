"""The feature schema: which fields a customer has, how values are spelled, what is allowed.

Training and serving both go through ``normalize_token`` so that a request in the raw Telco CSV
spelling ("Fiber optic") and one in the course's spelling ("fiber_optic") mean the same thing.
"""

from __future__ import annotations

from typing import Any

import numpy as np

TARGET = "churn"
ID_FIELD = "customerid"

# seniorcitizen is 0/1 in the data, so DictVectorizer treats it as a number, as the course does.
FLAG_FIELDS: tuple[str, ...] = ("seniorcitizen",)
NUMERIC_FIELDS: tuple[str, ...] = ("tenure", "monthlycharges", "totalcharges")
CATEGORICAL_FIELDS: tuple[str, ...] = (
    "gender",
    "partner",
    "dependents",
    "phoneservice",
    "multiplelines",
    "internetservice",
    "onlinesecurity",
    "onlinebackup",
    "deviceprotection",
    "techsupport",
    "streamingtv",
    "streamingmovies",
    "contract",
    "paperlessbilling",
    "paymentmethod",
)
FEATURE_FIELDS: tuple[str, ...] = CATEGORICAL_FIELDS + FLAG_FIELDS + NUMERIC_FIELDS

# Domain bounds a request must respect. They are wider than anything in the data (so a real
# customer is never refused) but catch nonsense such as tenure=1e20. Saved into the metadata so
# the service validates against what the model was trained with.
NUMERIC_LIMITS: dict[str, dict[str, Any]] = {
    "tenure": {"min": 0, "max": 1200, "integer": True},
    "monthlycharges": {"min": 0, "max": 100_000, "integer": False},
    "totalcharges": {"min": 0, "max": 10_000_000, "integer": False},
}


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
    for field in NUMERIC_FIELDS:
        column = features[field].to_numpy(dtype=np.float64)
        numeric[field] = {
            **NUMERIC_LIMITS[field],
            "observed_min": float(column.min()),
            "observed_max": float(column.max()),
        }
    flags = {field: [0, 1] for field in FLAG_FIELDS}
    return {"categorical": categorical, "numeric": numeric, "flags": flags}


# The course's standard customer (ML Zoomcamp, deployment chapter, predict-test.py): used as the
# client's default, the try-it page's defaults, the OpenAPI example and the benchmark request.
EXAMPLE_CUSTOMER_ID = "xyz-123"
EXAMPLE_CUSTOMER: dict[str, Any] = {
    "gender": "female",
    "seniorcitizen": 0,
    "partner": "yes",
    "dependents": "no",
    "phoneservice": "no",
    "multiplelines": "no_phone_service",
    "internetservice": "dsl",
    "onlinesecurity": "no",
    "onlinebackup": "yes",
    "deviceprotection": "no",
    "techsupport": "no",
    "streamingtv": "no",
    "streamingmovies": "no",
    "contract": "month-to-month",
    "paperlessbilling": "yes",
    "paymentmethod": "electronic_check",
    "tenure": 24,
    "monthlycharges": 29.85,
    "totalcharges": 24 * 29.85,
}
