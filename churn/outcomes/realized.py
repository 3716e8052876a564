"""The realized-performance report: each captured prediction joined with its customer's
outcome, per model version, written as ``report.html`` (PNGs beside it) and ``metrics.json``.

A prediction made at time t is joined with the outcomes observed for its customer from t's date
to ``window_days`` after it; the customer churned if any of them says so. A prediction with no
outcome in its window (or no customer id) is not counted as a stayer: it has no outcome yet.
Every figure is computed on the joined pairs, by the functions training uses
(churn/evaluation.py, churn/profit.py).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import psycopg
from psycopg.rows import namedtuple_row

from churn import charts
from churn.artifact import ModelFileError, load_metadata, write_atomically
from churn.config import DEFAULT_AUC_TOLERANCE
from churn.evaluation import bootstrap_auc, scores
from churn.outcomes import OutcomesError, open_database
from churn.profit import Costs, offers_profit
from churn.report import Report

DEFAULT_WINDOW_DAYS = 90
SHORT = 12  # characters of a version (a SHA-256) shown in charts and headings

# One row per prediction: its outcome, aggregated over the window (null: none observed).
JOINED = """
SELECT p.model_version, p.predicted_at, p.customer_id, p.probability, p.churn, p.threshold,
       o.churned
FROM churn_predictions p
LEFT JOIN LATERAL (
    SELECT bool_or(o.churned) AS churned
    FROM churn_outcomes o
    WHERE o.customer_id = p.customer_id
      AND o.observed_on BETWEEN (p.predicted_at AT TIME ZONE 'UTC')::date
                            AND (p.predicted_at AT TIME ZONE 'UTC')::date + %(window)s
) o ON true
WHERE p.predicted_at >= %(since)s
ORDER BY p.predicted_at
"""
# Outcomes loaded, and those some prediction in the report joined.
OUTCOMES = """
SELECT count(*),
       count(*) FILTER (WHERE EXISTS (
           SELECT 1 FROM churn_predictions p
           WHERE p.customer_id = o.customer_id AND p.predicted_at >= %(since)s
             AND o.observed_on BETWEEN (p.predicted_at AT TIME ZONE 'UTC')::date
                                   AND (p.predicted_at AT TIME ZONE 'UTC')::date + %(window)s))
FROM churn_outcomes o
"""


@dataclass(frozen=True)
class Promise:
    """What a model's training report promised: its held-out AUC."""

    file: str
    auc: float


def promises(model_files: list[Path]) -> dict[str, Promise]:
    """Model version (artifact SHA-256) -> promise, from each model's metadata beside it."""
    found = {}
    for model_file in model_files:
        try:
            metadata = load_metadata(model_file)
            promise = Promise(model_file.name, float(metadata["metrics"]["test_auc"]))
            found[metadata["artifact_sha256"]] = promise
        except (ModelFileError, KeyError, TypeError, ValueError) as error:
            raise OutcomesError(
                f"--model {model_file}: cannot use its metadata ({error})"
            ) from None
    return found


def fetch(url: str, window_days: int, since: date | None) -> tuple[list[Any], dict[str, int]]:
    """The joined rows (named as JOINED's columns) and the outcome counts."""
    params = {"window": window_days, "since": since or date(1970, 1, 1)}
    with open_database(url) as connection, connection.cursor(row_factory=namedtuple_row) as cursor:
        try:
            rows = cursor.execute(JOINED, params).fetchall()
            loaded, joined = connection.execute(OUTCOMES, params).fetchone() or (0, 0)
        except psycopg.errors.UndefinedTable:
            raise OutcomesError(
                "--database has no capture tables; create them with "
                "`python -m churn.outcomes init --database URL`"
            ) from None
        except psycopg.Error as error:
            raise OutcomesError(f"--database: the query failed: {error}") from None
    return rows, {"loaded": loaded, "joined": joined}


def compute(
    rows: list[Any],
    outcomes: dict[str, int],
    window_days: int,
    since: date | None,
    costs: Costs | None,
    promised: dict[str, Promise],
) -> dict[str, Any]:
    """metrics.json: ``{"versions": {version: figures}, ...}``, the live version first."""
    by_version: dict[str, list[Any]] = defaultdict(list)
    for row in rows:
        by_version[row.model_version].append(row)
    # The live model: the one that answered last. Then the others, latest first.
    order = sorted(by_version, key=lambda v: by_version[v][-1].predicted_at, reverse=True)
    return {
        "window_days": window_days,
        "since": since.isoformat() if since else None,
        "live_version": order[0] if order else None,
        "outcomes": outcomes,
        "costs": costs.as_dict() if costs else None,
        "versions": {v: version_figures(by_version[v], costs, promised.get(v)) for v in order},
    }


def version_figures(rows: list[Any], costs: Costs | None, promise: Promise | None) -> dict:
    """One version's figures over all its predictions, and week by week."""
    figures = pair_figures(rows, costs)
    identified = [row.customer_id for row in rows if row.customer_id is not None]
    weeks: dict[date, list[Any]] = defaultdict(list)
    for row in rows:
        day = row.predicted_at.date()
        weeks[day - timedelta(days=day.weekday())].append(row)  # its week's Monday (UTC)
    figures |= {
        "first_prediction": rows[0].predicted_at.isoformat(),
        "last_prediction": rows[-1].predicted_at.isoformat(),
        "without_customer_id": len(rows) - len(identified),
        "distinct_customers": len(set(identified)),
        "thresholds": sorted({row.threshold for row in rows}),
        "weeks": [
            {"week": week.isoformat(), **week_figures(weeks[week])} for week in sorted(weeks)
        ],
        "promised_auc": promise.auc if promise else None,
    }
    figures["verdict"] = verdict(figures, promise)
    return figures


def pair_figures(rows: list[Any], costs: Costs | None) -> dict[str, Any]:
    """Counts, AUC (with its bootstrap interval), Brier, calibration, precision and recall at
    the decisions taken, and profit, over the predictions in ``rows`` that have an outcome."""
    joined = [row for row in rows if row.churned is not None]
    figures: dict[str, Any] = {"customers": len(rows), "with_outcome": len(joined)}
    if not joined:
        return figures | dict.fromkeys(("auc", "auc_low", "auc_high", "brier", "churn_rate"))
    churned = np.array([row.churned for row in joined], dtype=np.float64)
    probabilities = np.array([row.probability for row in joined], dtype=np.float64)
    flagged = np.array([row.churn for row in joined], dtype=bool)
    figures |= scores(churned, probabilities, flagged)
    interval = bootstrap_auc(churned, probabilities) if figures["auc"] is not None else None
    caught = figures["confusion"]["true_positive"]
    offers, churners = flagged.sum(), churned.sum()
    figures |= {
        "auc_low": interval[0] if interval else None,
        "auc_high": interval[1] if interval else None,
        "precision": float(caught / offers) if offers else None,
        "recall": float(caught / churners) if churners else None,
    }
    if costs is not None:
        figures["realized"] = offers_profit(costs, churned, flagged)
    return figures


def week_figures(rows: list[Any]) -> dict[str, Any]:
    figures = pair_figures(rows, None)
    keys = ("customers", "with_outcome", "auc", "auc_low", "auc_high", "brier", "churn_rate")
    return {key: figures[key] for key in keys}


def verdict(figures: dict[str, Any], promise: Promise | None) -> str:
    """Whether the model still earns its place: its realized AUC against its promised one."""
    auc, low, high = figures["auc"], figures["auc_low"], figures["auc_high"]
    if auc is None:
        return "not enough outcomes yet: the AUC needs customers who churned and who stayed"
    realized_text = f"realized AUC {auc:.3f}"
    if low is not None:
        realized_text += f" (95% CI {low:.3f}-{high:.3f})"
    if promise is None:
        return (
            f"{realized_text}; no training metadata for this version to compare with "
            "(pass its model with --model)"
        )
    promised = f"the {promise.auc:.3f} its training promised ({promise.file})"
    floor = promise.auc - DEFAULT_AUC_TOLERANCE
    if auc >= floor:
        return f"earns its place: {realized_text} against {promised}"
    if high is not None and high < floor:
        return f"falls short: {realized_text} is below {promised}; retrain it or roll back"
    return f"below its promise but within noise: {realized_text} against {promised}"


def write_report(metrics: dict[str, Any], folder: Path) -> None:
    """``folder/report.html`` with its PNGs in ``folder/report/``, and ``folder/metrics.json``."""
    scored = {
        version[:SHORT]: figures
        for version, figures in metrics["versions"].items()
        if figures.get("calibration")
    }
    images = {}
    if scored:
        series = [charts.Series(label, figures, {}) for label, figures in scored.items()]
        title = "Calibration on realized outcomes (10 equal-width bins)"
        images["calibration.png"] = charts.calibration(series, title)
        promised = {
            label: figures["promised_auc"]
            for label, figures in scored.items()
            if figures["promised_auc"] is not None
        }
        weeks = {label: figures["weeks"] for label, figures in scored.items()}
        images["weekly_auc.png"] = charts.weekly_auc(weeks, promised)
    page = Report.of("outcomes.html", images, metrics=metrics, short=SHORT)
    page.write(folder / "report.html")
    data = orjson.dumps(metrics, option=orjson.OPT_INDENT_2) + b"\n"
    write_atomically(folder / "metrics.json", data)
