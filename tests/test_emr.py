"""Batch scoring on EMR Serverless: the packed environment's list (emr/packages.py) holds what
the Spark path imports, and the job runs as EMR runs it (docs/emr.md).

The job test does what EMR Serverless does with the job in docs/emr.md: spark-submit from a
Spark of the release's version (not the lock's), the driver's and executors' Python from a
fresh environment holding only the computed list, this package only as churn.zip in
--py-files, and score.py, away from the checkout, as the entry point.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.csv
import pyarrow.parquet as pq
import pytest
from packaging.utils import canonicalize_name

from churn.config import PROJECT_ROOT
from emr import packages
from tests.conftest import COMMITTED_MODEL
from tests.emrjob import EMR_SPARK, packed_environment, spark_home
from tests.synthetic import raw_frame, write_csv

ROWS = 2_000
PLANTED = {7: ("Contract", "Weekly"), 1_500: ("tenure", "-3")}  # 0-based rows the job rejects


def listed() -> set[str]:
    """The distributions the requirements name, read back from the text itself."""
    lines = packages.requirements_text().splitlines()
    return {canonicalize_name(line.partition("==")[0]) for line in lines if line[:1].isalnum()}


# Run in a fresh interpreter: records each top-level module a churn module imports (not the
# optional imports of the libraries themselves, such as pyarrow trying cloudpickle), as the
# modules really run, and prints the distributions that provide them.
WHO_IMPORTS_WHAT = """
import importlib.metadata, inspect, json, sys

imported = set()

class Recorder:
    def find_spec(self, name, path=None, target=None):
        frame = inspect.currentframe().f_back
        while frame and "importlib" in frame.f_globals.get("__name__", "importlib"):
            frame = frame.f_back
        if frame and frame.f_globals.get("__name__", "").startswith("churn"):
            imported.add(name.partition(".")[0])
        return None

sys.meta_path.insert(0, Recorder())
import churn.batch.cli, churn.batch.spark
providers = importlib.metadata.packages_distributions()
print(json.dumps(sorted({d for name in imported for d in providers.get(name, [])})))
"""


def test_every_module_the_spark_path_imports_is_listed_or_brought_by_spark():
    # A second opinion on emr/packages.py's reading of the source: the imports as they run.
    done = subprocess.run(
        [sys.executable, "-c", WHO_IMPORTS_WHAT],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    imported = {canonicalize_name(name) for name in json.loads(done.stdout)}
    assert {"orjson", "pyarrow", "pyspark"} <= imported  # orjson: what EMR jobs once lacked
    assert imported - listed() == {"pyspark"}  # EMR brings Spark


def test_the_import_walk_follows_lazy_and_relative_imports_and_skips_main_blocks(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "engine.py").write_text(
        "import json\n\ndef run():\n    import yaml\n\n"
        'if __name__ == "__main__":\n    import matplotlib\n'
    )
    (tmp_path / "pkg" / "cli.py").write_text("def main():\n    from pkg import engine\n")
    (tmp_path / "pkg" / "sub").mkdir()
    (tmp_path / "pkg" / "sub" / "__init__.py").write_text("from . import files\n")
    (tmp_path / "pkg" / "sub" / "files.py").write_text("from ..cli import main\nimport orjson\n")
    entry = tmp_path / "job.py"
    entry.write_text("from pkg.cli import main\n")
    assert packages.third_party_imports(entry, tmp_path, "pkg") == {"yaml"}
    entry.write_text("import pkg.sub\n")  # relative imports, up and down the package
    assert packages.third_party_imports(entry, tmp_path, "pkg") == {"orjson", "yaml"}


def test_each_package_is_pinned_to_the_lock_with_its_hashes():
    lock = json.loads((PROJECT_ROOT / "Pipfile.lock").read_text())
    locked = {
        canonicalize_name(name): entry
        for category in ("default", "batch")
        for name, entry in lock[category].items()
    }
    text = packages.requirements_text()
    for name in listed():
        assert f"{name}{locked[name]['version']} \\" in text
        assert all(f"--hash={digest}" in text for digest in locked[name]["hashes"])
    assert "pyspark" not in listed() and "py4j" not in listed()  # EMR brings its own


def test_an_import_nothing_installed_provides_stops_with_what_to_do():
    with pytest.raises(packages.PackageListError, match=r"no_such_module.*make env"):
        packages.distributions_of({"no_such_module"})


def test_the_emr_dockerfile_installs_the_list_by_hash_and_lints_clean():
    dockerfile = (PROJECT_ROOT / "emr" / "Dockerfile").read_text()
    assert "--require-hashes -r /tmp/requirements.txt" in dockerfile
    assert "wget" not in dockerfile and "curl" not in dockerfile  # nothing fetched unverified
    hadolint = Path(sys.executable).parent / "hadolint"
    done = subprocess.run(
        [str(hadolint), str(PROJECT_ROOT / "emr" / "Dockerfile")], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def job(tmp_path_factory) -> Path:
    """A folder as EMR's driver sees it: score.py, churn.zip (zipped as docs/emr.md does) and
    the inputs, with no checkout on the Python path."""
    folder = tmp_path_factory.mktemp("emr-job")
    shutil.copy(PROJECT_ROOT / "score.py", folder)
    zipped = ["zip", "-qr", str(folder / "churn.zip"), "churn", "-x", "*/__pycache__/*"]
    subprocess.run(zipped, cwd=PROJECT_ROOT, check=True, timeout=60)
    frame = raw_frame(ROWS, seed=27)
    for position, (column, value) in PLANTED.items():
        frame.loc[position, column] = value
    write_csv(folder / "customers.csv", frame)
    frame.to_parquet(folder / "customers.parquet", index=False)
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("source", ["customers.csv", "customers.parquet"])
def test_the_job_runs_as_emr_serverless_runs_it(job, source):
    spark, python = spark_home(), packed_environment() / "bin" / "python"
    output, rejects = f"scores-{Path(source).suffix[1:]}.parquet", f"rejects-{source}.csv"
    command = [str(spark / "bin" / "spark-submit"), "--master", "local[2]"]
    for setting in ("ui.enabled=false", "driver.bindAddress=127.0.0.1", "driver.host=127.0.0.1"):
        command += ["--conf", f"spark.{setting}"]  # loopback only, no UI
    command += ["--py-files", "churn.zip", "score.py", "--engine", "spark", "--input", source]
    command += ["--output", output, "--rejects", rejects, "--model", str(COMMITTED_MODEL)]
    environment = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", str(job)),
        "SPARK_HOME": str(spark),
        "PYSPARK_PYTHON": str(python),
        "PYSPARK_DRIVER_PYTHON": str(python),
        "SPARK_LOCAL_IP": "127.0.0.1",
    }
    done = subprocess.run(
        command, cwd=job, env=environment, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert f"Running Spark version {EMR_SPARK}" in done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert (summary["rows_in"], summary["rejected"]) == (ROWS, len(PLANTED))
    scored = pq.read_table(job / output)
    assert scored.num_rows == summary["scored"] == ROWS - len(PLANTED)
    rejected = pyarrow.csv.read_csv(next((job / rejects).glob("part-*.csv")))
    assert sorted(set(rejected["row"].to_pylist())) == [p + 1 for p in sorted(PLANTED)]
    assert (job / output / "_SUCCESS").exists() and (job / rejects / "_SUCCESS").exists()
