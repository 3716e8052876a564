"""Shared fixtures: the real data file, the committed model, the app and its test client."""

from __future__ import annotations

import functools
import json
import os
import pickle
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from bench.servers import gunicorn_command, running
from churn.app import create_app
from churn.config import DATA_FILENAME, PROJECT_ROOT, DataSettings, Settings
from churn.features import EXAMPLE_CUSTOMER
from tests.bareclient import copy_client, make_bare_python

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Headless as root, and quiet: the machine has no network beyond loopback.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
COMMITTED_MODEL = PROJECT_ROOT / "model_C=1.0.bin"
# The README's example economics (see "A threshold chosen from costs").
EXAMPLE_COSTS = {"offer_cost": 50.0, "customer_value": 800.0, "offer_acceptance": 0.3}

# The private Docker engine and the built image (tests/containers.py); a real PostgreSQL
# (tests/postgres.py).
pytest_plugins = ["tests.containers", "tests.postgres"]


def pytest_terminal_summary(terminalreporter) -> None:
    """Say which base image the container tests built on: pulled, or a local stand-in."""
    from tests.containers import ENGINE_NOTES

    for note in ENGINE_NOTES:
        terminalreporter.write_line(f"docker: {note}")


def find_real_data() -> Path:
    candidates = [
        DataSettings.from_env().data_file,
        PROJECT_ROOT.parent / "shared" / "data" / DATA_FILENAME,
        PROJECT_ROOT / "data" / DATA_FILENAME,
    ]
    for candidate in candidates:
        if candidate is not None and candidate.is_file():
            return candidate
    pytest.fail(
        "The Telco CSV was not found: set CHURN_DATA, or run `make data` to download it to data/."
    )


@pytest.fixture(scope="session")
def real_data() -> Path:
    return find_real_data()


def cost_options(costs: dict[str, float]) -> list[str]:
    options = []
    for name, value in costs.items():
        options += ["--" + name.replace("_", "-"), str(value)]
    return options


@pytest.fixture(scope="session")
def costs_model(real_data, tmp_path_factory) -> Path:
    """A model trained on the real data with the example costs; its report beside it."""
    from churn.training import main

    output = tmp_path_factory.mktemp("costs") / "model_C=1.0.bin"
    assert (
        main(["--data", str(real_data), "--output", str(output), *cost_options(EXAMPLE_COSTS)]) == 0
    )
    return output


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium, headless, driven by Playwright."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture()
def customer() -> dict:
    return dict(EXAMPLE_CUSTOMER)


@pytest.fixture()
def raw_customer() -> dict:
    """The course's standard customer as written in the Telco CSV."""
    return {
        "customerID": "7590-VHVEG",
        "gender": "Female",
        "SeniorCitizen": "0",
        "Partner": "Yes",
        "Dependents": "No",
        "tenure": "24",
        "PhoneService": "No",
        "MultipleLines": "No phone service",
        "InternetService": "DSL",
        "OnlineSecurity": "No",
        "OnlineBackup": "Yes",
        "DeviceProtection": "No",
        "TechSupport": "No",
        "StreamingTV": "No",
        "StreamingMovies": "No",
        "Contract": "Month-to-month",
        "PaperlessBilling": "Yes",
        "PaymentMethod": "Electronic check",
        "MonthlyCharges": "29.85",
        "TotalCharges": str(24 * 29.85),
    }


APPS: list[Flask] = []


def make_app(**overrides: Any) -> Flask:
    """The app on the committed model with default ``Settings`` but for ``overrides``.

    The caller's environment plays no part: ``make_app(api_key="k")`` is exactly that.
    """
    app = create_app(Settings(model_file=COMMITTED_MODEL, **overrides))
    APPS.append(app)
    return app


@pytest.fixture(autouse=True)
def _counted_before_the_next_test():
    """Each app counts its drift and shadow work about once a second in the background; the
    tests share one process's metrics, so every app's counts land before the next test reads."""
    yield
    for app in APPS:
        app.extensions["churn.watch"].flush()


def model_with_extra_field(folder: Path, field: str) -> Path:
    """A copy of the committed model whose metadata declares one more categorical field, as a
    model trained on data with another column would."""
    model_file = folder / COMMITTED_MODEL.name
    shutil.copy(COMMITTED_MODEL, model_file)
    metadata = json.loads(COMMITTED_MODEL.with_suffix(".json").read_text())
    metadata["schema"]["categorical"][field] = ["north", "south"]
    model_file.with_suffix(".json").write_text(json.dumps(metadata))
    return model_file


@functools.cache
def _sklearn_pair() -> tuple[Any, Any]:
    with open(COMMITTED_MODEL, "rb") as handle:
        return pickle.load(handle)


def sklearn_probability(customer: dict) -> float:
    """The committed model's probability computed by scikit-learn itself, as the course does."""
    dv, model = _sklearn_pair()
    return float(model.predict_proba(dv.transform([customer]))[0, 1])


def assert_json_error(response: Any, status: int, error: str | None = None) -> dict:
    """``response`` is a JSON error with ``status``, a message and (if given) ``error``."""
    assert response.status_code == status
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert isinstance(body["message"], str) and body["message"]
    if error:
        assert body["error"] == error
    return body


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """gunicorn with gunicorn.conf.py, the committed model and two workers, for the session."""
    with running(
        gunicorn_command(), tmp_path_factory.mktemp("gunicorn"), env={"WEB_CONCURRENCY": "2"}
    ) as live:
        yield live


@pytest.fixture(scope="session")
def bare_python(tmp_path_factory) -> Path:
    """A new venv (no pip, no system packages) whose site-packages holds only requests & deps."""
    return make_bare_python(tmp_path_factory.mktemp("bare-venv"))


@pytest.fixture(scope="session")
def copied_client(tmp_path_factory) -> Path:
    """predict_test.py, copied alone into an empty folder."""
    return copy_client(tmp_path_factory.mktemp("marketing-service"))


@pytest.fixture()
def app():
    return make_app()


@pytest.fixture()
def client(app):
    return app.test_client()


@pytest.fixture(scope="session")
def eb_environment() -> dict:
    """The service's environment variables set by .ebextensions."""
    from tests.ebconfig import option_settings

    return option_settings().get("aws:elasticbeanstalk:application:environment", {})


@pytest.fixture(scope="session")
def spark():
    """One local Spark for the whole run: a JVM start costs seconds, every test shares it.

    local[2] (this machine's cores), no UI, two shuffle partitions, loopback only, ANSI mode on
    as in Spark 4, and Python workers running this interpreter.
    """
    from pyspark.sql import SparkSession

    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    session = (
        SparkSession.builder.master("local[2]")
        .appName("churn-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.ansi.enabled", "true")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.pyspark.python", sys.executable)
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
