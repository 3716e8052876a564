"""Settings from the environment: defaults, overrides and clear refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from churn.config import ConfigError, ServiceSettings, model_filename


def test_defaults():
    settings = ServiceSettings.from_env({})
    assert settings.model_file == Path("model_C=1.0.bin")
    assert settings.threshold is None and settings.api_key is None
    assert settings.max_batch_size == 1000


def test_overrides():
    settings = ServiceSettings.from_env(
        {"MODEL_FILE": "m.bin", "CHURN_THRESHOLD": "0.3", "MAX_BATCH_SIZE": "10", "API_KEY": "k"}
    )
    assert (settings.model_file, settings.threshold) == (Path("m.bin"), 0.3)
    assert (settings.max_batch_size, settings.api_key) == (10, "k")


@pytest.mark.parametrize(
    ("name", "value"),
    [("CHURN_THRESHOLD", "2"), ("CHURN_THRESHOLD", "half"), ("MAX_BATCH_SIZE", "0")],
)
def test_bad_values_name_the_variable(name, value):
    with pytest.raises(ConfigError, match=name):
        ServiceSettings.from_env({name: value})


def test_model_filename_carries_C():
    assert model_filename(1.0) == "model_C=1.0.bin"
    assert model_filename(0.5) == "model_C=0.5.bin"
