"""The realized-performance report: ``report.html`` (charts embedded, PNGs beside it) and
``metrics.json``, drawn from ``realized.compute``'s figures only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from churn import charts
from churn.artifact import write_atomically
from churn.report import Report, data_uri, render

SHORT = 12  # characters of a version (a SHA-256) shown in charts and headings


def build(metrics: dict[str, Any]) -> Report:
    versions = metrics["versions"]
    scored = {
        version[:SHORT]: figures
        for version, figures in versions.items()
        if figures.get("calibration")
    }
    images = {}
    if scored:
        series = [charts.Series(label, figures, {}) for label, figures in scored.items()]
        images["calibration.png"] = charts.calibration(
            series, "Calibration on realized outcomes (10 equal-width bins)"
        )
        promised = {
            label: figures["promised_auc"]
            for label, figures in scored.items()
            if figures["promised_auc"] is not None
        }
        weeks = {label: figures["weeks"] for label, figures in scored.items()}
        images["weekly_auc.png"] = charts.weekly_auc(weeks, promised)
    html = render(
        "outcomes.html",
        metrics=metrics,
        short=SHORT,
        images={name: data_uri(data) for name, data in images.items()},
    )
    return Report(html, images)


def write(metrics: dict[str, Any], folder: Path) -> None:
    """``folder/report.html`` with its PNGs in ``folder/report/``, and ``folder/metrics.json``."""
    build(metrics).write(folder / "report.html")
    data = orjson.dumps(metrics, option=orjson.OPT_INDENT_2) + b"\n"
    write_atomically(folder / "metrics.json", data)
