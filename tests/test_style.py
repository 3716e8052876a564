"""The style rules a reviewer would otherwise check by hand: the package type-checks, and each
module is short and opens with a docstring saying what it owns."""

from __future__ import annotations

import ast
import subprocess
import sys

from churn.config import PROJECT_ROOT

MAX_LINES = 260  # "about 250": a few lines of slack, not a second limit
CHECKED = ["churn/**/*.py", "tests/*.py"]


def modules() -> list[str]:
    found = {path for pattern in CHECKED for path in PROJECT_ROOT.glob(pattern)}
    return sorted(str(path.relative_to(PROJECT_ROOT)) for path in found)


def test_mypy_passes_on_the_package():
    # The same run as `make lint` (configuration in pyproject.toml), so a type error shows up in
    # the test suite too, not only in `make test`.
    result = subprocess.run(
        [sys.executable, "-m", "mypy"], cwd=PROJECT_ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_module_is_longer_than_the_limit():
    lengths = {name: len((PROJECT_ROOT / name).read_text().splitlines()) for name in modules()}
    assert {name: n for name, n in lengths.items() if n > MAX_LINES} == {}


def test_every_module_opens_with_a_docstring():
    missing = [
        name
        for name in modules()
        if (PROJECT_ROOT / name).stat().st_size
        and not ast.get_docstring(ast.parse((PROJECT_ROOT / name).read_text()))
    ]
    assert missing == []
