"""The retention-offer economics: what a threshold earns, and the threshold that earns most.

Every customer scored at or above the threshold gets an offer that costs ``offer_cost``; a
churner who gets one stays with probability ``offer_acceptance`` and is then worth
``customer_value``. A threshold's expected profit is the sum over offered customers of
``churned × acceptance × value − cost``. Thresholds are searched on a grid of hundredths: finer
steps would only fit the noise of one data set.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from churn.artifact import DEFAULT_THRESHOLD

# Hundredths from 0 to 1: the grid includes the default, so costs never choose worse than it.
THRESHOLD_GRID = np.round(np.linspace(0.0, 1.0, 101), 2)
OPTIONS = ("--offer-cost", "--customer-value", "--offer-acceptance")


@dataclass(frozen=True)
class Costs:
    offer_cost: float
    customer_value: float
    offer_acceptance: float


def add_cost_options(parser: argparse.ArgumentParser, title: str) -> None:
    costs = parser.add_argument_group(title)
    costs.add_argument("--offer-cost", type=float, help="what one retention offer costs")
    costs.add_argument("--customer-value", type=float, help="what a kept churner is worth")
    costs.add_argument(
        "--offer-acceptance", type=float, help="probability a churner who gets an offer stays"
    )


def costs_from(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Costs | None:
    """The cost options as ``Costs`` (None when none is given); a usage error names a bad one."""
    given = {option: getattr(args, option[2:].replace("-", "_")) for option in OPTIONS}
    missing = [option for option, value in given.items() if value is None]
    if len(missing) == len(OPTIONS):
        return None
    if missing:
        parser.error(f"{', '.join(missing)} missing: the costs need all of {', '.join(OPTIONS)}")
    for option in ("--offer-cost", "--customer-value"):
        if not (math.isfinite(given[option]) and given[option] >= 0):
            parser.error(f"{option} must be a finite number >= 0, got {given[option]:g}")
    if not 0 <= args.offer_acceptance <= 1:  # NaN fails this too
        parser.error(
            f"--offer-acceptance is a probability from 0 to 1, got {args.offer_acceptance:g}"
        )
    return Costs(*given.values())


def offer_values(costs: Costs, churned: np.ndarray) -> np.ndarray:
    """What an offer to each customer is expected to earn: the one formula of this module."""
    return churned * costs.offer_acceptance * costs.customer_value - costs.offer_cost


def offers_profit(costs: Costs, churned: np.ndarray, offered: np.ndarray) -> dict[str, float]:
    """The expected profit of the offers in ``offered``, given who churned."""
    return {
        "profit": float(offer_values(costs, churned)[offered].sum()),
        "offers": int(offered.sum()),
    }


def chosen_and_default(
    costs: Costs, churned: np.ndarray, probabilities: np.ndarray, threshold: float, prefix: str
) -> dict[str, float]:
    """Profit and offers at ``threshold`` and at the default, as the metadata names them."""
    figures = {}
    for suffix, cut in (("", threshold), ("_at_default", DEFAULT_THRESHOLD)):
        for name, value in offers_profit(costs, churned, probabilities >= cut).items():
            figures[f"{prefix}{name}{suffix}"] = value
    return figures


def choose_threshold(
    costs: Costs, churned: np.ndarray, out_of_fold: np.ndarray
) -> tuple[float, dict[str, Any], np.ndarray]:
    """The most profitable grid threshold on out-of-fold scores, what the metadata keeps of the
    choice, and the profit at each grid threshold (the report's chart).

    On a tie the highest threshold wins: the same money with the fewest offers.
    """
    offered = out_of_fold[np.newaxis, :] >= THRESHOLD_GRID[:, np.newaxis]
    curve = offered.astype(np.float64) @ offer_values(costs, churned)
    threshold = float(THRESHOLD_GRID[np.flatnonzero(curve == curve.max())[-1]])
    summary = {
        **asdict(costs),
        "customers": len(out_of_fold),
        **chosen_and_default(costs, churned, out_of_fold, threshold, prefix=""),
    }
    return threshold, summary, curve


def describe_choice(threshold: float, summary: dict[str, Any] | None) -> str:
    if summary is None:
        return f"Threshold {DEFAULT_THRESHOLD} (default: no costs)"
    return (
        f"Threshold {threshold:g} from costs: expected profit {summary['profit']:,.0f} on "
        f"{summary['customers']:,} out-of-fold customers ({summary['offers']:,} offers) vs "
        f"{summary['profit_at_default']:,.0f} at {DEFAULT_THRESHOLD} "
        f"({summary['offers_at_default']:,})"
    )
