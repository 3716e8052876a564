"""``python train.py``: clean the data, cross-validate, train, evaluate, compare, report and save.

Everything a run measures is computed once here and stored in the metadata; the report renders
that metadata. The model is the course's DictVectorizer + LogisticRegression pair.
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

import numpy as np
import pandas as pd
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import KFold, cross_val_predict, train_test_split
from sklearn.pipeline import Pipeline, make_pipeline

from churn import artifact, charts, config, profit, report
from churn.artifact import THRESHOLD_FROM_COSTS, THRESHOLD_FROM_DEFAULT, ModelFileError
from churn.data import DataFileError, load_clean, resolve_data_path, sha256_of
from churn.drift import reference_from
from churn.evaluation import DEFAULT_AUC_TOLERANCE, curves, evaluate
from churn.features import FEATURE_FIELDS, TARGET, learn_schema
from churn.predictor import Predictor

EXIT_REFUSED = 3  # the new model is worse than the current one; nothing was replaced
LIBRARIES = ("scikit-learn", "numpy", "pandas", "matplotlib")  # their versions go in the metadata
RANDOM_STATE = 1  # the course's, for the split and the folds


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="train.py",
        description="Train the churn model (DictVectorizer + LogisticRegression), report on it "
        "and save it.",
    )
    default_data = f"$CHURN_DATA, else {config.DEFAULT_DATA_PATH}, downloaded when missing"
    parser.add_argument("--data", help=f"the Telco churn CSV (default: {default_data})")
    parser.add_argument(
        "--C",
        type=float,
        nargs="+",
        default=[1.0],
        dest="C_values",
        metavar="C",
        help="inverse regularization strength; several values keep the best mean CV AUC "
        "(default: %(default)s)",
    )
    parser.add_argument("--folds", type=int, default=5, help="cross-validation folds (default: 5)")
    parser.add_argument("--output", help="model file to write (default: model_C={C}.bin)")
    profit.add_cost_options(
        parser, "threshold from costs (all three, or none for the course's 0.5)"
    )
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
    args.costs = profit.costs_from(args, parser)
    return args


def feature_dicts(frame: pd.DataFrame) -> list[dict]:
    return frame[list(FEATURE_FIELDS)].to_dict(orient="records")


def pipeline(C: float) -> Pipeline:
    """The course's pair. Its lbfgs solver fails to converge on these unscaled features (charges
    run to thousands, one-hot columns are 0/1); Newton-Cholesky reaches the same optimum."""
    model = LogisticRegression(C=C, solver="newton-cholesky", max_iter=1000)
    return make_pipeline(DictVectorizer(sparse=False), model)


def split(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The course's split: 20% held out for the final test."""
    full_train, test = train_test_split(frame, test_size=0.2, random_state=RANDOM_STATE)
    return full_train.reset_index(drop=True), test.reset_index(drop=True)


def cross_validate(frame: pd.DataFrame, C: float, folds: int) -> tuple[dict, np.ndarray]:
    """One C's fold AUCs as the metadata keeps them, and every row's out-of-fold probability
    (the threshold search's honest scores, without touching the held-out split)."""
    churned, kfold = frame[TARGET].to_numpy(), KFold(folds, shuffle=True, random_state=RANDOM_STATE)
    out_of_fold = cross_val_predict(
        pipeline(C), feature_dicts(frame), churned, cv=kfold, method="predict_proba"
    )[:, 1]
    aucs = [float(roc_auc_score(churned[v], out_of_fold[v])) for _, v in kfold.split(frame)]
    for number, auc in enumerate(aucs, start=1):
        print(f"  C={C} fold {number}: AUC {auc:.3f}")
    run = {"C": C, "fold_aucs": aucs, "mean": float(np.mean(aucs)), "std": float(np.std(aucs))}
    print(f"C={C} {run['mean']:.3f} ± {run['std']:.3f}")
    return run, out_of_fold


def current_model(path: Path) -> Predictor | None:
    """The model already at the output path, if readable: an unreadable one (or one trained with
    other fields) is reported and replaced, since retraining is how such a file gets fixed."""
    if not path.exists():
        return None
    try:
        return Predictor.load(path)
    except ModelFileError as error:
        print(f"warning: not comparing with the existing {path}: {error}")
        return None


def compare(
    old: Predictor,
    path: Path,
    test: pd.DataFrame,
    new_probabilities: np.ndarray,
    new: dict[str, Any],
    args: argparse.Namespace,
) -> tuple[dict[str, Any], charts.Series]:
    """The old model (read by the service's own loader, scored by its scorer) against the new
    one (its held-out figures ``new``) on the same customers, and the old one's chart series.
    The verdict is ``refused`` when the new AUC is more than the tolerance lower."""
    churned = test[TARGET].to_numpy()
    probabilities = old.scorer.probabilities(old.validator.check_json(feature_dicts(test)))
    old_held_out = evaluate(churned, probabilities, old.threshold)
    difference = new["auc"] - old_held_out["auc"]
    new_flags = new_probabilities >= new["confusion"]["threshold"]
    changes = (probabilities >= old.threshold) != new_flags  # flagged by one model only
    worse = "forced" if args.force else "refused"
    comparison = {
        "baseline_file": str(path),
        "baseline_version": old.version,
        "baseline_trained_at": old.metadata.get("created_at", "unknown"),
        "baseline_threshold": old.threshold,
        "baseline_held_out": old_held_out,
        "auc_difference": difference,
        "decision_changes": int(changes.sum()),
        "tolerance": args.auc_tolerance,
        "verdict": "accepted" if difference >= -args.auc_tolerance else worse,
    }
    print(
        f"Compared with {path} ({old.version[:12]}) on the held-out split: AUC "
        f"{old_held_out['auc']:.4f} -> {new['auc']:.4f} ({difference:+.4f}), "
        f"{comparison['decision_changes']:,} decisions change"
    )
    return comparison, charts.Series("current", old_held_out, curves(churned, probabilities))


def build_metadata(
    data_path: Path,
    frame: pd.DataFrame,
    train_frame: pd.DataFrame,
    runs: list[dict],
    folds: int,
    held_out: dict[str, Any],
    choice: dict[str, Any] | None,
) -> dict[str, Any]:
    best = max(runs, key=lambda run: run["mean"])
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
        "params": {"C": best["C"], "folds": folds, "solver": "newton-cholesky"},
        "metrics": {
            "cv_auc_mean": best["mean"],
            "cv_auc_std": best["std"],
            "cv_fold_aucs": best["fold_aucs"],
            "test_auc": held_out["auc"],
        },
        "evaluation": {"cross_validation": runs, "held_out": held_out},
        "threshold": held_out["confusion"]["threshold"],
        "threshold_source": THRESHOLD_FROM_COSTS if choice else THRESHOLD_FROM_DEFAULT,
        "threshold_choice": choice,
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
    old_path = Path(args.compare_with) if args.compare_with else None
    old = Predictor.load(old_path) if old_path else None
    results = [cross_validate(full_train, C, args.folds) for C in args.C_values]
    best, out_of_fold = max(results, key=lambda result: result[0]["mean"])
    output = Path(args.output or artifact.model_filename(best["C"]))
    if old_path is None:
        old_path, old = output, current_model(output)
    final = pipeline(best["C"]).fit(feature_dicts(full_train), full_train[TARGET].to_numpy())
    churned, probabilities = test[TARGET].to_numpy(), final.predict_proba(feature_dicts(test))[:, 1]
    # The course's 0.5 without costs; with them, the most profitable on the out-of-fold scores.
    threshold, choice, profit_curve = artifact.DEFAULT_THRESHOLD, None, None
    if args.costs is not None:
        threshold, choice, profit_curve = profit.choose_threshold(
            args.costs, full_train[TARGET].to_numpy(), out_of_fold
        )
        # The held-out profits: the search never saw these customers.
        choice |= profit.chosen_and_default(
            args.costs, churned, probabilities, threshold, "held_out_"
        )
    held_out = evaluate(churned, probabilities, threshold)
    auc = held_out["auc"]
    print(f"Final model C={best['C']} on {len(full_train):,} customers: test AUC {auc:.3f}")
    print(profit.describe_choice(threshold, choice))
    runs = [run for run, _ in results]
    metadata = build_metadata(data_path, frame, full_train, runs, args.folds, held_out, choice)
    models = [charts.Series("new" if old else "model", held_out, curves(churned, probabilities))]
    if old:
        comparison, current = compare(old, old_path, test, probabilities, held_out, args)
        metadata["comparison"] = comparison
        models.append(current)
    dv, model = (step for _, step in final.steps)
    raw, metadata = artifact.pack(output, dv, model, metadata)
    weights = dict(zip(dv.feature_names_, map(float, model.coef_[0]), strict=True))
    page = report.for_training(
        metadata, models, weights, old.weights.weights if old else None, profit_curve
    )
    refused = old is not None and metadata["comparison"]["verdict"] == "refused"
    # A refused model's report has a name of its own, beside the current model's.
    page_path = output.with_suffix(".refused.report.html" if refused else ".report.html")
    if refused:
        page.write(page_path)
        print(
            f"refused: the new model's held-out AUC is more than {args.auc_tolerance} below "
            f"{old_path}'s, which stays as it was; see {page_path}, or save it anyway with --force",
            file=sys.stderr,
        )
        return EXIT_REFUSED
    artifact.write(output, raw, metadata)
    page.write(page_path)  # after the model: the current model's report describes it until then
    print(f"Saved {output}, {output.with_suffix('.json')} and {page_path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except (DataFileError, ModelFileError, config.ConfigError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
