"""The model artifact: the committed files, atomic writes and the restricted unpickler."""

from __future__ import annotations

import json
import os
import pickle
import stat
import subprocess
import sys
from typing import Any

import pytest
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LogisticRegression

from churn import artifact
from churn.artifact import ModelFileError, load_weights, write_atomically
from churn.config import PROJECT_ROOT
from churn.data import load_clean, sha256_of
from churn.features import EXAMPLE_CUSTOMER, FEATURE_FIELDS
from tests.conftest import COMMITTED_MODEL
from tests.crafted import code_running_pickle
from tests.modelcheck import feature_names_of, held_out_auc


@pytest.fixture(scope="module")
def committed() -> tuple[Any, Any, dict]:
    with open(COMMITTED_MODEL, "rb") as handle:
        dv, model = pickle.load(handle)
    return dv, model, json.loads(COMMITTED_MODEL.with_suffix(".json").read_text())


def test_committed_artifact_is_the_course_pickle(committed):
    dv, model, _ = committed
    assert isinstance(dv, DictVectorizer) and isinstance(model, LogisticRegression)
    assert model.predict_proba(dv.transform([EXAMPLE_CUSTOMER])).shape == (1, 2)


def test_committed_model_scores_the_held_out_customers_as_its_metadata_says(committed, real_data):
    dv, model, metadata = committed
    assert metadata["data"]["sha256"] == sha256_of(real_data)  # the CSV it was trained on
    auc = held_out_auc(dv, model, load_clean(real_data))
    assert auc == pytest.approx(metadata["metrics"]["test_auc"], abs=1e-9)
    assert auc >= 0.855  # the course's figure for C=1.0


def test_committed_artifact_matches_its_metadata(committed):
    dv, _, metadata = committed
    assert metadata["artifact_sha256"] == artifact.sha256_hex(COMMITTED_MODEL.read_bytes())
    assert metadata["params"]["C"] == 1.0
    assert metadata["threshold"] == 0.5
    assert set(dv.feature_names_) == feature_names_of(metadata["schema"])
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


def test_a_pickle_that_runs_code_is_refused_and_its_code_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    crafted = tmp_path / "evil.bin"
    crafted.write_bytes(code_running_pickle(marker))
    with pytest.raises(ModelFileError, match="refusing to load"):
        load_weights(crafted)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "cannot read model file"),
        (b"", "not a readable model pickle"),
        (b"this is not a pickle", "not a readable model pickle"),
        (pickle.dumps({"a": 1}), "does not hold a fitted"),
        (pickle.dumps((1.0, 2.0)), "does not hold a fitted"),
    ],
)
def test_missing_corrupt_or_wrong_model_files_say_what_to_do(tmp_path, content, expected):
    path = tmp_path / "model.bin"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ModelFileError, match=expected) as error:
        load_weights(path)
    assert "train.py" in str(error.value)


def test_a_truncated_model_is_refused(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(COMMITTED_MODEL.read_bytes()[:500])
    with pytest.raises(ModelFileError, match="not a readable model pickle"):
        load_weights(path)


def test_the_restricted_loader_reads_the_same_weights_as_sklearn():
    with open(COMMITTED_MODEL, "rb") as handle:
        dv, model = pickle.load(handle)
    weights = load_weights(COMMITTED_MODEL)
    assert weights.intercept == model.intercept_[0]
    assert weights.weights == dict(zip(dv.feature_names_, model.coef_[0].tolist(), strict=True))


@pytest.mark.parametrize("protocol", [3, 4, 5])
def test_pickles_of_every_python3_protocol_load(tmp_path, protocol):
    # The course pickles with the default protocol, which differs across Python versions.
    with open(COMMITTED_MODEL, "rb") as handle:
        pair = pickle.load(handle)
    old = tmp_path / "old.bin"
    old.write_bytes(pickle.dumps(pair, protocol=protocol))
    assert load_weights(old).weights == load_weights(COMMITTED_MODEL).weights


# A fresh interpreter imports the service as gunicorn does, loads the model and answers one
# request, then reports which of the heavy libraries were imported along the way.
HEAVY_IMPORT_PROBE = """
import json, sys
import predict
from churn.features import EXAMPLE_CUSTOMER
answer = predict.app.test_client().post("/predict", json=EXAMPLE_CUSTOMER)
assert answer.status_code == 200, answer.get_data()
heavy = {"sklearn", "scipy", "pandas", "matplotlib"}
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules} & heavy)))
"""


def test_the_service_imports_none_of_the_training_libraries():
    result = subprocess.run(
        [sys.executable, "-c", HEAVY_IMPORT_PROBE],
        cwd=PROJECT_ROOT,
        env={**os.environ, "MODEL_FILE": str(COMMITTED_MODEL)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == []


def test_written_files_get_the_umask_mode_not_mkstemps_private_one(tmp_path):
    # A retrained model must stay readable by the image's unprivileged user after COPY.
    previous = os.umask(0o022)
    try:
        write_atomically(tmp_path / "m.bin", b"data")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "m.bin").stat().st_mode) == 0o644
