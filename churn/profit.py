"""The retention-offer economics: what a threshold earns, and the threshold that earns most.

Every customer scored at or above the threshold gets an offer that costs ``offer_cost``; a
churner who gets one stays with probability ``offer_acceptance`` and is then worth
``customer_value``. A threshold's expected profit is the sum over offered customers of
``churned × acceptance × value − cost``. Thresholds are searched on a grid of hundredths: finer
steps would only fit the noise of one data set.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from churn.config import DEFAULT_THRESHOLD

# Hundredths from 0 to 1: the grid includes the default, so costs never choose worse than it.
THRESHOLD_GRID = np.round(np.linspace(0.0, 1.0, 101), 2)


@dataclass(frozen=True)
class Costs:
    offer_cost: float
    customer_value: float
    offer_acceptance: float

    def as_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)


def add_cost_options(parser: argparse.ArgumentParser, title: str) -> None:
    costs = parser.add_argument_group(title)
    costs.add_argument("--offer-cost", type=float, help="what one retention offer costs")
    costs.add_argument("--customer-value", type=float, help="what a kept churner is worth")
    costs.add_argument(
        "--offer-acceptance", type=float, help="probability a churner who gets an offer stays"
    )


def costs_from(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Costs | None:
    """The cost options as ``Costs`` (None when none is given); a usage error names a bad one."""
    given = {
        "--offer-cost": args.offer_cost,
        "--customer-value": args.customer_value,
        "--offer-acceptance": args.offer_acceptance,
    }
    if all(value is None for value in given.values()):
        return None
    missing = [option for option, value in given.items() if value is None]
    if missing:
        parser.error(f"{', '.join(missing)} missing: the costs need all of {', '.join(given)}")
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
    chosen = offers_profit(costs, churned, probabilities >= threshold)
    default = offers_profit(costs, churned, probabilities >= DEFAULT_THRESHOLD)
    return {
        f"{prefix}profit": chosen["profit"],
        f"{prefix}offers": chosen["offers"],
        f"{prefix}profit_at_default": default["profit"],
        f"{prefix}offers_at_default": default["offers"],
    }


@dataclass(frozen=True)
class ThresholdChoice:
    threshold: float
    summary: dict[str, Any]  # what the metadata keeps: the costs and the profits they lead to
    curve: np.ndarray  # profit at each THRESHOLD_GRID value, for the report's chart

    def describe(self) -> str:
        s = self.summary
        return (
            f"Threshold {self.threshold:g} from costs: expected profit {s['profit']:,.0f} on "
            f"{s['customers']:,} out-of-fold customers ({s['offers']:,} offers) vs "
            f"{s['profit_at_default']:,.0f} at {DEFAULT_THRESHOLD} ({s['offers_at_default']:,})"
        )


def choose_threshold(costs: Costs, churned: np.ndarray, out_of_fold: np.ndarray) -> ThresholdChoice:
    """The most profitable grid threshold on out-of-fold scores, and the whole profit curve.

    On a tie the highest threshold wins: the same money with the fewest offers.
    """
    offered = out_of_fold[np.newaxis, :] >= THRESHOLD_GRID[:, np.newaxis]
    curve = offered.astype(np.float64) @ offer_values(costs, churned)
    threshold = float(THRESHOLD_GRID[np.flatnonzero(curve == curve.max())[-1]])
    summary = {
        **costs.as_dict(),
        "customers": len(out_of_fold),
        **chosen_and_default(costs, churned, out_of_fold, threshold, prefix=""),
    }
    return ThresholdChoice(threshold, summary, curve)
