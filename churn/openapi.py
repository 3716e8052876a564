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
KEYED: list[dict[str, list]] = [{}, {"bearer": []}, {"apiKey": []}]  # open without API_KEY
STRING, NUMBER = {"type": "string"}, {"type": "number"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}


def _content(schema: dict[str, Any], media: str = "application/json") -> dict[str, Any]:
    return {"content": {media: {"schema": schema}}}


def _json(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"description": description, **_content(schema or {"type": "object"})}


def _object(required: list[str], **properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties}


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
EXPLANATION = {
    "type": "object",
    "description": "with ?explain=true: intercept + sum of contributions = log-odds",
    "properties": {"intercept": NUMBER, "contributions": {"type": "array", "items": CONTRIBUTION}},
}
RESULT = _object(
    ["churn_probability", "churn"],
    churn_probability={"type": "number", "minimum": 0, "maximum": 1},
    churn={"type": "boolean", "description": "churn_probability >= the model's threshold"},
    customer_id=STRING,
    explanation=EXPLANATION,
)
ERRORS = {
    code: _json(description, _ref("Error"))
    for code, description in {
        "400": "malformed JSON or query parameter",
        "401": "API key required (only when the service has API_KEY set)",
        "413": "body larger than MAX_BODY_BYTES",
        "415": "Content-Type is not application/json",
        "422": "invalid customers: every problem is listed",
    }.items()
}
SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer"},
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
}
CUSTOMER_DESCRIPTION = (
    "One customer. Keys and text values may also be written as in the Telco CSV "
    '("SeniorCitizen", "Fiber optic"); numbers may be text holding a number ("24.0").'
)


def _get(summary: str, ok: dict[str, Any], more: dict[str, Any] | None = None) -> dict[str, Any]:
    """A GET behind the optional API key: ``ok`` is its 200, ``more`` its other answers."""
    responses = {"200": ok, "401": ERRORS["401"], **(more or {})}
    return {"get": {"summary": summary, "responses": responses, "security": KEYED}}


def _predict(max_batch: int) -> dict[str, Any]:
    """POST /predict: one customer or a batch of at most ``max_batch``."""
    batch = {"type": "array", "items": _ref("Customer"), "minItems": 1, "maxItems": max_batch}
    results = {"type": "array", "items": _ref("PredictionResult")}
    explain = {"name": "explain", "in": "query", "required": False, "schema": {"type": "boolean"}}
    answer = _json(
        "one result, or a list in request order", {"oneOf": [_ref("PredictionResult"), results]}
    )
    return {
        "summary": "Churn probability for one customer or a batch",
        "parameters": [explain],
        "requestBody": {"required": True, **_content({"oneOf": [_ref("Customer"), batch]})},
        "responses": {"200": answer, **ERRORS},
        "security": KEYED,
    }


def build_spec(schema: Mapping[str, Any], version: str, max_batch: int) -> dict[str, Any]:
    """The spec for a model whose metadata has this ``schema`` section."""
    customer = customer_model(schema).model_json_schema(ref_template=REF)
    customer["description"] = CUSTOMER_DESCRIPTION
    customer["example"] = {**EXAMPLE_CUSTOMER, "customer_id": EXAMPLE_CUSTOMER_ID}
    metrics = {"description": "Prometheus text format", **_content(STRING, "text/plain")}
    health = _json("healthy")  # open: load balancers send no key
    paths = {
        "/predict": {"post": _predict(max_batch)},
        "/health": {
            "get": {"summary": "Liveness for load balancers", "responses": {"200": health}}
        },
        "/metrics": _get("Prometheus metrics, summed over all workers", metrics),
        "/model": _get(
            "The live model and any shadow: version, metrics, threshold", _json("model metadata")
        ),
        "/drift": _get(
            "PSI per feature against the training data, since start-up",
            _json("psi, rows, outside_share per feature"),
            {"404": _json("the model has no drift reference", _ref("Error"))},
        ),
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "churn-serving",
            "version": version[:12],
            "description": "Customer churn probability from a logistic regression model.",
        },
        "paths": paths,
        "components": {
            "schemas": {
                "Customer": customer,
                "PredictionResult": RESULT,
                "Error": ERROR,
                "Problem": PROBLEM,
            },
            "securitySchemes": SECURITY_SCHEMES,
        },
    }
