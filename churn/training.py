"""``python train.py``: clean the data, cross-validate, train, evaluate, report and save.

Everything a run measures is computed once here and stored in the metadata; the report
(churn/report.py) renders that metadata. A run may also choose the threshold from costs
(churn/profit.py) and compare the new model with the one it would replace (churn/compare.py).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import math
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from churn import artifact, report
from churn.artifact import ModelFileError
from churn.compare import compare, describe_comparison, existing_baseline, load_baseline
from churn.config import (
    DEFAULT_AUC_TOLERANCE,
    DEFAULT_C,
    DEFAULT_DATA_PATH,
    DEFAULT_FOLDS,
    DEFAULT_THRESHOLD,
    THRESHOLD_FROM_COSTS,
    THRESHOLD_FROM_DEFAULT,
    ConfigError,
    model_filename,
    report_path,
)
from churn.data import DataFileError, load_clean, resolve_data_path, sha256_of
from churn.drift import reference_from
from churn.evaluation import evaluate
from churn.features import TARGET, learn_schema
from churn.model import CrossValidation, cross_validate, fit, predict, split
from churn.profit import (
    ThresholdChoice,
    add_cost_options,
    choose_threshold,
    chosen_and_default,
    costs_from,
)

EXIT_REFUSED = 3  # the new model is worse than the current one; nothing was replaced
LIBRARIES = ("scikit-learn", "numpy", "pandas", "matplotlib")  # their versions go in the metadata


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="train.py",
        description="Train the churn model (DictVectorizer + LogisticRegression), report on it "
        "and save it.",
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
    add_cost_options(parser, "threshold from costs (all three, or none for the course's 0.5)")
    gate = parser.add_argument_group("comparison with the current model")
    gate.add_argument(
        "--compare-with",
        metavar="MODEL",
        help="compare with this model (default: the model already at the output path)",
    )
    gate.add_argument(
        "--auc-tolerance",
        type=float,
        default=DEFAULT_AUC_TOLERANCE,
        help="refuse a model this much worse on held-out AUC (default: %(default)s)",
    )
    gate.add_argument("--force", action="store_true", help="save even a refused model")
    args = parser.parse_args(argv)
    if args.folds < 2:
        parser.error("--folds must be at least 2")
    if not all(math.isfinite(C) and C > 0 for C in args.C_values):
        parser.error("--C values must be positive numbers")
    if not (math.isfinite(args.auc_tolerance) and args.auc_tolerance >= 0):
        parser.error("--auc-tolerance must be a finite number >= 0")
    args.costs = costs_from(args, parser)
    return args


def build_metadata(
    data_path: Path,
    frame: pd.DataFrame,
    train_frame: pd.DataFrame,
    runs: list[CrossValidation],
    folds: int,
    held_out: dict[str, Any],
    choice: ThresholdChoice | None,
) -> dict[str, Any]:
    best = max(runs, key=lambda r: r.mean)
    return {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "data": {
            "file": data_path.name,
            "sha256": sha256_of(data_path),
            "rows": len(frame),
            "churn_rate": float(frame[TARGET].mean()),
        },
        "versions": {
            "python": platform.python_version(),
            **{name: importlib.metadata.version(name) for name in LIBRARIES},
        },
        "params": {"C": best.C, "folds": folds, "solver": "newton-cholesky"},
        "metrics": {
            "cv_auc_mean": best.mean,
            "cv_auc_std": best.std,
            "cv_fold_aucs": list(best.fold_aucs),
            "test_auc": held_out["auc"],
        },
        "evaluation": {
            "cross_validation": [
                {"C": run.C, "fold_aucs": list(run.fold_aucs), "mean": run.mean, "std": run.std}
                for run in runs
            ],
            "held_out": held_out,
        },
        "threshold": held_out["confusion"]["threshold"],
        "threshold_source": THRESHOLD_FROM_COSTS if choice else THRESHOLD_FROM_DEFAULT,
        "threshold_choice": choice.summary if choice else None,
        "comparison": None,  # filled in when there is a model to compare with
        "schema": learn_schema(train_frame),
        "drift_reference": reference_from(train_frame),
    }


def run(args: argparse.Namespace) -> int:
    data_path = resolve_data_path(args.data)
    frame = load_clean(data_path)
    print(f"Data: {data_path} ({len(frame):,} customers, churn rate {frame[TARGET].mean():.1%})")
    full_train, test = split(frame)
    # A named model to compare with is read first, so a wrong path stops before any training.
    named = load_baseline(Path(args.compare_with), test) if args.compare_with else None
    runs = []
    for C in args.C_values:
        result = cross_validate(full_train, C, args.folds)
        for number, fold_auc in enumerate(result.fold_aucs, start=1):
            print(f"  C={C} fold {number}: AUC {fold_auc:.3f}")
        print(f"C={C} {result.mean:.3f} ± {result.std:.3f}")
        runs.append(result)
    best = max(runs, key=lambda r: r.mean)
    output = Path(args.output or model_filename(best.C))
    baseline = named if args.compare_with else existing_baseline(output, test)
    dv, model = fit(full_train, best.C)
    churned, probabilities = test[TARGET].to_numpy(), predict(dv, model, test)
    choice = None
    if args.costs:
        choice = choose_threshold(args.costs, full_train[TARGET].to_numpy(), best.out_of_fold)
        held_out_profits = chosen_and_default(
            args.costs, churned, probabilities, choice.threshold, prefix="held_out_"
        )
        choice.summary.update(held_out_profits)  # the search never saw the held-out split
    held_out = evaluate(churned, probabilities, choice.threshold if choice else DEFAULT_THRESHOLD)
    print(
        f"Final model C={best.C} on {len(full_train):,} customers: test AUC {held_out['auc']:.3f}"
    )
    print(choice.describe() if choice else f"Threshold {DEFAULT_THRESHOLD} (default: no costs)")
    metadata = build_metadata(data_path, frame, full_train, runs, args.folds, held_out, choice)
    if baseline:
        metadata["comparison"] = compare(
            baseline, churned, probabilities, held_out, args.auc_tolerance, args.force
        )
        print(describe_comparison(metadata["comparison"], held_out["auc"]))
    raw, metadata = artifact.pack(output, dv, model, metadata)
    page = report.for_training(metadata, dv, model, churned, probabilities, baseline, choice)
    if baseline and metadata["comparison"]["verdict"] == "refused":
        page.write(report_path(output, refused=True))
        print(
            f"refused: the new model's held-out AUC is more than {args.auc_tolerance} below "
            f"{baseline.path}'s, which stays as it was; see {report_path(output, refused=True)}, "
            "or save it anyway with --force",
            file=sys.stderr,
        )
        return EXIT_REFUSED
    artifact.write(output, raw, metadata)
    page.write(report_path(output))
    print(f"Saved {output}, {output.with_suffix('.json')} and {report_path(output)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except (DataFileError, ModelFileError, ConfigError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
