"""The training report: same numbers as the metadata, self-contained, and the compare gate."""

from __future__ import annotations

import base64
import json
import pickle
import re
import shutil
from html.parser import HTMLParser

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from churn.data import load_clean
from churn.features import FEATURE_FIELDS
from churn.training import EXIT_REFUSED, main
from tests.conftest import COMMITTED_MODEL
from tests.synthetic import raw_frame, write_csv

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class Facts(HTMLParser):
    """Collects each ``data-key`` element's text, and every image source and link."""

    def __init__(self) -> None:
        super().__init__()
        self.facts: list[tuple[str, str]] = []
        self.sources: list[str] = []
        self._open: list[str | None] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        self.sources += [attributes[a] for a in ("src", "href") if attributes.get(a)]
        if tag == "span":
            self._open.append(attributes.get("data-key"))
            if attributes.get("data-key"):
                self.facts.append((attributes["data-key"], ""))

    def handle_endtag(self, tag):
        if tag == "span":
            self._open.pop()

    def handle_data(self, data):
        if self._open and self._open[-1]:
            key, text = self.facts[-1]
            self.facts[-1] = (key, text + data)


def parse(html: str) -> Facts:
    parser = Facts()
    parser.feed(html)
    return parser


def value_at(metadata: dict, key: str):
    value = metadata
    for part in key.split("."):
        value = value[int(part)] if part.isdigit() else value[part]
    return value


def agrees(shown: str, value) -> bool:
    """Whether ``shown`` is ``value`` rounded to as many decimals as the page shows."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return shown == str(value)
    text = shown.replace(",", "")
    scale = 100 if text.endswith("%") else 1
    text = text.rstrip("%")
    decimals = len(text.partition(".")[2])
    return abs(float(text) / scale - value) <= 0.5 * 10**-decimals / scale + 1e-12


def train(tmp_path, data, *options) -> int:
    output = tmp_path / "m.bin"
    return main(["--data", str(data), "--output", str(output), "--folds", "3", *options])


def test_every_number_on_the_report_is_the_metadatas(costs_model):
    metadata = json.loads(costs_model.with_suffix(".json").read_text())
    facts = parse(costs_model.with_suffix(".report.html").read_text()).facts
    disagreements = [
        (key, shown, value_at(metadata, key))
        for key, shown in facts
        if not agrees(shown, value_at(metadata, key))
    ]
    assert not disagreements
    shown_keys = {key for key, _ in facts}
    assert {
        "metrics.test_auc",
        "evaluation.held_out.brier",
        "evaluation.held_out.average_precision",
        "evaluation.held_out.confusion.true_positive",
        "evaluation.held_out.lift.0.cumulative_gain",
        "evaluation.held_out.calibration.0.observed_rate",
        "evaluation.cross_validation.0.fold_aucs.4",
        "evaluation.cross_validation.0.std",
        "data.sha256",
        "data.rows",
        "data.churn_rate",
        "versions.scikit-learn",
        "threshold",
        "threshold_source",
        "threshold_choice.profit",
        "threshold_choice.profit_at_default",
    } <= shown_keys


def test_the_metadatas_held_out_numbers_match_an_independent_computation(costs_model, real_data):
    metadata = json.loads(costs_model.with_suffix(".json").read_text())
    dv, model = pickle.loads(costs_model.read_bytes())
    _, test = train_test_split(load_clean(real_data), test_size=0.2, random_state=1)
    churned = test["churn"].to_numpy()
    scores = model.predict_proba(dv.transform(test[list(FEATURE_FIELDS)].to_dict("records")))[:, 1]
    held_out = metadata["evaluation"]["held_out"]
    assert held_out["rows"] == len(test) == 1409
    assert metadata["metrics"]["test_auc"] == pytest.approx(roc_auc_score(churned, scores))
    assert held_out["brier"] == pytest.approx(np.mean((scores - churned) ** 2))
    flagged = scores >= metadata["threshold"]
    assert held_out["confusion"]["true_positive"] == int((flagged & (churned == 1)).sum())
    assert held_out["confusion"]["false_positive"] == int((flagged & (churned == 0)).sum())
    top_tenth = np.sort(scores)[::-1][141 - 1]  # 1409 customers: the first tenth holds 141
    caught = churned[scores >= top_tenth].sum() / churned.sum()
    assert held_out["lift"][0]["cumulative_gain"] == pytest.approx(caught)
    assert held_out["lift"][-1]["cumulative_gain"] == pytest.approx(1.0)
    assert sum(b["customers"] for b in held_out["calibration"]) == len(test)


def test_the_report_is_self_contained_and_its_pngs_sit_beside_it(costs_model):
    html_path = costs_model.with_suffix(".report.html")
    sources = parse(html_path.read_text()).sources
    images = [s for s in sources if s.startswith("data:image/png;base64,")]
    assert images and len(images) == len(sources)  # nothing to fetch, no links out
    folder = costs_model.with_suffix(".report")
    files = {path.read_bytes() for path in folder.glob("*.png")}
    assert {base64.b64decode(s.partition(",")[2]) for s in images} == files
    assert len(files) == 8 and all(data.startswith(PNG_MAGIC) for data in files)
    assert not re.search(r"<script", html_path.read_text())


@pytest.fixture()
def synthetic_data(tmp_path):
    return write_csv(tmp_path / "d.csv", raw_frame(600, seed=3))


@pytest.mark.slow  # two full training runs
def test_a_clearly_worse_model_is_refused_and_the_old_pair_stays(tmp_path, synthetic_data, capsys):
    assert train(tmp_path, synthetic_data) == 0
    kept = {p.name: p.read_bytes() for p in tmp_path.glob("m.*") if p.is_file()}
    # Heavy regularization: on this data the held-out AUC falls from about 0.90 to 0.75.
    assert train(tmp_path, synthetic_data, "--C", "0.0001") == EXIT_REFUSED
    assert "refused" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in tmp_path.glob("m.*") if p.is_file()} == {
        **kept,
        "m.refused.report.html": (tmp_path / "m.refused.report.html").read_bytes(),
    }
    refused_page = (tmp_path / "m.refused.report.html").read_text()
    assert 'class="verdict refused"' in refused_page


@pytest.mark.slow  # two full training runs
def test_force_saves_a_worse_model_and_the_comparison_holds(tmp_path, synthetic_data):
    assert train(tmp_path, synthetic_data) == 0
    old_dv, old_model = pickle.loads((tmp_path / "m.bin").read_bytes())
    assert train(tmp_path, synthetic_data, "--C", "0.0001", "--force") == 0
    new_dv, new_model = pickle.loads((tmp_path / "m.bin").read_bytes())
    assert new_model.C == 0.0001
    comparison = json.loads((tmp_path / "m.json").read_text())["comparison"]
    assert comparison["verdict"] == "forced"
    _, test = train_test_split(load_clean(synthetic_data), test_size=0.2, random_state=1)
    records, churned = test[list(FEATURE_FIELDS)].to_dict("records"), test["churn"].to_numpy()
    old = old_model.predict_proba(old_dv.transform(records))[:, 1]
    new = new_model.predict_proba(new_dv.transform(records))[:, 1]
    difference = roc_auc_score(churned, new) - roc_auc_score(churned, old)
    assert comparison["auc_difference"] == pytest.approx(difference) and difference < -0.1
    assert comparison["decision_changes"] == int(((old >= 0.5) != (new >= 0.5)).sum()) > 0
    page = (tmp_path / "m.report.html").read_text()
    assert "Compared with the current model" in page and "forced" in page


@pytest.mark.slow  # two full training runs
def test_retraining_the_same_model_is_accepted_with_no_decision_changes(tmp_path, synthetic_data):
    assert train(tmp_path, synthetic_data) == 0
    first = (tmp_path / "m.bin").read_bytes()
    assert train(tmp_path, synthetic_data) == 0
    comparison = json.loads((tmp_path / "m.json").read_text())["comparison"]
    assert (comparison["verdict"], comparison["decision_changes"]) == ("accepted", 0)
    assert comparison["auc_difference"] == pytest.approx(0, abs=1e-12)
    assert (tmp_path / "m.bin").read_bytes() == first


@pytest.mark.slow  # two full training runs
def test_compare_with_names_another_model(tmp_path, synthetic_data):
    shutil.copy(COMMITTED_MODEL, tmp_path / "current.bin")
    shutil.copy(COMMITTED_MODEL.with_suffix(".json"), tmp_path / "current.json")
    assert train(tmp_path, synthetic_data, "--compare-with", str(tmp_path / "current.bin")) == 0
    comparison = json.loads((tmp_path / "m.json").read_text())["comparison"]
    assert comparison["baseline_file"] == str(tmp_path / "current.bin")
    assert comparison["baseline_held_out"]["rows"] == 120


def test_a_missing_compare_with_model_exits_2_before_training(tmp_path, synthetic_data, capsys):
    assert train(tmp_path, synthetic_data, "--compare-with", str(tmp_path / "nope.bin")) == 2
    assert "nope.bin" in capsys.readouterr().err
    assert not list(tmp_path.glob("m.*"))


def test_an_unreadable_model_at_the_output_path_is_replaced(tmp_path, synthetic_data, capsys):
    (tmp_path / "m.bin").write_bytes(b"not a pickle")
    assert train(tmp_path, synthetic_data) == 0
    assert "not comparing" in capsys.readouterr().out
    assert json.loads((tmp_path / "m.json").read_text())["comparison"] is None
