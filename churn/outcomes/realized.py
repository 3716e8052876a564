"""Realized performance: each captured prediction joined with its customer's outcome, per model
version.

A prediction made at time t is joined with the outcomes observed for its customer from t's date
to ``window_days`` after it; the customer churned if any of them says so. A prediction with no
outcome in its window (or no customer id) is not counted as a stayer: it has no outcome yet.
Every figure is computed on the joined pairs, by the functions training uses
(churn/evaluation.py, churn/profit.py).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from sklearn.metrics import brier_score_loss, roc_auc_score

from churn.config import DEFAULT_AUC_TOLERANCE, metadata_path
from churn.evaluation import bootstrap_auc, calibration, decision_counts
from churn.outcomes import OutcomesError, open_database
from churn.profit import Costs, realized

DEFAULT_WINDOW_DAYS = 90

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
        path = metadata_path(model_file)
        try:
            metadata = json.loads(path.read_text())
            found[metadata["artifact_sha256"]] = Promise(
                model_file.name, float(metadata["metrics"]["test_auc"])
            )
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise OutcomesError(f"--model {model_file}: cannot read {path} ({error})") from None
    return found


def fetch(url: str, window_days: int, since: date | None) -> tuple[list[tuple], dict[str, int]]:
    """The joined rows and the outcome counts."""
    params = {"window": window_days, "since": since or date(1970, 1, 1)}
    with open_database(url) as connection:
        try:
            rows = connection.execute(JOINED, params).fetchall()
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
    rows: list[tuple],
    outcomes: dict[str, int],
    window_days: int,
    since: date | None,
    costs: Costs | None,
    promised: dict[str, Promise],
) -> dict[str, Any]:
    """metrics.json: ``{"versions": {version: figures}, ...}``, the live version first."""
    by_version: dict[str, list[tuple]] = defaultdict(list)
    for row in rows:
        by_version[row[0]].append(row)
    # The live model: the one that answered last. Then the others, latest first.
    order = sorted(by_version, key=lambda version: by_version[version][-1][1], reverse=True)
    versions = {
        version: version_figures(by_version[version], costs, promised.get(version))
        for version in order
    }
    return {
        "window_days": window_days,
        "since": since.isoformat() if since else None,
        "live_version": order[0] if order else None,
        "outcomes": outcomes,
        "costs": costs.as_dict() if costs else None,
        "versions": versions,
    }


def version_figures(rows: list[tuple], costs: Costs | None, promise: Promise | None) -> dict:
    """One version's figures over all its predictions, and week by week."""
    figures = pair_figures(rows, costs)
    identified = [row for row in rows if row[2] is not None]
    figures.update(
        {
            "first_prediction": rows[0][1].isoformat(),
            "last_prediction": rows[-1][1].isoformat(),
            "without_customer_id": len(rows) - len(identified),
            "distinct_customers": len({row[2] for row in identified}),
            "thresholds": sorted({row[5] for row in rows}),
        }
    )
    weeks: dict[date, list[tuple]] = defaultdict(list)
    for row in rows:
        weeks[_week_of(row[1])].append(row)
    figures["weeks"] = [
        {"week": week.isoformat(), **_week_figures(weeks[week])} for week in sorted(weeks)
    ]
    figures["promised_auc"] = promise.auc if promise else None
    figures["verdict"] = verdict(figures, promise)
    return figures


def pair_figures(rows: list[tuple], costs: Costs | None) -> dict[str, Any]:
    """Counts, AUC (with its bootstrap interval), Brier, calibration, precision and recall at
    the decisions taken, and profit, over the predictions in ``rows`` that have an outcome."""
    joined = [row for row in rows if row[6] is not None]
    figures: dict[str, Any] = {"customers": len(rows), "with_outcome": len(joined)}
    if not joined:
        return figures | dict.fromkeys(("auc", "auc_low", "auc_high", "brier", "churn_rate"))
    churned = np.array([row[6] for row in joined], dtype=bool)
    probabilities = np.array([row[3] for row in joined], dtype=np.float64)
    flagged = np.array([row[4] for row in joined], dtype=bool)
    both = 0 < churned.sum() < len(churned)  # AUC needs churners and stayers
    interval = bootstrap_auc(churned, probabilities) if both else None
    counts = decision_counts(churned, flagged)
    offers, churners = counts["true_positive"] + counts["false_positive"], int(churned.sum())
    figures.update(
        {
            "auc": float(roc_auc_score(churned, probabilities)) if both else None,
            "auc_low": interval[0] if interval else None,
            "auc_high": interval[1] if interval else None,
            "brier": float(brier_score_loss(churned, probabilities, pos_label=True)),
            "churn_rate": float(churned.mean()),
            "confusion": counts,
            "precision": counts["true_positive"] / offers if offers else None,
            "recall": counts["true_positive"] / churners if churners else None,
            "calibration": calibration(churned.astype(np.float64), probabilities),
        }
    )
    if costs is not None:
        figures["realized"] = realized(costs, churned.astype(np.float64), flagged)
    return figures


def _week_figures(rows: list[tuple]) -> dict[str, Any]:
    figures = pair_figures(rows, None)
    keys = ("customers", "with_outcome", "auc", "auc_low", "auc_high", "brier", "churn_rate")
    return {key: figures.get(key) for key in keys}


def _week_of(moment: datetime) -> date:
    """The Monday (UTC) of ``moment``'s week."""
    day = moment.date()
    return day - timedelta(days=day.weekday())


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
