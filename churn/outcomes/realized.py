"""The realized-performance report, per model version and week: ``report.html`` (PNGs beside
it) and ``metrics.json``. A prediction joins its customer's outcomes observed from its (UTC)
date to ``window_days`` after (churned if any says so); one with none (or no customer id) is
left out of the figures, not counted as a stayer. The figures are training's
(churn/evaluation.py, churn/profit.py)."""

from __future__ import annotations

import argparse
from datetime import date
from itertools import groupby
from operator import attrgetter
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import psycopg
from psycopg.rows import namedtuple_row

from churn import charts
from churn.artifact import ModelFileError, load_metadata, write_atomically
from churn.config import DEFAULT_AUC_TOLERANCE, ConfigError
from churn.evaluation import bootstrap_auc, scores
from churn.profit import Costs, offers_profit
from churn.report import Report

DEFAULT_WINDOW_DAYS = 90
SHORT = 12  # characters of a version (a SHA-256) shown in charts and headings
WINDOW = """o.observed_on BETWEEN (p.predicted_at AT TIME ZONE 'UTC')::date
                         AND (p.predicted_at AT TIME ZONE 'UTC')::date + %(window)s"""
# One row per prediction with its week's Monday and its outcome (null: none observed); the
# versions grouped, the live one (that answered last) first, then the others latest first.
JOINED = f"""
SELECT p.model_version, p.predicted_at, p.customer_id, p.probability, p.churn, p.threshold,
       date_trunc('week', p.predicted_at AT TIME ZONE 'UTC')::date AS week,
       (SELECT bool_or(o.churned) FROM churn_outcomes o
        WHERE o.customer_id = p.customer_id AND {WINDOW}) AS churned
FROM churn_predictions p WHERE p.predicted_at >= %(since)s
ORDER BY max(p.predicted_at) OVER (PARTITION BY p.model_version) DESC, p.model_version,
         p.predicted_at
"""  # noqa: S608 (constant text only, as in OUTCOMES)
# Outcomes loaded, and those some prediction in the report joined.
OUTCOMES = f"""
SELECT count(*), count(*) FILTER (WHERE EXISTS (SELECT 1 FROM churn_predictions p
    WHERE p.customer_id = o.customer_id AND p.predicted_at >= %(since)s AND {WINDOW}))
FROM churn_outcomes o
"""  # noqa: S608
Promise = tuple[str, float]  # the model file, the test AUC its training promised


def promises(model_files: list[Path]) -> dict[str, Promise]:
    """Model version (artifact SHA-256) -> its promise, from each model's metadata."""
    found = {}
    for model_file in model_files:
        try:
            metadata = load_metadata(model_file)
            auc = float(metadata["metrics"]["test_auc"])
            found[metadata["artifact_sha256"]] = (model_file.name, auc)
        except (ModelFileError, KeyError, TypeError, ValueError) as error:
            raise ConfigError(f"--model {model_file}: cannot use its metadata ({error})") from None
    return found


def compute(
    connection: psycopg.Connection, args: argparse.Namespace, promised: dict[str, Promise]
) -> dict[str, Any]:
    """metrics.json: ``{"versions": {version: figures}, ...}``, the live version first."""
    params = {"window": args.window_days, "since": args.since or date(1970, 1, 1)}
    with connection.cursor(row_factory=namedtuple_row) as cursor:
        rows = cursor.execute(JOINED, params).fetchall()
    loaded, joined = connection.execute(OUTCOMES, params).fetchone() or (0, 0)
    versions = {v: list(rows) for v, rows in groupby(rows, attrgetter("model_version"))}
    return {
        "window_days": args.window_days,
        "since": args.since.isoformat() if args.since else None,
        "live_version": next(iter(versions), None),
        "outcomes": {"loaded": loaded, "joined": joined},
        "costs": args.costs.as_dict() if args.costs else None,
        "versions": {
            v: version_figures(r, args.costs, promised.get(v)) for v, r in versions.items()
        },
    }


def version_figures(rows: list[Any], costs: Costs | None, promise: Promise | None) -> dict:
    """One version's figures over all its predictions, and week by week."""
    identified = [row.customer_id for row in rows if row.customer_id is not None]
    figures = pair_figures(rows, costs) | {
        "first_prediction": rows[0].predicted_at.isoformat(),
        "last_prediction": rows[-1].predicted_at.isoformat(),
        "without_customer_id": len(rows) - len(identified),
        "distinct_customers": len(set(identified)),
        "thresholds": sorted({row.threshold for row in rows}),
        "weeks": [
            {"week": week.isoformat()} | pair_figures(list(in_week), None)
            for week, in_week in groupby(rows, attrgetter("week"))
        ],
        "promised_auc": promise[1] if promise else None,
    }
    return figures | {"verdict": verdict(figures, promise)}


def pair_figures(rows: list[Any], costs: Costs | None) -> dict[str, Any]:
    """Counts, AUC with its bootstrap interval, Brier, calibration, precision and recall of the
    decisions taken, and profit, over the predictions in ``rows`` that have an outcome."""
    joined = [row for row in rows if row.churned is not None]
    figures: dict[str, Any] = {"customers": len(rows), "with_outcome": len(joined)}
    if not joined:
        return figures | dict.fromkeys(("auc", "auc_low", "auc_high", "brier", "churn_rate"))
    churned = np.array([row.churned for row in joined], dtype=np.float64)
    probabilities = np.array([row.probability for row in joined], dtype=np.float64)
    flagged = np.array([row.churn for row in joined], dtype=bool)
    figures |= scores(churned, probabilities, flagged)
    interval = bootstrap_auc(churned, probabilities) if figures["auc"] is not None else None
    low, high = interval or (None, None)
    caught, offers, churners = figures["confusion"]["true_positive"], flagged.sum(), churned.sum()
    figures |= {
        "auc_low": low,
        "auc_high": high,
        "precision": float(caught / offers) if offers else None,
        "recall": float(caught / churners) if churners else None,
    }
    if costs is not None:
        figures["realized"] = offers_profit(costs, churned, flagged)
    return figures


def verdict(figures: dict[str, Any], promise: Promise | None) -> str:
    """Whether the model still earns its place: its realized AUC against its promised one."""
    auc, low, high = figures["auc"], figures["auc_low"], figures["auc_high"]
    if auc is None:
        return "not enough outcomes yet: the AUC needs customers who churned and who stayed"
    realized = f"realized AUC {auc:.3f}" + (
        f" (95% CI {low:.3f}-{high:.3f})" if low is not None else ""
    )
    if promise is None:
        no_promise = "no training metadata for this version to compare with"
        return f"{realized}; {no_promise} (pass its model with --model)"
    promised = f"the {promise[1]:.3f} its training promised ({promise[0]})"
    floor = promise[1] - DEFAULT_AUC_TOLERANCE
    if auc >= floor:
        return f"earns its place: {realized} against {promised}"
    if high is not None and high < floor:
        return f"falls short: {realized} is below {promised}; retrain it or roll back"
    return f"below its promise but within noise: {realized} against {promised}"


def write_report(metrics: dict[str, Any], folder: Path) -> None:
    """``folder/report.html`` with its PNGs in ``folder/report/``, and ``folder/metrics.json``."""
    scored = {v[:SHORT]: f for v, f in metrics["versions"].items() if f.get("calibration")}
    images = {}
    if scored:
        series = [charts.Series(label, figures, {}) for label, figures in scored.items()]
        title = "Calibration on realized outcomes (10 equal-width bins)"
        images["calibration.png"] = charts.calibration(series, title)
        promised = {
            k: f["promised_auc"] for k, f in scored.items() if f["promised_auc"] is not None
        }
        weeks = {label: figures["weeks"] for label, figures in scored.items()}
        images["weekly_auc.png"] = charts.weekly_auc(weeks, promised)
    Report.of("outcomes.html", images, metrics=metrics, short=SHORT).write(folder / "report.html")
    write_atomically(
        folder / "metrics.json", orjson.dumps(metrics, option=orjson.OPT_INDENT_2) + b"\n"
    )
