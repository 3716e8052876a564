"""How good a model's scores are: the figures the training report and the realized report share.

Each figure is computed once here and stored (the model's metadata, the realized metrics.json);
the pages render the stored values. ``curves`` gives the chart-only points, too many to store.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    confusion_matrix,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

CALIBRATION_EDGES = np.linspace(0.0, 1.0, 11)  # ten equal-width bins
LIFT_GROUPS = 10  # deciles
CONFUSION_CELLS = ("true_negative", "false_positive", "false_negative", "true_positive")  # rows
DEFAULT_AUC_TOLERANCE = 0.005  # a retrained model this much worse on held-out AUC needs --force


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
    cells = confusion_matrix(actual, flagged, labels=[False, True]).ravel()
    return {
        "auc": float(roc_auc_score(actual, probabilities)) if both else None,
        "brier": float(brier_score_loss(actual, probabilities, pos_label=True)),
        "churn_rate": float(churned.mean()),
        "confusion": dict(zip(CONFUSION_CELLS, map(int, cells), strict=True)),
        "calibration": calibration(churned, probabilities),
    }


def bootstrap_auc(churned: np.ndarray, probabilities: np.ndarray) -> tuple[float, float] | None:
    """A 95% confidence interval of the AUC over 200 resamples of the customers; None when fewer
    than two hold both classes. Seeded, so the same rows always give the same interval."""
    random = np.random.default_rng(0)
    aucs = []
    for _ in range(200):
        picked = random.integers(0, len(churned), len(churned))
        if 0 < churned[picked].sum() < len(picked):
            aucs.append(roc_auc_score(churned[picked], probabilities[picked]))
    if len(aucs) < 2:
        return None
    low, high = np.percentile(aucs, [2.5, 97.5])
    return float(low), float(high)


def calibration(churned: np.ndarray, probabilities: np.ndarray) -> list[dict[str, Any]]:
    """Per probability bin holding customers: mean predicted probability, observed churn rate."""
    # Binned by the inner edges only, so a probability of exactly 1.0 falls in the last bin.
    bins = np.digitize(probabilities, CALIBRATION_EDGES[1:-1])
    return [
        {
            "low": float(CALIBRATION_EDGES[number]),
            "high": float(CALIBRATION_EDGES[number + 1]),
            "customers": int(inside.sum()),
            "mean_predicted": float(probabilities[inside].mean()),
            "observed_rate": float(churned[inside].mean()),
        }
        for number in range(len(CALIBRATION_EDGES) - 1)
        if (inside := bins == number).any()
    ]


def lift_by_decile(churned: np.ndarray, probabilities: np.ndarray) -> list[dict[str, Any]]:
    """Customers ranked by score (ties by position), cut into tenths: what share of churners
    the top k tenths catch, and how much above the overall rate they churn."""
    groups = np.array_split(churned[np.argsort(-probabilities, kind="stable")], LIFT_GROUPS)
    caught, seen = np.cumsum([g.sum() for g in groups]), np.cumsum([len(g) for g in groups])
    return [
        {
            "decile": number + 1,
            "customers": len(group),
            "churners": int(group.sum()),
            "cumulative_gain": float(caught[number] / churned.sum()),
            "cumulative_lift": float((caught[number] / seen[number]) / churned.mean()),
        }
        for number, group in enumerate(groups)
    ]


def curves(churned: np.ndarray, probabilities: np.ndarray) -> dict[str, np.ndarray]:
    """Chart-only points: the ROC curve and the precision-recall curve."""
    fpr, tpr, _ = roc_curve(churned, probabilities)
    precision, recall, _ = precision_recall_curve(churned, probabilities)
    return {"fpr": fpr, "tpr": tpr, "precision": precision, "recall": recall}
