"""What a reviewer would otherwise check by hand: each module opens with a docstring saying what
it is for. (Lint and types are `make lint`'s: ruff and mypy.)"""

from __future__ import annotations

import ast

from churn.config import PROJECT_ROOT

CHECKED = ["churn/**/*.py", "tests/*.py"]


def modules() -> list[str]:
    found = {path for pattern in CHECKED for path in PROJECT_ROOT.glob(pattern)}
    return sorted(str(path.relative_to(PROJECT_ROOT)) for path in found)


def test_every_module_opens_with_a_docstring():
    missing = [
        name
        for name in modules()
        if (PROJECT_ROOT / name).stat().st_size
        and not ast.get_docstring(ast.parse((PROJECT_ROOT / name).read_text()))
    ]
    assert missing == []
