"""The training report: one self-contained HTML page (charts embedded) plus the PNG files.

It renders the model's metadata: every number on the page is looked up in the metadata by its
key (``fact``), so the page and the JSON are two renderings of one computation. Chart-only
curve points and the coefficients (which live in the pickle) come in beside it.
"""

from __future__ import annotations

import base64
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from churn import charts
from churn.artifact import DEFAULT_THRESHOLD, write_atomically
from churn.profit import THRESHOLD_GRID

# Escaped, and failing on a name the context lacks.
PAGES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
)
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

    @classmethod
    def of(cls, template: str, images: dict[str, bytes], **context: Any) -> Report:
        """The page with its images inlined as data URIs, so it needs no other file."""
        inline = {
            name: "data:image/png;base64," + base64.b64encode(data).decode("ascii")
            for name, data in images.items()
        }
        return cls(PAGES.get_template(template).render(images=inline, **context), images)

    def write(self, html_path: Path) -> None:
        """The PNGs into a folder named after the page, then the page; each atomically."""
        for name, data in self.images.items():
            write_atomically(html_path.with_suffix("") / name, data)
        write_atomically(html_path, self.html.encode("utf-8"))


def fact(metadata: dict[str, Any], key: str, style: str = "text") -> Markup:
    """The metadata's value at ``key`` (``lift.0.cumulative_gain``), in a span naming it."""
    value: Any = metadata
    for part in key.split("."):
        value = value[int(part)] if isinstance(value, list) else value[part]
    return Markup('<span data-key="{}">{}</span>').format(key, STYLES[style].format(value))


def for_training(
    metadata: dict[str, Any],
    models: list[charts.Series],
    weights: dict[str, float],
    old_weights: dict[str, float] | None,
    profit_curve: np.ndarray | None,
) -> Report:
    """The report of a training run: the new model, and the current one when comparing."""
    by_size = sorted(weights.items(), key=lambda weight: -abs(weight[1]))
    images = {
        "cross_validation.png": charts.cross_validation(
            metadata["evaluation"]["cross_validation"], metadata["params"]["C"]
        ),
        "roc.png": charts.roc(models),
        "precision_recall.png": charts.precision_recall(models),
        "calibration.png": charts.calibration(models),
        "gain.png": charts.gain(models),
        "confusion.png": charts.confusion(models),
        "coefficients.png": charts.coefficients(by_size, old_weights),
    }
    if profit_curve is not None:
        images["profit.png"] = charts.profit(
            THRESHOLD_GRID, profit_curve, metadata["threshold"], DEFAULT_THRESHOLD
        )
    return Report.of(
        "report.html",
        images,
        meta=metadata,
        fact=functools.partial(fact, metadata),
        weights=by_size,
        baseline_weights=old_weights,
        default_threshold=DEFAULT_THRESHOLD,
    )
