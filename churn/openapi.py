"""The OpenAPI 3 description of the service, generated from the live validation model.

The ``Customer`` schema is pydantic's own JSON schema of the model that validates requests, so
the documentation cannot drift from what the service accepts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from churn.features import EXAMPLE_CUSTOMER, EXAMPLE_CUSTOMER_ID
from churn.schema import customer_model

REF = "#/components/schemas/{model}"
# Open when the service has no API_KEY, else either scheme.
KEYED: list[dict[str, list]] = [{}, {"bearer": []}, {"apiKey": []}]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}


def _json(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    schema = schema or {"type": "object"}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _object(required: list[str], **properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties}


STRING, NUMBER = {"type": "string"}, {"type": "number"}
PROBLEM = _object(
    ["field", "message"],
    index={"type": "integer", "description": "position in a batch"},
    field=STRING,
    message=STRING,
)
ERROR = _object(
    ["error", "message"],
    error=STRING,
    message=STRING,
    problems={"type": "array", "items": _ref("Problem")},
)
CONTRIBUTION = {
    "type": "object",
    "properties": {"feature": STRING, "value": NUMBER, "contribution": NUMBER},
}
RESULT = _object(
    ["churn_probability", "churn"],
    churn_probability={"type": "number", "minimum": 0, "maximum": 1},
    churn={"type": "boolean", "description": "churn_probability >= the model's threshold"},
    customer_id=STRING,
    explanation={
        "type": "object",
        "description": "with ?explain=true: intercept + sum of contributions = log-odds",
        "properties": {
            "intercept": NUMBER,
            "contributions": {"type": "array", "items": CONTRIBUTION},
        },
    },
)
ERRORS = {
    "400": _json("malformed JSON or query parameter", _ref("Error")),
    "401": _json("API key required (only when the service has API_KEY set)", _ref("Error")),
    "413": _json("body larger than MAX_BODY_BYTES", _ref("Error")),
    "415": _json("Content-Type is not application/json", _ref("Error")),
    "422": _json("invalid customers: every problem is listed", _ref("Error")),
}


def _get(summary: str, ok: dict[str, Any], more: dict[str, Any] | None = None) -> dict[str, Any]:
    """A GET behind the optional API key: ``ok`` is its 200, ``more`` its other answers."""
    responses = {"200": ok, "401": ERRORS["401"], **(more or {})}
    return {"get": {"summary": summary, "responses": responses, "security": KEYED}}


def build_spec(schema: Mapping[str, Any], version: str, max_batch: int) -> dict[str, Any]:
    """The spec for a model whose metadata has this ``schema`` section."""
    customer = customer_model(schema).model_json_schema(ref_template=REF)
    customer["description"] = (
        "One customer. Keys and text values may also be written as in the Telco CSV "
        '("SeniorCitizen", "Fiber optic"); numbers may be text holding a number ("24.0").'
    )
    customer["example"] = {**EXAMPLE_CUSTOMER, "customer_id": EXAMPLE_CUSTOMER_ID}
    batch = {"type": "array", "items": _ref("Customer"), "minItems": 1, "maxItems": max_batch}
    results = {"type": "array", "items": _ref("PredictionResult")}
    predict = {
        "summary": "Churn probability for one customer or a batch",
        "parameters": [
            {"name": "explain", "in": "query", "required": False, "schema": {"type": "boolean"}}
        ],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"oneOf": [_ref("Customer"), batch]}}},
        },
        "responses": {
            "200": _json(
                "one result, or a list in request order",
                {"oneOf": [_ref("PredictionResult"), results]},
            ),
            **ERRORS,
        },
        "security": KEYED,
    }
    metrics_text = {
        "description": "Prometheus text format",
        "content": {"text/plain": {"schema": STRING}},
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "churn-serving",
            "version": version[:12],
            "description": "Customer churn probability from a logistic regression model.",
        },
        "paths": {
            "/predict": {"post": predict},
            "/health": {
                "get": {
                    "summary": "Liveness for load balancers",
                    "responses": {"200": _json("healthy")},
                }
            },
            "/metrics": _get("Prometheus metrics, summed over all workers", metrics_text),
            "/model": _get(
                "The live model and any shadow: version, metrics, threshold",
                _json("model metadata"),
            ),
            "/drift": _get(
                "PSI per feature against the training data, since start-up",
                _json("psi, rows, outside_share per feature"),
                {"404": _json("the model has no drift reference", _ref("Error"))},
            ),
        },
        "components": {
            "schemas": {
                "Customer": customer,
                "PredictionResult": RESULT,
                "Error": ERROR,
                "Problem": PROBLEM,
            },
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
    }
