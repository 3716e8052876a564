"""Comparing a new model with the one it would replace, on the same held-out customers.

The old model is read with the service's own loader (no code from its pickle runs) and scored
with the service's scorer, so the comparison sees exactly what production would answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from churn.artifact import ModelFileError
from churn.evaluation import evaluate
from churn.model import feature_dicts
from churn.predictor import Predictor


@dataclass(frozen=True)
class Baseline:
    path: Path
    predictor: Predictor
    probabilities: np.ndarray  # on the held-out split


def load_baseline(path: Path, held_out: pd.DataFrame) -> Baseline:
    """The model at ``path`` and its scores on ``held_out``; raises ``ModelFileError``."""
    predictor = Predictor.load(path)
    checked = predictor.validator.check_json(feature_dicts(held_out))
    return Baseline(path, predictor, predictor.probabilities(checked))


def existing_baseline(path: Path, held_out: pd.DataFrame) -> Baseline | None:
    """The model already at the output path, if there is a readable one.

    An unreadable one is reported and replaced: retraining is how such a file gets fixed.
    """
    if not path.exists():
        return None
    try:
        return load_baseline(path, held_out)
    except ModelFileError as error:
        print(f"warning: not comparing with the existing {path}: {error}")
        return None


def compare(
    baseline: Baseline,
    churned: np.ndarray,
    new_probabilities: np.ndarray,
    new_held_out: dict[str, Any],
    tolerance: float,
    force: bool,
) -> dict[str, Any]:
    """What the metadata keeps and the report shows. The verdict is ``refused`` when the new
    model's held-out AUC is more than ``tolerance`` below the baseline's, unless ``force``."""
    old_threshold = baseline.predictor.threshold
    old_held_out = evaluate(churned, baseline.probabilities, old_threshold)
    difference = new_held_out["auc"] - old_held_out["auc"]
    old_flags = baseline.probabilities >= old_threshold
    new_flags = new_probabilities >= new_held_out["confusion"]["threshold"]
    return {
        "baseline_file": str(baseline.path),
        "baseline_version": baseline.predictor.version,
        "baseline_trained_at": baseline.predictor.metadata.get("created_at", "unknown"),
        "baseline_threshold": old_threshold,
        "baseline_held_out": old_held_out,
        "auc_difference": difference,
        "decision_changes": int((old_flags != new_flags).sum()),  # customers flagged by one only
        "tolerance": tolerance,
        "verdict": "accepted" if difference >= -tolerance else "forced" if force else "refused",
    }


def describe_comparison(comparison: dict[str, Any], new_auc: float) -> str:
    return (
        f"Compared with {comparison['baseline_file']} ({comparison['baseline_version'][:12]}) "
        f"on the held-out split: AUC {comparison['baseline_held_out']['auc']:.4f} -> "
        f"{new_auc:.4f} ({comparison['auc_difference']:+.4f}), "
        f"{comparison['decision_changes']:,} decisions change"
    )
