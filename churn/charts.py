"""The reports' charts, drawn headless with matplotlib: PNG bytes (inline SVG for the drift page).

Every chart draws numbers it is given (from the metadata, or chart-only curve points); none
computes a figure of its own. With a baseline model, both models share each chart.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: training runs on servers and in CI

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from churn.evaluation import CONFUSION_CELLS

SIZE = (6.4, 4.2)
DPI = 100
COEFFICIENTS_SHOWN = 20


@dataclass(frozen=True)
class Series:
    """One model's held-out results as the charts need them."""

    label: str
    held_out: dict[str, Any]  # evaluation.evaluate's numbers
    curves: dict[str, np.ndarray]  # evaluation.curves' points


def save(figure: Figure, image_format: str = "png") -> bytes:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format=image_format, dpi=DPI)
    plt.close(figure)
    return buffer.getvalue()


def diagonal(axes: Axes, label: str) -> None:
    axes.plot([0, 1], [0, 1], linestyle=":", color="grey", label=label)


def cross_validation(runs: Sequence[dict[str, Any]], chosen_C: float) -> bytes:
    """Each fold's AUC as a dot, and mean ± std as a bar, for every C tried."""
    figure, axes = plt.subplots(figsize=SIZE)
    for position, run in enumerate(runs):
        colour = "C0" if run["C"] == chosen_C else "grey"
        folds = run["fold_aucs"]
        axes.scatter([position] * len(folds), folds, color=colour, alpha=0.5, s=18)
        axes.errorbar(position, run["mean"], yerr=run["std"], fmt="s", color=colour, capsize=6)
    axes.set_xticks(range(len(runs)), [f"C={run['C']:g}" for run in runs])
    axes.set_xlim(-0.7, len(runs) - 0.3)
    axes.set(ylabel="validation AUC", title="Cross-validation: folds (dots), mean ± std (squares)")
    return save(figure)


def roc(models: Sequence[Series]) -> bytes:
    figure, axes = plt.subplots(figsize=SIZE)
    for series in models:
        label = f"{series.label} (AUC {series.held_out['auc']:.3f})"
        axes.plot(series.curves["fpr"], series.curves["tpr"], label=label)
    diagonal(axes, "chance")
    axes.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC, held out")
    axes.legend(loc="lower right")
    return save(figure)


def precision_recall(models: Sequence[Series]) -> bytes:
    figure, axes = plt.subplots(figsize=SIZE)
    for series in models:
        label = f"{series.label} (AP {series.held_out['average_precision']:.3f})"
        axes.plot(series.curves["recall"], series.curves["precision"], label=label)
    rate = models[0].held_out["churn_rate"]
    axes.axhline(rate, linestyle=":", color="grey", label=f"churn rate {rate:.1%}")
    axes.set(xlabel="recall", ylabel="precision", ylim=(0, 1.02))
    axes.set_title("Precision-recall, held out")
    axes.legend(loc="upper right")
    return save(figure)


def calibration(
    models: Sequence[Series], title: str = "Calibration, held out (10 equal-width bins)"
) -> bytes:
    figure, axes = plt.subplots(figsize=SIZE)
    for series in models:
        bins = series.held_out["calibration"]
        label = f"{series.label} (Brier {series.held_out['brier']:.4f})"
        predicted = [b["mean_predicted"] for b in bins]
        axes.plot(predicted, [b["observed_rate"] for b in bins], "o-", label=label)
    diagonal(axes, "perfectly calibrated")
    axes.set(xlabel="mean predicted probability", ylabel="observed churn rate", title=title)
    axes.legend(loc="upper left")
    return save(figure)


def gain(models: Sequence[Series]) -> bytes:
    """Cumulative share of churners caught by the top k tenths of scores, and the lift."""
    figure, (left, right) = plt.subplots(1, 2, figsize=(SIZE[0] * 1.5, SIZE[1]))
    width = 0.8 / len(models)
    for number, series in enumerate(models):
        deciles = series.held_out["lift"]
        shares = [0.0] + [row["decile"] / len(deciles) for row in deciles]
        caught = [0.0] + [row["cumulative_gain"] for row in deciles]
        left.plot(shares, caught, "o-", label=series.label)
        positions = np.arange(1, len(deciles) + 1) + (number - (len(models) - 1) / 2) * width
        right.bar(positions, [row["cumulative_lift"] for row in deciles], width, label=series.label)
    diagonal(left, "random")
    left.set(xlabel="share of customers, highest scores first", ylabel="share of churners caught")
    left.set_title("Cumulative gain")
    left.legend(loc="lower right")
    right.axhline(1.0, linestyle=":", color="grey")
    right.set(xlabel="top k tenths", ylabel="churn rate / overall rate", title="Cumulative lift")
    right.set_xticks(range(1, 11))
    return save(figure)


def confusion(models: Sequence[Series]) -> bytes:
    figure, panels = plt.subplots(1, len(models), figsize=(4.2 * len(models), 3.8), squeeze=False)
    for axes, series in zip(panels[0], models, strict=True):
        matrix = series.held_out["confusion"]
        cells = np.array([matrix[cell] for cell in CONFUSION_CELLS]).reshape(2, 2)
        axes.imshow(cells, cmap="Blues")
        for (row, column), count in np.ndenumerate(cells):
            colour = "white" if count > cells.max() / 2 else "black"
            axes.text(column, row, f"{count:,}", ha="center", va="center", color=colour)
        axes.set_xticks([0, 1], ["no offer", "offer"])
        axes.set_yticks([0, 1], ["stayed", "churned"])
        axes.set_title(f"{series.label}: threshold {matrix['threshold']:g}")
    return save(figure)


def coefficients(weights: Sequence[tuple[str, float]], baseline: dict[str, float] | None) -> bytes:
    """The largest weights by size; the baseline's weight for the same feature beside each."""
    shown = list(weights[:COEFFICIENTS_SHOWN])[::-1]  # largest at the top
    positions = np.arange(len(shown))
    figure, axes = plt.subplots(figsize=(SIZE[0], 0.28 * len(shown) + 1.2))
    height = 0.4 if baseline is not None else 0.8
    colours = ["C3" if weight > 0 else "C2" for _, weight in shown]
    axes.barh(positions, [weight for _, weight in shown], height, color=colours, label="new")
    if baseline is not None:
        old = [baseline.get(name, 0.0) for name, _ in shown]
        axes.barh(positions - height, old, height, color="grey", label="current")
        axes.legend(loc="lower right")
    axes.set_yticks(positions, [name for name, _ in shown])
    axes.axvline(0, color="black", linewidth=0.8)
    axes.set(xlabel="weight (log-odds; red pushes towards churn)")
    axes.set_title(f"Largest {len(shown)} coefficients")
    return save(figure)


def profit(thresholds: np.ndarray, curve: np.ndarray, chosen: float, default: float) -> bytes:
    figure, axes = plt.subplots(figsize=SIZE)
    axes.plot(thresholds, curve, color="C0")
    for threshold, colour, name in ((chosen, "C3", "chosen"), (default, "grey", "default")):
        value = float(curve[np.isclose(thresholds, threshold)][0])
        axes.scatter([threshold], [value], color=colour, zorder=3, s=40)
        label = f"{name} {threshold:g}: {value:,.0f}"
        axes.annotate(label, (threshold, value), textcoords="offset points", xytext=(8, 8))
    axes.axhline(0, color="black", linewidth=0.8)
    low, high = axes.get_ylim()
    axes.set_ylim(low, high + 0.12 * (high - low))  # room for the labels above the peak
    axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))
    axes.set(xlabel="threshold", ylabel="expected profit (out-of-fold)")
    axes.set_title("Expected profit of offering at or above each threshold")
    return save(figure)


def weekly_auc(
    weeks_by_label: dict[str, list[dict[str, Any]]], promised: dict[str, float]
) -> bytes:
    """Each model's AUC week by week with its 95% interval; its promised AUC dashed."""
    figure, axes = plt.subplots(figsize=(SIZE[0] * 1.3, SIZE[1]))
    for number, (label, weeks) in enumerate(weeks_by_label.items()):
        shown = [week for week in weeks if week["auc"] is not None]
        colour = f"C{number}"
        if shown:
            aucs = np.array([week["auc"] for week in shown])
            bounds = np.array([[week["auc_low"], week["auc_high"]] for week in shown], dtype=float)
            # No interval (too few outcomes to draw one; None became NaN): a bar of zero length.
            errors = np.nan_to_num(np.abs(bounds - aucs[:, np.newaxis])).T
            days = [np.datetime64(week["week"]) for week in shown]
            axes.errorbar(days, aucs, yerr=errors, fmt="o-", capsize=4, color=colour, label=label)
        if label in promised:
            axes.axhline(promised[label], linestyle="--", color=colour, label=f"{label} promised")
    axes.axhline(0.5, linestyle=":", color="grey", label="chance")
    axes.set(xlabel="week (Monday, UTC)", ylabel="realized AUC", title="Realized AUC per week")
    # From 0.4 up, lower when an interval reaches below it.
    lows = [w["auc_low"] for ws in weeks_by_label.values() for w in ws if w["auc_low"] is not None]
    axes.set_ylim(max(0.0, min([0.45, *lows]) - 0.05), 1.0)
    axes.legend(loc="lower left", fontsize="small")
    figure.autofmt_xdate()
    return save(figure)


def drift(name: str, shares: dict[str, tuple[float, float]]) -> str:
    """One feature's bins: the training share beside this file's share, as inline SVG."""
    figure, axes = plt.subplots(figsize=(6, 2.6))
    positions = np.arange(len(shares))
    training, live = zip(*shares.values(), strict=True)
    axes.bar(positions - 0.2, training, width=0.4, label="training")
    axes.bar(positions + 0.2, live, width=0.4, label="this file")
    axes.set_xticks(positions, list(shares), rotation=45, ha="right", fontsize=7)
    axes.set_ylabel("share")
    axes.set_title(name, fontsize=9)
    axes.legend(fontsize=7)
    svg = save(figure, "svg").decode()
    return svg.split("?>", 1)[-1]  # drop the XML declaration: the SVG sits inside HTML
