"""Drift: the frozen reference bins, PSI, counting in the service and the file report."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

from churn.columns import Validator
from churn.data import clean
from churn.drift import EMPTY_SHARE, MIN_ROWS, DriftBins, FeatureReference, psi, reference_from
from churn.drift_report import main as report_main
from churn.features import FEATURE_FIELDS, NUMERIC_FIELDS, learn_schema
from tests.conftest import COMMITTED_MODEL
from tests.synthetic import raw_frame, write_csv

# PSI per feature measured on the synthetic tests, printed for the note (pytest -s).
MEASURED: dict[str, dict[str, float]] = {}


@pytest.fixture(scope="module")
def training():
    """Synthetic training customers (the real category mix) and the reference they give."""
    frame = clean(raw_frame(rows=6000, seed=1))
    reference = reference_from(frame)
    return frame, {
        name: FeatureReference.from_json(entry) for name, entry in reference["features"].items()
    }


def psi_per_feature(reference: dict[str, FeatureReference], frame) -> dict[str, float]:
    """PSI of ``frame``'s customers, counted as the service counts them."""
    validator = Validator(learn_schema(frame))
    bins = DriftBins(reference, validator.vocabularies)
    checked = validator.check_json(frame[list(FEATURE_FIELDS)].to_dict(orient="records"))
    counts = bins.by_feature(bins.counts(checked))
    return {name: psi(counts[name], feature.shares) for name, feature in reference.items()}


def test_the_reference_has_quantile_bins_plus_below_and_above(training):
    frame, reference = training
    assert set(reference) == set(FEATURE_FIELDS)
    for name in NUMERIC_FIELDS:
        feature = reference[name]
        assert feature.bins[0] == "below" and feature.bins[-1] == "above"
        assert 8 <= len(feature.bins) - 2 <= 10  # ~10 quantile bins (ties may merge some)
        assert feature.shares[0] == feature.shares[-1] == 0.0  # training is inside its range
        inner = feature.shares[1:-1]
        assert max(inner) < 0.2, inner  # quantile bins hold roughly equal shares
    for feature in reference.values():
        assert sum(feature.shares) == pytest.approx(1.0)
    contract = reference["contract"]
    observed = frame["contract"].value_counts(normalize=True).to_dict()
    assert dict(zip(contract.bins, contract.shares, strict=True)) == pytest.approx(observed)


def test_psi_matches_the_formula_with_the_empty_bin_share():
    assert psi([500, 500], [0.5, 0.5]) == 0.0
    expected = (0.25 - 0.5) * math.log(0.25 / 0.5) + (0.75 - 0.5) * math.log(0.75 / 0.5)
    assert psi([250, 750], [0.5, 0.5]) == pytest.approx(expected)
    # An empty live bin counts as 1e-4 of the rows (README, Monitoring).
    empty = (1e-4 - 0.5) * math.log(1e-4 / 0.5) + (1 - 0.5) * math.log(1 / 0.5)
    assert psi([0, 1000], [0.5, 0.5]) == pytest.approx(empty)
    assert EMPTY_SHARE == 1e-4


def test_no_psi_under_the_minimum_rows():
    assert MIN_ROWS == 500
    assert psi([250, 249], [0.5, 0.5]) is None
    assert psi([250, 250], [0.5, 0.5]) is not None


def test_an_iid_resample_shows_no_drift(training):
    frame, reference = training
    sample = frame.sample(n=2000, replace=True, random_state=7)
    values = psi_per_feature(reference, sample)
    MEASURED["iid resample (2,000 rows)"] = values
    assert all(value < 0.05 for value in values.values()), values


def test_tenure_shifted_by_one_std_drifts_and_nothing_else(training):
    frame, reference = training
    sample = frame.sample(n=2000, replace=True, random_state=8).copy()
    sample["tenure"] = sample["tenure"] + sample["tenure"].std()
    values = psi_per_feature(reference, sample)
    MEASURED["tenure + 1 std (2,000 rows)"] = values
    assert values["tenure"] > 0.25, values
    others = {name: value for name, value in values.items() if name != "tenure"}
    assert all(value < 0.05 for value in others.values()), others


def test_values_at_the_edges_fall_in_the_bins_their_names_say(training):
    _, reference = training
    tenure = reference["tenure"].numeric
    values = [-1, 0, 0.5, 1, 2, 5, 6, 30, 71.9, 72, 72.5, 1e6]
    # Below the minimum: bin 0; above the maximum: the last; inside: 1 + the cuts at or below.
    expected = [
        0 if v < tenure.low else len(tenure.cuts) + 2 if v > tenure.high
        else 1 + sum(cut <= v for cut in tenure.cuts)
        for v in values
    ]  # fmt: skip
    assert tenure.indices(np.array(values)).tolist() == expected
    assert expected[0] == 0 and expected[-1] == len(reference["tenure"].bins) - 1


def test_the_report_gives_json_and_html_for_a_file(tmp_path, capsys):
    raw = raw_frame(rows=800, seed=3)
    raw["tenure"] = (raw["tenure"].astype(int) + 40).astype(str)  # many beyond training's 72
    raw.loc[0, "Contract"] = "Three year"  # a contract type never seen in training
    source = write_csv(tmp_path / "customers.csv", raw)
    output = tmp_path / "out" / "drift"
    output.parent.mkdir()
    assert (
        report_main(["--input", source, "--model", str(COMMITTED_MODEL), "--output", str(output)])
        == 0
    )
    report = json.loads(output.with_suffix(".json").read_text())
    assert report["rows"] == 800 and report["rejected_rows"] == 1 and report["scored_rows"] == 799
    assert report["rejections"] == {"contract": {"unseen_value": 1}}
    assert report["features"]["contract"]["unseen_values"] == 1
    assert report["features"]["tenure"]["psi"] > 0.25
    assert report["features"]["tenure"]["outside_share"] > 0.3
    page = output.with_suffix(".html").read_text()
    assert page.count("<svg") == len(FEATURE_FIELDS)
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:|//)", page)  # self-contained
    assert "tenure" in capsys.readouterr().out


def test_the_report_says_what_is_wrong_with_a_missing_file(tmp_path, capsys):
    code = report_main(["--input", str(tmp_path / "nope.csv"), "--output", str(tmp_path / "r")])
    assert code == 2 and "nope.csv" in capsys.readouterr().err


def teardown_module() -> None:
    for case, values in MEASURED.items():
        print(f"\n{case}: " + ", ".join(f"{k} {v:.4f}" for k, v in sorted(values.items())))
