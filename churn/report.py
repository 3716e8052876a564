"""The training report: one self-contained HTML page (charts embedded) plus the PNG files.

It renders the model's metadata: every number on the page is looked up in the metadata by its
key (``fact``), so the page and the JSON are two renderings of one computation. Chart-only
curve points and the coefficients (which live in the pickle) come in beside it.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

from churn import charts
from churn.artifact import write_atomically
from churn.compare import Baseline
from churn.config import DEFAULT_THRESHOLD
from churn.evaluation import curves
from churn.profit import THRESHOLD_GRID, ThresholdChoice

TEMPLATES = Path(__file__).parent / "templates"
STYLES = {
    "auc": "{:.4f}",
    "ratio": "{:.3f}",
    "percent": "{:.1%}",
    "count": "{:,}",
    "money": "{:,.0f}",
    "threshold": "{:g}",
    "text": "{}",
}


@dataclass(frozen=True)
class Report:
    html: str
    images: dict[str, bytes]  # file name -> PNG

    def write(self, html_path: Path) -> None:
        """The PNGs into a folder named after the page, then the page; each atomically."""
        folder = html_path.with_suffix("")
        for name, data in self.images.items():
            write_atomically(folder / name, data)
        write_atomically(html_path, self.html.encode("utf-8"))


def lookup(metadata: dict[str, Any], key: str) -> Any:
    """``evaluation.held_out.lift.0.cumulative_gain`` -> that value in the metadata."""
    value: Any = metadata
    for part in key.split("."):
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value


def fact_renderer(metadata: dict[str, Any]):
    def fact(key: str, style: str = "text") -> Markup:
        text = STYLES[style].format(lookup(metadata, key))
        return Markup('<span data-key="{}">{}</span>').format(key, escape(text))

    return fact


def build(
    metadata: dict[str, Any],
    models: list[charts.Series],
    weights: list[tuple[str, float]],
    baseline_weights: dict[str, float] | None,
    profit_curve: np.ndarray | None,
) -> Report:
    """Draw the charts and render the page; ``models[0]`` is the new model."""
    evaluation = metadata["evaluation"]
    images = {
        "cross_validation.png": charts.cross_validation(
            evaluation["cross_validation"], metadata["params"]["C"]
        ),
        "roc.png": charts.roc(models),
        "precision_recall.png": charts.precision_recall(models),
        "calibration.png": charts.calibration(models),
        "gain.png": charts.gain(models),
        "confusion.png": charts.confusion(models),
        "coefficients.png": charts.coefficients(weights, baseline_weights),
    }
    if profit_curve is not None:
        images["profit.png"] = charts.profit(
            THRESHOLD_GRID, profit_curve, metadata["threshold"], DEFAULT_THRESHOLD
        )
    html = render(
        "report.html",
        meta=metadata,
        fact=fact_renderer(metadata),
        images={name: data_uri(data) for name, data in images.items()},
        weights=weights,
        baseline_weights=baseline_weights,
        default_threshold=DEFAULT_THRESHOLD,
    )
    return Report(html, images)


def for_training(
    metadata: dict[str, Any],
    dv: Any,
    model: Any,
    churned: np.ndarray,
    probabilities: np.ndarray,
    baseline: Baseline | None,
    choice: ThresholdChoice | None,
) -> Report:
    """The report of a training run: the new model, and the current one when comparing."""
    label = "new" if baseline else "model"
    held_out = metadata["evaluation"]["held_out"]
    models = [charts.Series(label, held_out, curves(churned, probabilities))]
    if baseline:
        old = metadata["comparison"]["baseline_held_out"]
        models.append(charts.Series("current", old, curves(churned, baseline.probabilities)))
    weights = sorted(
        zip(dv.feature_names_, map(float, model.coef_[0]), strict=True), key=lambda w: -abs(w[1])
    )
    old_weights = baseline.weights if baseline else None
    return build(metadata, models, weights, old_weights, choice.curve if choice else None)


def render(template: str, **context: Any) -> str:
    """One of churn/templates' pages, escaped, failing on a name the context lacks."""
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
    )
    return environment.get_template(template).render(**context)


def data_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")
