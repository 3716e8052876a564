"""The model artifact: the committed files, atomic writes and the restricted unpickler."""

from __future__ import annotations

import json
import os
import pickle

import pytest

from churn import artifact
from churn.artifact import ModelFileError, load_pair, write_atomically
from churn.features import EXAMPLE_CUSTOMER, FEATURE_FIELDS
from tests.conftest import COMMITTED_MODEL


def test_committed_artifact_is_the_course_pickle_and_scores_the_standard_customer():
    with open(COMMITTED_MODEL, "rb") as handle:
        dv, model = pickle.load(handle)
    probability = model.predict_proba(dv.transform([EXAMPLE_CUSTOMER]))[0, 1]
    assert 0 < probability < 1


def test_committed_artifact_matches_its_metadata():
    metadata = json.loads(COMMITTED_MODEL.with_suffix(".json").read_text())
    assert metadata["artifact_sha256"] == artifact.sha256_hex(COMMITTED_MODEL.read_bytes())
    assert metadata["params"]["C"] == 1.0
    assert metadata["metrics"]["test_auc"] >= 0.855
    assert metadata["threshold"] == 0.5
    dv, _model, _ = load_pair(COMMITTED_MODEL)
    for field, values in metadata["schema"]["categorical"].items():
        assert {f"{field}={value}" for value in values} <= set(dv.feature_names_)
    schema_fields = {
        *metadata["schema"]["categorical"],
        *metadata["schema"]["numeric"],
        *metadata["schema"]["flags"],
    }
    assert schema_fields == set(FEATURE_FIELDS)


def test_a_crash_during_write_keeps_the_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "model.bin"
    target.write_bytes(b"old")

    def crash(*_args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        write_atomically(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.bin"]


def test_write_atomically_replaces_the_content(tmp_path):
    target = tmp_path / "sub" / "file.bin"
    write_atomically(target, b"first")
    write_atomically(target, b"second")
    assert target.read_bytes() == b"second"
    assert [p.name for p in target.parent.iterdir()] == ["file.bin"]


class _RunsCode:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_that_runs_code_is_refused_and_its_code_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    crafted = tmp_path / "evil.bin"
    crafted.write_bytes(pickle.dumps(_RunsCode(str(marker))))
    with pytest.raises(ModelFileError, match="refusing to load"):
        load_pair(crafted)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "cannot read model file"),
        (b"", "not a readable model pickle"),
        (b"this is not a pickle", "not a readable model pickle"),
        (pickle.dumps({"a": 1}), "does not hold a fitted"),
    ],
)
def test_missing_corrupt_or_wrong_model_files_say_what_to_do(tmp_path, content, expected):
    path = tmp_path / "model.bin"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ModelFileError, match=expected) as error:
        load_pair(path)
    assert "train.py" in str(error.value)


def test_a_truncated_model_is_refused(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(COMMITTED_MODEL.read_bytes()[:500])
    with pytest.raises(ModelFileError, match="not a readable model pickle"):
        load_pair(path)
