"""``python -m churn.drift --input customers.csv``: drift of a file of customers, as JSON and HTML.

Each row is validated exactly as /predict validates a customer; rows that fail are counted by
field and reason (a contract type never seen in training shows as ``unseen_value``), the rest
are binned with the model's frozen reference and compared with churn/drift.py's PSI, the same
numbers GET /drift and the Prometheus rules give. The HTML page is self-contained: one chart
per feature (training share vs this file's share per bin), inlined as SVG.
"""

from __future__ import annotations

import argparse
import html
import io
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from churn.artifact import ModelFileError, write_atomically
from churn.config import DEFAULT_MODEL_FILE
from churn.data import DataFileError, load_raw
from churn.drift import EMPTY_SHARE, MIN_ROWS, feature_drift
from churn.metrics import REASONS, UNSEEN_VALUE
from churn.predictor import Predictor

PSI_ALERT = 0.2  # the alert rule's threshold (monitoring/rules/alerts.yml)


def drift_of_file(input_path: Path, model: Predictor) -> dict[str, Any]:
    """The drift report for the customers in ``input_path`` against ``model``'s reference."""
    if model.drift_bins is None:
        raise ModelFileError(f"{model.metadata.get('artifact_file')} has no drift bins; retrain.")
    records = load_raw(input_path).to_dict(orient="records")
    checked = model.validator.check_json(records)
    scored = checked.rows(checked.valid)
    rejections = Counter((p.field, REASONS.get(p.kind, "invalid")) for p in checked.problems)
    counts = model.drift_bins.counts(scored).tolist()
    features, first = {}, 0
    for name, feature in model.drift_bins.reference.items():
        view = feature_drift(feature, counts[first : first + len(feature.bins)],
                             rejections[name, UNSEEN_VALUE])  # fmt: skip
        view["reference"] = dict(zip(feature.bins, feature.shares, strict=True))
        features[name] = view
        first += len(feature.bins)
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


def render_html(report: dict[str, Any]) -> str:
    """A page with a PSI table and one bar chart per feature; no external resources."""
    rows = "".join(
        f"<tr class='{_level(view['psi'])}'><td>{html.escape(name)}</td>"
        f"<td>{_psi_text(view['psi'])}</td><td>{view['rows']}</td>"
        f"<td>{view['outside_share']:.2%}</td></tr>"
        for name, view in _by_psi(report["features"])
    )
    charts = "".join(
        f"<figure><figcaption>{html.escape(name)}: PSI {_psi_text(view['psi'])}</figcaption>"
        f"{_chart_svg(name, view)}</figure>"
        for name, view in _by_psi(report["features"])
    )
    title = f"Drift of {html.escape(Path(report['input']).name)}"
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title><style>"
        "body{font-family:sans-serif;margin:2em}td,th{padding:2px 10px;text-align:left}"
        ".alert{background:#fdd}.none{color:#888}figure{display:inline-block;margin:1em}"
        "</style></head><body>"
        f"<h1>{title}</h1><p>Model {report['model_version'][:12]}; {report['scored_rows']} rows "
        f"scored, {report['rejected_rows']} rejected. PSI over the model's frozen training bins, "
        f"empty bins counted as {report['empty_share']:g}; none under {report['min_rows']} rows; "
        f"alert above {PSI_ALERT}.</p>"
        "<table><tr><th>feature</th><th>PSI</th><th>rows</th><th>outside training</th></tr>"
        f"{rows}</table>{charts}</body></html>"
    )


def _by_psi(features: dict[str, Any]) -> list[tuple[str, Any]]:
    return sorted(features.items(), key=lambda item: -(item[1]["psi"] or 0.0))


def _level(value: float | None) -> str:
    return "none" if value is None else "alert" if value > PSI_ALERT else "ok"


def _psi_text(value: float | None) -> str:
    return "n/a (too few rows)" if value is None else f"{value:.3f}"


def _chart_svg(name: str, view: dict[str, Any]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    bins = list(view["bins"])
    rows = max(view["rows"], 1)
    live = [view["bins"][b] / rows for b in bins]
    reference = [view["reference"][b] for b in bins]
    figure, axes = plt.subplots(figsize=(6, 2.6))
    positions = range(len(bins))
    axes.bar([p - 0.2 for p in positions], reference, width=0.4, label="training")
    axes.bar([p + 0.2 for p in positions], live, width=0.4, label="this file")
    axes.set_xticks(list(positions), bins, rotation=45, ha="right", fontsize=7)
    axes.set_ylabel("share")
    axes.set_title(name, fontsize=9)
    axes.legend(fontsize=7)
    figure.tight_layout()
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg")
    plt.close(figure)
    return buffer.getvalue().split("?>", 1)[-1]  # drop the XML declaration: inlined in HTML


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m churn.drift",
        description="PSI per feature of a customer file against the model's training data.",
    )
    parser.add_argument("--input", required=True, help="CSV of customers (the Telco layout)")
    parser.add_argument("--model", default=DEFAULT_MODEL_FILE, help="model file (its .json too)")
    parser.add_argument(
        "--output", default="drift-report", help="writes OUTPUT.json and OUTPUT.html"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        report = drift_of_file(Path(args.input), Predictor.load(Path(args.model)))
    except (DataFileError, ModelFileError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    output = Path(args.output)
    write_atomically(output.with_suffix(".json"), orjson.dumps(report, option=orjson.OPT_INDENT_2))
    write_atomically(output.with_suffix(".html"), render_html(report).encode())
    for name, view in _by_psi(report["features"]):
        print(f"{name:18} PSI {_psi_text(view['psi'])}")
    print(f"Wrote {output.with_suffix('.json')} and {output.with_suffix('.html')}")
    return 0
