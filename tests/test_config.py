"""Settings: read from the environment only in churn/config.py, refused clearly when bad, and
described by the README's configuration table exactly as they are defined."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from churn.artifact import model_filename
from churn.config import (
    PROJECT_ROOT,
    ConfigError,
    DataSettings,
    Settings,
    markdown_table,
)
from churn.schema import MAX_ID_LENGTH, MAX_TEXT_LENGTH

README = PROJECT_ROOT / "README.md"
DEPLOYING = PROJECT_ROOT / "docs" / "deploying.md"


def test_defaults_without_any_variable():
    settings = Settings.from_env({})
    assert settings.model_file == Path("model_C=1.0.bin")
    assert settings.threshold is None and settings.api_key is None
    assert (settings.max_batch_size, settings.max_body_bytes) == (1000, 2 * 1024 * 1024)
    assert (settings.port, settings.reuse_port, settings.workers) == (9696, True, os.cpu_count())
    assert settings.access_log == "-" and settings.metrics_dir is None
    assert settings.capture_database_url is None and settings.capture_features is False


def test_values_from_the_environment():
    settings = Settings.from_env(
        {
            "MODEL_FILE": "m.bin",
            "CHURN_THRESHOLD": "0.3",
            "MAX_BATCH_SIZE": " 10 ",
            "API_KEY": "k",
            "GUNICORN_REUSE_PORT": "0",
            "WEB_CONCURRENCY": "3",
            "LOG_FORMAT": "TEXT",
            "CAPTURE_DATABASE_URL": "postgresql://u@localhost/churn",
            "CAPTURE_FEATURES": "true",
        }
    )
    assert (settings.model_file, settings.threshold) == (Path("m.bin"), 0.3)
    assert (settings.max_batch_size, settings.api_key) == (10, "k")
    assert (settings.reuse_port, settings.workers, settings.log_format) == (False, 3, "text")
    assert settings.capture_database_url == "postgresql://u@localhost/churn"
    assert settings.capture_features is True


def test_blank_means_the_default_except_where_blank_has_a_meaning():
    settings = Settings.from_env(
        {
            "CHURN_THRESHOLD": "",
            "API_KEY": " ",
            "GUNICORN_ACCESSLOG": "",
            "PORT": " ",
            "LOG_LEVEL": "",
        }
    )
    assert settings.threshold is None and settings.api_key is None
    assert settings.access_log is None  # set but empty: no access log
    assert (settings.port, settings.log_level) == (9696, "info")  # blank: the default


def default_log_format(stderr) -> str:
    code = "from churn.config import Settings; print(Settings.from_env({}).log_format)"
    return subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=stderr,
        text=True, check=True,
    ).stdout.strip()  # fmt: skip


def test_logs_are_text_in_a_terminal_and_json_elsewhere():
    primary, terminal = os.openpty()
    try:
        assert default_log_format(terminal) == "text"
    finally:
        os.close(primary)
        os.close(terminal)
    assert default_log_format(subprocess.DEVNULL) == "json"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CHURN_THRESHOLD", "2"),
        ("CHURN_THRESHOLD", "half"),
        ("CHURN_THRESHOLD", "nan"),
        ("MAX_BATCH_SIZE", "0"),
        ("MAX_BATCH_SIZE", "2.5"),
        ("MAX_BODY_BYTES", "1e6"),
        ("PORT", "70000"),
        ("WEB_CONCURRENCY", "two"),
        ("GUNICORN_THREADS", "0"),
        ("GUNICORN_TIMEOUT", "-1"),
        ("GUNICORN_REUSE_PORT", "maybe"),
        ("LOG_LEVEL", "loud"),
        ("LOG_FORMAT", "xml"),
        ("FLASK_DEBUG", "2"),
        ("CAPTURE_FEATURES", "maybe"),
        ("SHADOW_SAMPLE", "inf"),
    ],
)
def test_bad_values_stop_with_the_variable_named(name, value):
    with pytest.raises(ConfigError, match=f"^{name}={value!r} "):
        Settings.from_env({name: value})


def test_data_settings():
    assert DataSettings.from_env({}).data_file is None
    settings = DataSettings.from_env({"CHURN_DATA": "x.csv", "CHURN_DATA_URL": "http://m/x.csv"})
    assert (settings.data_file, settings.data_url) == (Path("x.csv"), "http://m/x.csv")


def test_the_table_lists_every_variable_once():
    names = re.findall(r"^\| `(\w+)` \|", markdown_table(), re.MULTILINE)
    every = [item.alias for cls in (Settings, DataSettings) for item in cls.model_fields.values()]
    assert sorted(names) == sorted(set(every)) and len(every) == len(set(every))


def readme_section(title: str, page: Path = README) -> str:
    text = page.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def test_readme_configuration_table_is_the_generated_one():
    header = markdown_table().splitlines()[0]
    lines = README.read_text().splitlines()
    assert header in lines, "paste `python -m churn.config` into README.md"
    start = lines.index(header)
    table = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        table.append(line)
    assert "\n".join(table) == markdown_table(), "paste `python -m churn.config` into README.md"


def test_readme_limits_table_agrees_with_the_code():
    defaults = Settings()
    limits = readme_section("Limits and authentication", DEPLOYING)
    batch = re.search(r"`MAX_BATCH_SIZE`\) \| ([\d,]+) \|", limits)
    body = re.search(r"`MAX_BODY_BYTES`\) \| (\d+) MiB \|", limits)
    assert batch and int(batch.group(1).replace(",", "")) == defaults.max_batch_size
    assert body and int(body.group(1)) * 1024 * 1024 == defaults.max_body_bytes
    lengths = re.search(r"text values / ids \| (\d+) / (\d+) characters", limits)
    assert lengths and (int(lengths.group(1)), int(lengths.group(2))) == (
        MAX_TEXT_LENGTH,
        MAX_ID_LENGTH,
    )


def environ_readers(source: str) -> list[int]:
    """Lines of ``source`` that read os.environ or call os.getenv (``os.environ[k] = v`` is not
    reading: gunicorn.conf.py hands prometheus_client its folder that way)."""
    tree = ast.parse(source)
    written = {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store)
    }
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr in {"environ", "getenv"}
        and isinstance(node.value, ast.Name)
        and node.value.id == "os"
        and id(node) not in written
    ]


def test_only_config_reads_the_environment():
    # The copyable client reads API_KEY for itself (issue 12): it must not need churn/.
    exempt = {"churn/config.py", "predict_test.py"}
    files = [*PROJECT_ROOT.glob("churn/**/*.py"), *PROJECT_ROOT.glob("*.py")]
    readers = {}
    for file in files:
        name = str(file.relative_to(PROJECT_ROOT))
        if name not in exempt and (lines := environ_readers(file.read_text())):
            readers[name] = lines
    assert readers == {}


def test_the_environment_check_finds_a_reader():
    assert environ_readers("import os\nx = os.environ.get('A')\nos.environ['B'] = x\n") == [2]


def test_model_filename_carries_C():
    assert model_filename(1.0) == "model_C=1.0.bin"
    assert model_filename(0.5) == "model_C=0.5.bin"


# Where the service's port is written for people and other programs: each must be the default.
PORT_MENTIONS = re.compile(
    r"(?:localhost|127\.0\.0\.1|0\.0\.0\.0|HOST|serve the model on ):(\d+)"
    r"|--port (\d+)|-p (\d+):(\d+)|PORT=(\d+)|EXPOSE (\d+)|'PORT', '(\d+)'"
)
PORT_FILES = [
    "README.md",
    "docs/*.md",
    "Dockerfile",
    "Makefile",
    "predict_test.py",
    "monitoring/prometheus.yml",
    "churn/templates/docs.html",
    ".ebextensions/*.config",
]


def test_every_mention_of_the_port_is_the_default_port():
    mentions = {}
    for pattern in PORT_FILES:
        for file in PROJECT_ROOT.glob(pattern):
            for match in PORT_MENTIONS.finditer(file.read_text()):
                ports = {int(group) for group in match.groups() if group}
                mentions[f"{file.name}: {match.group(0)}"] = ports
    assert len(mentions) >= 10  # the README, Dockerfile, Makefile and client all name it
    assert {where: ports for where, ports in mentions.items() if ports != {Settings().port}} == {}
