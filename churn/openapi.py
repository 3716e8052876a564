"""The OpenAPI 3 description of the service, generated from the live validation model.

The ``Customer`` schema is pydantic's own JSON schema of the model that validates requests, so
the documentation cannot drift from what the service accepts; its example is the course's
standard customer (churn/features.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from churn.features import EXAMPLE_CUSTOMER, EXAMPLE_CUSTOMER_ID
from churn.schema import customer_model

REF = "#/components/schemas/{model}"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


PROBLEM = {
    "type": "object",
    "required": ["field", "message"],
    "properties": {
        "index": {"type": "integer", "description": "position in a batch"},
        "field": {"type": "string"},
        "message": {"type": "string"},
    },
}
ERROR = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {
        "error": {"type": "string"},
        "message": {"type": "string"},
        "problems": {"type": "array", "items": _ref("Problem")},
    },
}
RESULT = {
    "type": "object",
    "required": ["churn_probability", "churn"],
    "properties": {
        "churn_probability": {"type": "number", "minimum": 0, "maximum": 1},
        "churn": {"type": "boolean", "description": "churn_probability >= the model's threshold"},
        "customer_id": {"type": "string"},
        "explanation": {
            "type": "object",
            "description": "with ?explain=true: intercept + sum of contributions = log-odds",
            "properties": {
                "intercept": {"type": "number"},
                "contributions": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "feature": {"type": "string"},
                            "value": {"type": "number"},
                            "contribution": {"type": "number"},
                        },
                    },
                },
            },
        },
    },
}
ERROR_RESPONSES = {
    "400": _json(_ref("Error"), "malformed JSON or query parameter"),
    "401": _json(_ref("Error"), "API key required (only when the service has API_KEY set)"),
    "413": _json(_ref("Error"), "body larger than MAX_BODY_BYTES"),
    "415": _json(_ref("Error"), "Content-Type is not application/json"),
    "422": _json(_ref("Error"), "invalid customers: every problem is listed"),
}


def build_spec(schema: Mapping[str, Any], version: str, max_batch: int) -> dict[str, Any]:
    """The spec for a model whose metadata has this ``schema`` section."""
    customer_schema = customer_model(schema).model_json_schema(ref_template=REF)
    customer_schema["description"] = (
        "One customer. Keys and text values may also be written as in the Telco CSV "
        '("SeniorCitizen", "Fiber optic"); numbers may be text holding a number ("24.0").'
    )
    customer_schema["example"] = {**EXAMPLE_CUSTOMER, "customer_id": EXAMPLE_CUSTOMER_ID}
    request_body = {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        _ref("Customer"),
                        {
                            "type": "array",
                            "items": _ref("Customer"),
                            "minItems": 1,
                            "maxItems": max_batch,
                        },
                    ]
                }
            }
        },
    }
    predict_ok = {
        "oneOf": [_ref("PredictionResult"), {"type": "array", "items": _ref("PredictionResult")}]
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "churn-serving",
            "version": version[:12],
            "description": "Customer churn probability from a logistic regression model.",
        },
        "paths": {
            "/predict": {
                "post": {
                    "summary": "Churn probability for one customer or a batch",
                    "parameters": [
                        {
                            "name": "explain",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "boolean"},
                        }
                    ],
                    "requestBody": request_body,
                    "responses": {
                        "200": _json(predict_ok, "one result, or a list in request order"),
                        **ERROR_RESPONSES,
                    },
                    "security": [{}, {"bearer": []}, {"apiKey": []}],
                }
            },
            "/health": {
                "get": {
                    "summary": "Liveness for load balancers",
                    "responses": {"200": _json({"type": "object"}, "healthy")},
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics, summed over all workers",
                    "responses": {
                        "200": {
                            "description": "Prometheus text format",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        },
                        "401": ERROR_RESPONSES["401"],
                    },
                    "security": [{}, {"bearer": []}, {"apiKey": []}],
                }
            },
            "/model": {
                "get": {
                    "summary": "The live model and any shadow: version, metrics, threshold",
                    "responses": {
                        "200": _json({"type": "object"}, "model metadata"),
                        "401": ERROR_RESPONSES["401"],
                    },
                    "security": [{}, {"bearer": []}, {"apiKey": []}],
                }
            },
            "/drift": {
                "get": {
                    "summary": "PSI per feature against the training data, since start-up",
                    "responses": {
                        "200": _json({"type": "object"}, "psi, rows, outside_share per feature"),
                        "401": ERROR_RESPONSES["401"],
                        "404": _json(_ref("Error"), "the model has no drift reference"),
                    },
                    "security": [{}, {"bearer": []}, {"apiKey": []}],
                }
            },
        },
        "components": {
            "schemas": {
                "Customer": customer_schema,
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
