"""The retention-offer economics: what a threshold earns, and the threshold that earns most.

Every customer scored at or above the threshold gets an offer that costs ``offer_cost``; a
churner who gets one stays with probability ``offer_acceptance`` and is then worth
``customer_value``. A threshold's expected profit is the sum over offered customers of
``churned × acceptance × value − cost``. Thresholds are searched on a grid of hundredths: finer
steps would only fit the noise of one data set.
"""

from __future__ import annotations

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

    def problems(self) -> list[tuple[str, str]]:
        """(option, what is wrong) for each value the profit model cannot use."""
        found = [
            (option, f"must be a finite number >= 0, got {value:g}")
            for option, value in (
                ("--offer-cost", self.offer_cost),
                ("--customer-value", self.customer_value),
            )
            if not (math.isfinite(value) and value >= 0)
        ]
        if not 0 <= self.offer_acceptance <= 1:  # NaN fails this too
            found.append(
                (
                    "--offer-acceptance",
                    f"is a probability from 0 to 1, got {self.offer_acceptance:g}",
                )
            )
        return found

    def as_dict(self) -> dict[str, float]:
        return {
            "offer_cost": self.offer_cost,
            "customer_value": self.customer_value,
            "offer_acceptance": self.offer_acceptance,
        }


def offer_values(costs: Costs, churned: np.ndarray) -> np.ndarray:
    """What an offer to each customer is expected to earn: the one formula of this module."""
    return churned * costs.offer_acceptance * costs.customer_value - costs.offer_cost


def profits(
    costs: Costs, churned: np.ndarray, probabilities: np.ndarray, thresholds: np.ndarray
) -> np.ndarray:
    """Expected profit of offering to everyone at or above each threshold."""
    offered = probabilities[np.newaxis, :] >= thresholds[:, np.newaxis]
    return offered.astype(np.float64) @ offer_values(costs, churned)


def realized(costs: Costs, churned: np.ndarray, offered: np.ndarray) -> dict[str, float]:
    """The expected profit of offers already made (``offered``), on the observed outcomes."""
    return {
        "profit": float(offer_values(costs, churned)[offered].sum()),
        "offers": int(offered.sum()),
    }


def outcome(
    costs: Costs, churned: np.ndarray, probabilities: np.ndarray, threshold: float
) -> dict[str, float]:
    """The expected profit and the number of offers at one threshold."""
    profit = profits(costs, churned, probabilities, np.array([threshold]))[0]
    return {"profit": float(profit), "offers": int((probabilities >= threshold).sum())}


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
    curve = profits(costs, churned, out_of_fold, THRESHOLD_GRID)
    threshold = float(THRESHOLD_GRID[np.flatnonzero(curve == curve.max())[-1]])
    chosen = outcome(costs, churned, out_of_fold, threshold)
    default = outcome(costs, churned, out_of_fold, DEFAULT_THRESHOLD)
    summary = {
        **costs.as_dict(),
        "customers": len(out_of_fold),
        "profit": chosen["profit"],
        "offers": chosen["offers"],
        "profit_at_default": default["profit"],
        "offers_at_default": default["offers"],
    }
    return ThresholdChoice(threshold, summary, curve)


def held_out_check(
    costs: Costs, churned: np.ndarray, probabilities: np.ndarray, threshold: float
) -> dict[str, float]:
    """The same comparison on the held-out split, which the search never saw."""
    chosen = outcome(costs, churned, probabilities, threshold)
    default = outcome(costs, churned, probabilities, DEFAULT_THRESHOLD)
    return {
        "held_out_profit": chosen["profit"],
        "held_out_offers": chosen["offers"],
        "held_out_profit_at_default": default["profit"],
        "held_out_offers_at_default": default["offers"],
    }
