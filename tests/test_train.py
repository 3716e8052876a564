"""Training: the CLI, cross-validation, quality on the real data, determinism, bad inputs."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import pickle
import shutil
import subprocess
import sys

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from churn import training
from churn.config import PROJECT_ROOT
from churn.data import clean
from churn.training import main
from tests.conftest import COMMITTED_MODEL, model_with_extra_field
from tests.modelcheck import feature_names_of, held_out_auc
from tests.synthetic import raw_frame, write_csv


@pytest.fixture()
def synthetic_csv(tmp_path):
    return write_csv(tmp_path / "synthetic.csv", raw_frame(400))


def test_fit_on_a_synthetic_frame_learns_the_planted_signal():
    frame = clean(raw_frame(600, seed=2))
    train, test = training.split(frame)
    fitted = training.pipeline(C=1.0).fit(training.feature_dicts(train), train["churn"])
    probabilities = fitted.predict_proba(training.feature_dicts(test))[:, 1]
    assert roc_auc_score(test["churn"], probabilities) > 0.8
    dv, lr = (step for _, step in fitted.steps)
    weights = dict(zip(dv.feature_names_, lr.coef_[0], strict=True))
    assert weights["contract=month-to-month"] > 0 > weights["tenure"]


def test_cli_writes_model_and_metadata(tmp_path, synthetic_csv, capsys):
    output = tmp_path / "out" / "model.bin"
    assert main(["--data", synthetic_csv, "--output", str(output), "--folds", "3"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("fold") == 3 and "C=1.0" in printed and "±" in printed
    assert "test AUC" in printed
    with open(output, "rb") as handle:
        dv, lr = pickle.load(handle)
    metadata = json.loads(output.with_suffix(".json").read_text())
    assert metadata["params"] == {"C": 1.0, "folds": 3, "solver": "newton-cholesky"}
    assert metadata["data"]["rows"] == 400 and len(metadata["data"]["sha256"]) == 64
    assert metadata["threshold"] == 0.5
    assert len(metadata["metrics"]["cv_fold_aucs"]) == 3
    assert set(metadata["schema"]["categorical"]["contract"]) == {
        "month-to-month",
        "one_year",
        "two_year",
    }
    assert set(dv.feature_names_) == feature_names_of(metadata["schema"])
    held_out = held_out_auc(dv, lr, clean(raw_frame(400)))
    assert held_out == pytest.approx(metadata["metrics"]["test_auc"], abs=1e-9)


def test_several_C_values_keep_the_best_mean_auc(tmp_path, synthetic_csv, capsys):
    output = tmp_path / "m.bin"
    main(["--data", synthetic_csv, "--C", "0.001", "1.0", "--output", str(output)])
    printed = capsys.readouterr().out
    means = {
        float(line.split()[0].removeprefix("C=")): float(line.split()[1])
        for line in printed.splitlines()
        if line.startswith("C=") and "±" in line
    }
    assert set(means) == {0.001, 1.0}
    chosen = json.loads(output.with_suffix(".json").read_text())["params"]["C"]
    assert means[chosen] == max(means.values())


def test_default_output_name_carries_C(tmp_path, synthetic_csv, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["--data", synthetic_csv, "--C", "0.5"]) == 0
    assert (tmp_path / "model_C=0.5.bin").is_file() and (tmp_path / "model_C=0.5.json").is_file()


def test_training_is_deterministic(tmp_path, synthetic_csv):
    first, second = tmp_path / "a.bin", tmp_path / "b.bin"
    main(["--data", synthetic_csv, "--output", str(first)])
    main(["--data", synthetic_csv, "--output", str(second)])
    (_, lr1), (_, lr2) = (pickle.loads(p.read_bytes()) for p in (first, second))
    assert np.array_equal(lr1.coef_, lr2.coef_) and np.array_equal(lr1.intercept_, lr2.intercept_)
    assert first.read_bytes() == second.read_bytes()


def test_a_model_trained_with_other_fields_is_named_and_replaced(tmp_path, synthetic_csv, capsys):
    output = model_with_extra_field(tmp_path, "region")
    assert main(["--data", synthetic_csv, "--output", str(output), "--folds", "3"]) == 0
    warning = capsys.readouterr().out
    assert "not comparing with the existing" in warning and "region (only in the model)" in warning
    assert output.read_bytes() != COMMITTED_MODEL.read_bytes()
    metadata = json.loads(output.with_suffix(".json").read_text())
    assert "region" not in metadata["schema"]["categorical"] and metadata["comparison"] is None


@pytest.mark.parametrize("content", [b"", b"a,b\n1,2\n", b"\x00\x01\x02garbage\xff"])
def test_bad_data_exits_2_with_a_message_and_writes_no_model(tmp_path, content, capsys):
    data_file = tmp_path / "bad.csv"
    data_file.write_bytes(content)
    output = tmp_path / "model.bin"
    assert main(["--data", str(data_file), "--output", str(output)]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    assert not output.exists() and not output.with_suffix(".json").exists()


def test_one_class_target_exits_2(tmp_path, capsys):
    frame = raw_frame(100)
    frame["Churn"] = "Yes"
    output = tmp_path / "model.bin"
    assert main(["--data", write_csv(tmp_path / "d.csv", frame), "--output", str(output)]) == 2
    assert "one class" in capsys.readouterr().err
    assert not output.exists()


@pytest.mark.parametrize("args", [["--folds", "1"], ["--C", "-1"], ["--C", "nan"]])
def test_bad_options_are_refused(args):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2


def test_train_py_help_runs_as_a_script():
    result = subprocess.run(
        [sys.executable, "train.py", "--help"], cwd=PROJECT_ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0
    for option in ("--C", "--folds", "--output", "--data"):
        assert option in result.stdout


def test_training_needs_only_what_plain_pipenv_install_installs():
    """`pipenv install` (the lock's default group) then `python train.py` is the course's path.

    Checks what the project's own training modules import; the libraries' optional imports
    (pandas uses pyarrow when it happens to be installed) are theirs to handle.
    """
    code = "import sys, churn.training; print(' '.join(sys.modules))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True
    )
    assert loaded.returncode == 0, loaded.stderr
    ours = [name for name in loaded.stdout.split() if name.startswith("churn.")]
    imported = set()
    for name in ours:
        tree = ast.parse((PROJECT_ROOT / (name.replace(".", "/") + ".py")).read_text())
        for node in tree.body:  # what importing the module runs (not a function's own imports)
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    owners = importlib.metadata.packages_distributions()
    used = {d.lower().replace("_", "-") for name in imported for d in owners.get(name, [])}
    lock = json.loads((PROJECT_ROOT / "Pipfile.lock").read_text())
    assert {"scikit-learn", "pandas", "matplotlib", "jinja2"} <= used <= set(lock["default"])


@pytest.mark.slow  # a full training run on the real data
def test_default_training_reproduces_the_committed_model(real_data, tmp_path):
    """``python train.py`` as the course runs it: same pickle, same metrics, plus a report."""
    output = tmp_path / COMMITTED_MODEL.name
    shutil.copy(COMMITTED_MODEL, output)
    shutil.copy(COMMITTED_MODEL.with_suffix(".json"), output.with_suffix(".json"))
    # A fresh interpreter, as the course runs it: pickle's memo (which repeated objects it writes
    # once) can differ in a process whose other tests made their own strings and arrays.
    result = subprocess.run(
        [
            sys.executable,
            "-W",
            "error::sklearn.exceptions.ConvergenceWarning",
            str(PROJECT_ROOT / "train.py"),
            "--data",
            str(real_data),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    # The same model, not the same bytes: BLAS kernels differ by CPU (OpenBLAS picks one per
    # processor), which moves the coefficients in the 14th digit between machines.
    (dv, model), (dv0, model0) = (pickle.loads(p.read_bytes()) for p in (output, COMMITTED_MODEL))
    assert dv.feature_names_ == dv0.feature_names_
    np.testing.assert_allclose(model.coef_, model0.coef_, rtol=0, atol=1e-9)
    np.testing.assert_allclose(model.intercept_, model0.intercept_, rtol=0, atol=1e-9)
    metadata = json.loads(output.with_suffix(".json").read_text())
    committed = json.loads(COMMITTED_MODEL.with_suffix(".json").read_text())
    for name, value in committed["metrics"].items():
        assert metadata["metrics"][name] == pytest.approx(value, abs=1e-9), name
    assert metadata["metrics"]["test_auc"] >= 0.855
    assert 0.83 < metadata["metrics"]["cv_auc_mean"] < 0.86
    assert metadata["data"]["rows"] == 7043
    comparison = metadata["comparison"]
    assert (comparison["verdict"], comparison["decision_changes"]) == ("accepted", 0)
    assert output.with_suffix(".report.html").stat().st_size > 100_000
