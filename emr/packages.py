"""The Python packages ``score.py --engine spark`` needs beside Spark, computed from its imports.

EMR Serverless brings Spark and pyspark; everything else the driver and the executors import
travels in a packed virtual environment (emr/Dockerfile). Its list is computed here, never
written by hand, so it follows the code: the imports reachable from ``score.py`` through this
package (function-level ones too: the CLI imports the Spark engine lazily), mapped to the
distributions that provide them, plus what pyspark itself imports for ``mapInArrow`` (its
``sql`` extra), plus their dependencies, each at the version and with the hashes of
Pipfile.lock. Run it from the locked environment (``make emr-requirements``):

    python emr/packages.py --output emr/requirements.txt
"""

from __future__ import annotations

import argparse
import ast
import importlib.metadata as metadata
import json
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
ENTRY = ROOT / "score.py"
PACKAGE = "churn"
# The job's own platform provides these: EMR's Spark puts pyspark and py4j on the Python path.
PROVIDED = frozenset({"pyspark", "py4j"})
# pyspark's extra for DataFrame.mapInArrow (pandas, pyarrow, numpy): it imports them itself.
SPARK_EXTRA = "sql"
# The lock's categories the service and batch scoring install (Pipfile: [packages], [batch]).
LOCK_CATEGORIES = ("default", "batch")


def _canonical(name: str) -> str:
    return str(canonicalize_name(name))


class PackageListError(Exception):
    """The list cannot be computed: an import nothing installed provides, or a missing lock pin."""


def imported_names(tree: ast.Module, package: str = "") -> Iterator[tuple[str, tuple[str, ...]]]:
    """(module, names imported from it) for every import a run can reach; relative imports are
    resolved against ``package``, the dotted package the module belongs to.

    Imports inside functions count (a lazy import is still an import); those under
    ``if __name__ == "__main__":`` or ``if TYPE_CHECKING:`` never run when imported.
    """
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _never_runs_on_import(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            yield from ((alias.name, ()) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names = tuple(alias.name for alias in node.names)
            if not node.level:
                yield node.module or "", names
            else:  # `from .columns import x`, `from .. import artifact`
                parts = package.split(".")
                parent = parts[: len(parts) - node.level + 1]
                yield ".".join([*parent, *([node.module] if node.module else [])]), names
        stack.extend(ast.iter_child_nodes(node))


def _never_runs_on_import(test: ast.expr) -> bool:
    text = ast.unparse(test).replace("'", '"')
    return text in {'__name__ == "__main__"', "TYPE_CHECKING", "typing.TYPE_CHECKING"}


def module_file(root: Path, module: str) -> Path | None:
    """The file of ``module`` under ``root`` (``a.b``: a/b.py or a/b/__init__.py), if any."""
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def third_party_imports(entry: Path, root: Path = ROOT, package: str = PACKAGE) -> set[str]:
    """Top-level names of the modules outside the standard library and ``package`` that
    ``entry`` imports, directly or through ``package``'s modules."""
    seen: set[Path] = set()
    pending, found = [entry], set()
    while pending:
        path = pending.pop()
        if path in seen:
            continue
        seen.add(path)
        inside = ".".join(path.relative_to(root).parent.parts)  # a/b/c.py, a/b/__init__.py: a.b
        tree = ast.parse(path.read_text(), str(path))
        for module, names in imported_names(tree, inside):
            top = module.partition(".")[0]
            if top == "__future__" or top in sys.stdlib_module_names:
                continue
            if top != package:
                found.add(top)
                continue
            parts = module.split(".")
            wanted = [".".join(parts[:i]) for i in range(1, len(parts) + 1)]
            wanted += [f"{module}.{name}" for name in names]  # `from churn import artifact`
            pending += [f for f in (module_file(root, m) for m in wanted) if f is not None]
    return found


def distributions_of(import_names: Iterable[str]) -> set[str]:
    """The installed distributions (canonical names) that provide these top-level modules."""
    providers = metadata.packages_distributions()
    unknown = sorted(name for name in import_names if name not in providers)
    if unknown:
        raise PackageListError(
            f"no installed package provides {', '.join(unknown)}: "
            "run this from the locked environment (make env)"
        )
    return {_canonical(d) for name in import_names for d in providers[name]}


def requirements_of(distribution: str, extra: str = "") -> set[str]:
    """The distributions ``distribution`` requires on this platform; with ``extra``, only
    those the extra adds. Markers are evaluated for this interpreter and platform (EMR's is
    Linux x86_64 and CPython 3.11, as the locked environment's)."""

    def applies(requirement: Requirement, chosen: str) -> bool:
        marker = requirement.marker
        return marker is None or marker.evaluate({"extra": chosen})

    requirements = [Requirement(line) for line in metadata.requires(distribution) or []]
    return {
        _canonical(r.name)
        for r in requirements
        if applies(r, extra) and not (extra and applies(r, ""))
    }


def with_dependencies(distributions: Iterable[str]) -> set[str]:
    closure: set[str] = set()
    pending = list(distributions)
    while pending:
        name = pending.pop()
        if name not in closure:
            closure.add(name)
            pending += requirements_of(name)
    return closure


def needed_distributions(entry: Path = ENTRY) -> set[str]:
    """Every distribution the Spark path imports on EMR, dependencies included, minus Spark's."""
    direct = distributions_of(third_party_imports(entry)) | requirements_of("pyspark", SPARK_EXTRA)
    return with_dependencies(direct - PROVIDED) - PROVIDED


def pinned(distributions: Iterable[str], lock_path: Path = ROOT / "Pipfile.lock") -> list[str]:
    """requirements.txt lines: each distribution at its locked version, with the lock's hashes."""
    lock = json.loads(lock_path.read_text())
    entries = {
        _canonical(name): entry
        for category in LOCK_CATEGORIES
        for name, entry in lock[category].items()
    }
    missing = sorted(set(distributions) - set(entries))
    if missing:
        raise PackageListError(f"{', '.join(missing)} not in {lock_path.name}: run pipenv lock")
    lines = []
    for name in sorted(distributions):
        hashes = "".join(f" \\\n    --hash={h}" for h in entries[name]["hashes"])
        lines.append(f"{name}{entries[name]['version']}{hashes}")
    return lines


def requirements_text() -> str:
    header = "# Written by emr/packages.py (make emr-requirements) from Pipfile.lock.\n"
    return header + "\n".join(pinned(needed_distributions())) + "\n"


def write_atomically(path: Path, text: str) -> None:
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    os.replace(temporary, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, help="file to write (default: stdout)")
    args = parser.parse_args(argv)
    try:
        text = requirements_text()
    except PackageListError as error:
        print(f"emr/packages.py: {error}", file=sys.stderr)
        return 1
    if args.output:
        write_atomically(args.output, text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
