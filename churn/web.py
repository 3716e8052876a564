"""The pages people open in a browser: a try-it form at / and readable API docs at /docs.

Both are rendered on the server from the live model (vocabulary, bounds, threshold) and the live
OpenAPI spec, so they cannot drift from what /predict accepts. Everything they need is served by
the app itself: no CDN, no build step.

They stay open when ``API_KEY`` is set, so then they show only the request contract (fields,
allowed values, bounds, limits) and the model version (also on /health): not what /model guards
(training metrics, data facts, the decision threshold) nor a score computed by the model.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, render_template

from churn.artifact import THRESHOLD_FROM_COSTS
from churn.config import THRESHOLD_FROM_ENVIRONMENT
from churn.features import (
    CATEGORICAL_FIELDS,
    EXAMPLE_CUSTOMER,
    EXAMPLE_CUSTOMER_ID,
    FLAG_FIELDS,
    LABELS,
    NUMERIC_FIELDS,
)
from churn.openapi import build_spec
from churn.predictor import Predictor

pages = Blueprint("pages", __name__)


def _predictor() -> Predictor:
    return current_app.extensions["churn.predictor"]


def form_fields(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """What the form shows for each field: label, control, choices or bounds, default."""
    fields: list[dict[str, Any]] = []
    for name in CATEGORICAL_FIELDS:
        choices = [(value, value.replace("_", " ")) for value in schema["categorical"][name]]
        fields.append({"name": name, "kind": "select", "value_type": "text", "choices": choices})
    for name in FLAG_FIELDS:
        choices = [("0", "no"), ("1", "yes")]
        fields.append({"name": name, "kind": "select", "value_type": "number", "choices": choices})
    for name in NUMERIC_FIELDS:
        limits = schema["numeric"][name]
        step = "1" if limits["integer"] else "0.01"
        bounds = {"min": limits["min"], "max": limits["max"], "step": step}
        fields.append({"name": name, "kind": "number", "value_type": "number", **bounds})
    for field in fields:
        field["label"] = LABELS[field["name"]]
        default = EXAMPLE_CUSTOMER[field["name"]]
        field["default"] = str(round(default, 2) if isinstance(default, float) else default)
    return fields


def api_spec() -> dict[str, Any]:
    """The OpenAPI spec of the loaded model (/openapi.json, /docs), built at its first use:
    it cannot change while the process runs, and start-up need not pay for it (~50 ms)."""
    extensions = current_app.extensions
    if "churn.spec" not in extensions:
        model, settings = _predictor(), extensions["churn.settings"]
        spec = build_spec(model.metadata["schema"], model.version, settings.max_batch_size)
        extensions["churn.spec"] = spec
    return extensions["churn.spec"]


def _guarded() -> bool:
    """True when an API key guards the model's facts, so open pages must not show them."""
    return current_app.extensions["churn.settings"].api_key is not None


def _threshold(model: Predictor) -> dict[str, Any]:
    """The threshold in force and where it comes from, in words; neither when guarded."""
    if _guarded():
        return {"threshold": None, "threshold_origin": None}
    origin = "the course's default"
    choice = model.metadata.get("threshold_choice")
    if model.threshold_source == THRESHOLD_FROM_ENVIRONMENT:
        origin = f"set by {THRESHOLD_FROM_ENVIRONMENT} where the service runs"
    elif model.threshold_source == THRESHOLD_FROM_COSTS and choice:
        origin = (
            f"chosen at training from costs: offer cost {choice['offer_cost']:,g}, "
            f"customer value {choice['customer_value']:,g}, "
            f"offer acceptance {choice['offer_acceptance']:g}"
        )
    return {"threshold": model.threshold, "threshold_origin": origin}


@pages.get("/")
def try_it() -> str:
    model = _predictor()
    return render_template(
        "index.html",
        fields=form_fields(model.metadata["schema"]),
        version=model.version[:12],
        metrics={} if _guarded() else model.metadata.get("metrics", {}),
        api_key_required=_guarded(),
        **_threshold(model),
    )


@pages.get("/docs")
def docs() -> str:
    model = _predictor()
    spec = api_spec()
    example = {**EXAMPLE_CUSTOMER, "customer_id": EXAMPLE_CUSTOMER_ID}
    example_result = None  # a score computed by the model: guarded like /model
    if not _guarded():
        checked = model.validator.check_json([example])
        example_result = model.results(checked, model.probabilities(checked))[0]
    return render_template(
        "docs.html",
        spec=spec,
        customer=spec["components"]["schemas"]["Customer"],
        example=example,
        example_result=example_result,
        max_batch=current_app.extensions["churn.settings"].max_batch_size,
        **_threshold(model),
    )
