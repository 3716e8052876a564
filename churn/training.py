"""``python train.py``: clean the data, cross-validate, train the final model and save it."""

from __future__ import annotations

import argparse
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sklearn

from churn import artifact
from churn.config import DEFAULT_C, DEFAULT_DATA_PATH, DEFAULT_FOLDS, ConfigError, model_filename
from churn.data import DataFileError, load_clean, resolve_data_path, sha256_of
from churn.drift import reference_from
from churn.features import learn_schema
from churn.model import CrossValidation, auc, cross_validate, fit, split

DECISION_THRESHOLD = 0.5


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="train.py",
        description="Train the churn model (DictVectorizer + LogisticRegression) and save it.",
    )
    parser.add_argument(
        "--data",
        help=f"the Telco churn CSV (default: $CHURN_DATA, else {DEFAULT_DATA_PATH}, "
        "downloaded when missing)",
    )
    parser.add_argument(
        "--C",
        type=float,
        nargs="+",
        default=[DEFAULT_C],
        dest="C_values",
        metavar="C",
        help="inverse regularization strength; several values keep the best mean CV AUC "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--folds", type=int, default=DEFAULT_FOLDS, help="cross-validation folds (default: 5)"
    )
    parser.add_argument("--output", help="model file to write (default: model_C={C}.bin)")
    args = parser.parse_args(argv)
    if args.folds < 2:
        parser.error("--folds must be at least 2")
    if any(not np.isfinite(c) or c <= 0 for c in args.C_values):
        parser.error("--C values must be positive numbers")
    return args


def select_C(frame: pd.DataFrame, C_values: list[float], folds: int) -> CrossValidation:
    results = []
    for C in C_values:
        result = cross_validate(frame, C, folds)
        for number, fold_auc in enumerate(result.fold_aucs, start=1):
            print(f"  C={C} fold {number}: AUC {fold_auc:.3f}")
        print(f"C={C} {result.mean:.3f} ± {result.std:.3f}")
        results.append(result)
    return max(results, key=lambda r: r.mean)


def build_metadata(
    data_path: Path,
    frame: pd.DataFrame,
    train_frame: pd.DataFrame,
    best: CrossValidation,
    folds: int,
    test_auc: float,
) -> dict[str, Any]:
    return {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "data": {"file": data_path.name, "sha256": sha256_of(data_path), "rows": len(frame)},
        "versions": {
            "python": platform.python_version(),
            "scikit-learn": sklearn.__version__,
            "numpy": np.__version__,
            "pandas": pd.__version__,
        },
        "params": {"C": best.C, "folds": folds, "solver": "newton-cholesky"},
        "metrics": {
            "cv_auc_mean": best.mean,
            "cv_auc_std": best.std,
            "cv_fold_aucs": list(best.fold_aucs),
            "test_auc": test_auc,
        },
        "threshold": DECISION_THRESHOLD,
        "schema": learn_schema(train_frame),
        "drift_reference": reference_from(train_frame),
    }


def run(args: argparse.Namespace) -> Path:
    data_path = resolve_data_path(args.data)
    frame = load_clean(data_path)
    print(f"Data: {data_path} ({len(frame):,} customers, churn rate {frame['churn'].mean():.1%})")
    full_train, test = split(frame)
    best = select_C(full_train, args.C_values, args.folds)
    dv, model = fit(full_train, best.C)
    test_auc = auc(dv, model, test)
    print(f"Final model C={best.C} on {len(full_train):,} customers: test AUC {test_auc:.3f}")
    output = Path(args.output or model_filename(best.C))
    metadata = build_metadata(data_path, frame, full_train, best, args.folds, test_auc)
    artifact.save(output, dv, model, metadata)
    print(f"Saved {output} and {output.with_suffix('.json')}")
    return output


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        run(args)
    except (DataFileError, ConfigError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
