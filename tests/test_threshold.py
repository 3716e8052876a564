"""The threshold chosen from costs: the search, its independent recomputation, bad options,
and where the service and its pages say the threshold in force comes from."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold, cross_val_predict, train_test_split
from sklearn.pipeline import make_pipeline

from churn.app import create_app
from churn.config import Settings
from churn.data import load_clean
from churn.features import FEATURE_FIELDS
from churn.profit import Costs, choose_threshold
from churn.training import main
from tests.conftest import EXAMPLE_COSTS, make_app
from tests.synthetic import raw_frame, write_csv


def brute_force_best(costs: dict, churned, probabilities) -> tuple[float, float, float]:
    """(threshold, its profit, the profit at 0.5), one threshold and one customer at a time."""
    gain = costs["offer_acceptance"] * costs["customer_value"]

    def profit(threshold: float) -> float:
        return sum(
            (gain if churn else 0.0) - costs["offer_cost"]
            for churn, p in zip(churned, probabilities, strict=True)
            if p >= threshold
        )

    best_threshold, best_profit = 0.0, -np.inf
    for step in range(101):
        threshold = step / 100
        value = profit(threshold)
        if value >= best_profit:  # ">=": the highest threshold wins a tie
            best_threshold, best_profit = threshold, value
    return best_threshold, best_profit, profit(0.5)


def test_a_small_case_worked_by_hand():
    # Per offer: a churner brings 0.5 x 10 - 1 = +4, a stayer -1. Offering to the top three
    # (scores 0.9, 0.35, 0.3) earns 4 + 4 - 1 = 7; the top two earn 8; the top one 4.
    costs = Costs(offer_cost=1, customer_value=10, offer_acceptance=0.5)
    churned, scores = np.array([1, 1, 0, 0]), np.array([0.9, 0.35, 0.3, 0.1])
    threshold, summary, _ = choose_threshold(costs, churned, scores)
    assert threshold == 0.35  # the highest of 0.31 ... 0.35, which all offer to two
    assert summary["profit"] == 8 and summary["offers"] == 2
    assert summary["profit_at_default"] == 4 and summary["offers_at_default"] == 1


def test_when_no_offer_pays_the_threshold_offers_to_nobody():
    costs = Costs(offer_cost=10, customer_value=10, offer_acceptance=0.5)
    threshold, summary, _ = choose_threshold(costs, np.array([1, 0, 1]), np.array([0.9, 0.6, 0.2]))
    assert threshold == 1.0 and summary["offers"] == 0
    assert summary["profit"] == 0


def test_the_saved_threshold_is_recomputed_independently_from_out_of_fold_scores(
    costs_model, real_data
):
    metadata = json.loads(costs_model.with_suffix(".json").read_text())
    frame = load_clean(real_data)
    train, _ = train_test_split(frame, test_size=0.2, random_state=1)
    pipeline = make_pipeline(
        DictVectorizer(sparse=False),
        LogisticRegression(C=1.0, solver="newton-cholesky", max_iter=1000),
    )
    out_of_fold = cross_val_predict(
        pipeline,
        train[list(FEATURE_FIELDS)].to_dict(orient="records"),
        train["churn"].to_numpy(),
        cv=KFold(5, shuffle=True, random_state=1),
        method="predict_proba",
    )[:, 1]
    threshold, profit, profit_at_half = brute_force_best(
        EXAMPLE_COSTS, train["churn"].to_numpy(), out_of_fold
    )
    assert metadata["threshold"] == threshold
    assert metadata["threshold_source"] == "costs"
    choice = metadata["threshold_choice"]
    assert {key: choice[key] for key in EXAMPLE_COSTS} == EXAMPLE_COSTS
    assert choice["profit"] == pytest.approx(profit)
    assert choice["profit_at_default"] == pytest.approx(profit_at_half)
    assert choice["customers"] == len(train)
    # With the README's costs the threshold falls well below 0.5 and earns more than 0.5 does.
    assert threshold < 0.4 and profit > profit_at_half


@pytest.mark.parametrize(
    ("options", "named"),
    [
        (
            ["--offer-cost", "-1", "--customer-value", "800", "--offer-acceptance", "0.3"],
            "--offer-cost",
        ),
        (
            ["--offer-cost", "5", "--customer-value", "nan", "--offer-acceptance", "0.3"],
            "--customer-value",
        ),
        (
            ["--offer-cost", "5", "--customer-value", "800", "--offer-acceptance", "1.5"],
            "--offer-acceptance",
        ),
        (
            ["--offer-cost", "5", "--customer-value", "800", "--offer-acceptance", "-0.1"],
            "--offer-acceptance",
        ),
        (["--offer-cost", "5", "--customer-value", "800"], "--offer-acceptance"),
        (["--offer-cost", "5", "--offer-acceptance", "x"], "--offer-acceptance"),
    ],
)
def test_bad_costs_exit_2_naming_the_option(options, named, tmp_path, capsys):
    output = tmp_path / "m.bin"
    with pytest.raises(SystemExit) as exit_info:
        main(["--data", str(tmp_path / "unused.csv"), "--output", str(output), *options])
    assert exit_info.value.code == 2
    assert named in capsys.readouterr().err
    assert not output.exists()


def test_without_costs_the_threshold_stays_the_default(tmp_path):
    output = tmp_path / "m.bin"
    assert (
        main(["--data", write_csv(tmp_path / "d.csv", raw_frame(300)), "--output", str(output)])
        == 0
    )
    metadata = json.loads(output.with_suffix(".json").read_text())
    assert (metadata["threshold"], metadata["threshold_source"]) == (0.5, "default")
    assert metadata["threshold_choice"] is None


def test_model_endpoint_and_pages_say_where_the_threshold_comes_from(costs_model):
    saved = json.loads(costs_model.with_suffix(".json").read_text())
    chosen = create_app(Settings(model_file=costs_model)).test_client()
    body = chosen.get("/model").get_json()
    assert (body["threshold"], body["threshold_source"]) == (saved["threshold"], "costs")
    assert body["threshold_choice"]["offer_cost"] == EXAMPLE_COSTS["offer_cost"]
    page = chosen.get("/").get_data(as_text=True)
    assert (
        f"<strong>{saved['threshold']:g}</strong>" in page
        and "chosen at training from costs" in page
    )
    assert "offer cost 50" in page and "customer value 800" in page

    overridden = create_app(Settings(model_file=costs_model, threshold=0.7)).test_client()
    body = overridden.get("/model").get_json()
    assert (body["threshold"], body["threshold_source"]) == (0.7, "CHURN_THRESHOLD")
    assert "set by CHURN_THRESHOLD" in overridden.get("/").get_data(as_text=True)

    default = make_app().test_client()
    assert default.get("/model").get_json()["threshold_source"] == "default"
    assert "the course&#39;s default" in default.get("/").get_data(as_text=True)
