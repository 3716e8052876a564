"""Reading .ebextensions the way Elastic Beanstalk does: YAML files with option_settings."""

from __future__ import annotations

from pathlib import Path

import yaml

from churn.config import PROJECT_ROOT

EBEXTENSIONS = PROJECT_ROOT / ".ebextensions"


def config_files() -> list[Path]:
    return sorted(EBEXTENSIONS.glob("*.config"))


def option_settings() -> dict[str, dict[str, object]]:
    """namespace -> {option: value}, merged across the .config files in name order."""
    merged: dict[str, dict[str, object]] = {}
    for path in config_files():
        document = yaml.safe_load(path.read_text())
        for namespace, options in document.get("option_settings", {}).items():
            merged.setdefault(namespace, {}).update(options)
    return merged
