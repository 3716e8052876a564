"""``python -m churn.drift --input customers.csv``: drift of a file of customers, as JSON and HTML.

Each row is validated exactly as /predict validates a customer; rows that fail are counted by
field and reason (a contract type never seen in training shows as ``unseen_value``), the rest
are binned with the model's frozen reference and compared with churn/drift.py's PSI, the same
numbers GET /drift and the Prometheus rules give. The HTML page is self-contained: one chart
per feature (training share vs this file's share per bin), inlined as SVG.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
from markupsafe import Markup

from churn import charts
from churn.artifact import ModelFileError, write_atomically
from churn.config import DEFAULT_MODEL_FILE
from churn.data import DataFileError, load_raw
from churn.drift import EMPTY_SHARE, MIN_ROWS, feature_drift
from churn.metrics import REASONS, UNSEEN_VALUE
from churn.predictor import Predictor
from churn.report import Report

PSI_ALERT = 0.2  # the alert rule's threshold (monitoring/rules/alerts.yml)


def drift_of_file(input_path: Path, model: Predictor) -> dict[str, Any]:
    """The drift report for the customers in ``input_path`` against ``model``'s reference."""
    if model.drift_bins is None:
        raise ModelFileError(f"{model.metadata.get('artifact_file')} has no drift bins; retrain.")
    records = load_raw(input_path).to_dict(orient="records")
    checked = model.validator.check_json(records)
    scored = checked.rows(checked.valid)
    rejections = Counter((p.field, REASONS.get(p.kind, "invalid")) for p in checked.problems)
    counts = model.drift_bins.by_feature(model.drift_bins.counts(scored))
    features = {}
    for name, feature in model.drift_bins.reference.items():
        features[name] = feature_drift(feature, counts[name], rejections[name, UNSEEN_VALUE])
        features[name]["reference"] = dict(zip(feature.bins, feature.shares, strict=True))
    rejected: dict[str, dict[str, int]] = {}
    for (field, reason), count in sorted(rejections.items()):
        rejected.setdefault(field, {})[reason] = count
    return {
        "input": str(input_path),
        "model_version": model.version,
        "rows": len(records),
        "scored_rows": len(scored.ids),
        "rejected_rows": len(records) - len(scored.ids),
        "rejections": rejected,
        "min_rows": MIN_ROWS,
        "empty_share": EMPTY_SHARE,
        "features": features,
    }


def page(report: dict[str, Any], features: list[tuple[str, Any]]) -> Report:
    """A page with a PSI table and one bar chart per feature; no external resources."""
    svgs = {}
    for name, view in features:
        rows = max(view["rows"], 1)
        shares = {b: (view["reference"][b], count / rows) for b, count in view["bins"].items()}
        svgs[name] = Markup(charts.drift(name, shares))  # noqa: S704 - matplotlib escapes its text
    title = f"Drift of {Path(report['input']).name}"
    return Report.of(
        "drift.html", {}, title=title, report=report, features=features, svgs=svgs, alert=PSI_ALERT
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m churn.drift",
        description="PSI per feature of a customer file against the model's training data.",
    )
    parser.add_argument("--input", required=True, help="CSV of customers (the Telco layout)")
    parser.add_argument("--model", default=DEFAULT_MODEL_FILE, help="model file (its .json too)")
    parser.add_argument(
        "--output", default="drift-report", help="writes OUTPUT.json and OUTPUT.html"
    )
    args = parser.parse_args(argv)
    try:
        report = drift_of_file(Path(args.input), Predictor.load(Path(args.model)))
    except (DataFileError, ModelFileError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    output = Path(args.output)
    # The most drifted first; those without a PSI (too few rows) last.
    features = sorted(report["features"].items(), key=lambda item: -(item[1]["psi"] or 0.0))
    write_atomically(output.with_suffix(".json"), orjson.dumps(report, option=orjson.OPT_INDENT_2))
    page(report, features).write(output.with_suffix(".html"))
    for name, view in features:
        psi = "n/a (too few rows)" if view["psi"] is None else f"{view['psi']:.3f}"
        print(f"{name:18} PSI {psi}")
    print(f"Wrote {output.with_suffix('.json')} and {output.with_suffix('.html')}")
    return 0
