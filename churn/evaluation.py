"""How good a model's scores are: the figures the training report and the realized report share.

Each figure is computed once here and stored (the model's metadata, the realized metrics.json);
the pages render the stored values, so a page and its JSON cannot disagree. ``curves`` gives
the chart-only points (ROC and precision-recall), too many to store.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

CALIBRATION_BINS = 10
LIFT_GROUPS = 10  # deciles


def evaluate(churned: np.ndarray, probabilities: np.ndarray, threshold: float) -> dict[str, Any]:
    """Training's held-out figures: ``scores`` at ``threshold``, average precision and lift."""
    figures = scores(churned, probabilities, probabilities >= threshold)
    figures["confusion"] = {"threshold": threshold, **figures["confusion"]}
    return {
        "rows": len(churned),
        **figures,
        "average_precision": float(average_precision_score(churned, probabilities)),
        "lift": lift_by_decile(churned, probabilities),
    }


def scores(churned: np.ndarray, probabilities: np.ndarray, flagged: np.ndarray) -> dict[str, Any]:
    """AUC (None unless both churners and stayers are there), Brier score, churn rate, the
    confusion matrix of the decisions taken (``flagged``) and calibration."""
    actual = churned.astype(bool)
    both = 0 < actual.sum() < len(actual)
    return {
        "auc": float(roc_auc_score(actual, probabilities)) if both else None,
        "brier": float(brier_score_loss(actual, probabilities, pos_label=True)),
        "churn_rate": float(churned.mean()),
        "confusion": {
            "true_negative": int((~flagged & ~actual).sum()),
            "false_positive": int((flagged & ~actual).sum()),
            "false_negative": int((~flagged & actual).sum()),
            "true_positive": int((flagged & actual).sum()),
        },
        "calibration": calibration(churned, probabilities),
    }


def bootstrap_auc(
    churned: np.ndarray, probabilities: np.ndarray, resamples: int = 200, seed: int = 0
) -> tuple[float, float] | None:
    """A 95% confidence interval of the AUC: percentiles of it over resampled customers.

    None when fewer than two resamples hold both classes (too few outcomes to say). Seeded, so
    a report says the same thing each time it is drawn from the same rows.
    """
    random = np.random.default_rng(seed)
    aucs = []
    for _ in range(resamples):
        picked = random.integers(0, len(churned), len(churned))
        sample = churned[picked]
        if 0 < sample.sum() < len(sample):
            aucs.append(roc_auc_score(sample, probabilities[picked]))
    if len(aucs) < 2:
        return None
    low, high = np.percentile(aucs, [2.5, 97.5])
    return float(low), float(high)


def calibration(churned: np.ndarray, probabilities: np.ndarray) -> list[dict[str, Any]]:
    """Equal-width probability bins: mean predicted probability against the observed churn rate."""
    edges = np.linspace(0.0, 1.0, CALIBRATION_BINS + 1)
    # A probability of exactly 1.0 belongs in the last bin, not in an eleventh.
    bins = np.minimum(np.digitize(probabilities, edges[1:-1]), CALIBRATION_BINS - 1)
    rows = []
    for number in range(CALIBRATION_BINS):
        inside = bins == number
        if inside.any():
            rows.append(
                {
                    "low": float(edges[number]),
                    "high": float(edges[number + 1]),
                    "customers": int(inside.sum()),
                    "mean_predicted": float(probabilities[inside].mean()),
                    "observed_rate": float(churned[inside].mean()),
                }
            )
    return rows


def lift_by_decile(churned: np.ndarray, probabilities: np.ndarray) -> list[dict[str, Any]]:
    """Customers ranked by score, cut into tenths: what share of churners the top k tenths catch.

    Ties in score are broken by position (a stable sort), so the table is reproducible.
    """
    order = np.argsort(-probabilities, kind="stable")
    rows, seen, caught = [], 0, 0
    for number, group in enumerate(np.array_split(churned[order], LIFT_GROUPS), start=1):
        seen += len(group)
        caught += int(group.sum())
        rows.append(
            {
                "decile": number,
                "customers": len(group),
                "churners": int(group.sum()),
                "cumulative_gain": float(caught / churned.sum()),
                "cumulative_lift": float((caught / seen) / churned.mean()),
            }
        )
    return rows


def curves(churned: np.ndarray, probabilities: np.ndarray) -> dict[str, np.ndarray]:
    """Chart-only points: the ROC curve and the precision-recall curve."""
    fpr, tpr, _ = roc_curve(churned, probabilities)
    precision, recall, _ = precision_recall_curve(churned, probabilities)
    return {"fpr": fpr, "tpr": tpr, "precision": precision, "recall": recall}
