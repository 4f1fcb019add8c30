"""The design's import table (DESIGN.md, "Packages, and who may import whom"), held.

Every module of every package is parsed (not imported), and each ``import``
and ``from ... import`` it contains is checked against the table, wherever it
sits: at the top, inside a function, or under ``if TYPE_CHECKING:`` (a
type-only arrow is still an arrow: it is the design telling us something).
A constant string given to ``importlib.import_module`` counts as well.

The table lives here as data; a package that ``pyproject.toml`` ships but the
table does not name fails the test, so a new package has to take its place.
"""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Who may import whom. Standard library and third-party imports are always
# fine; only the project's own top-level packages are judged. A package may
# always import itself.
PROJECT = frozenset(
    {"connectors", "mappings", "hub", "workers", "s2s", "emulators", "bench", "tests"}
)
ALLOWED: dict[str, frozenset[str]] = {
    # Channel intake reads order JSON in the maps' scalar vocabulary and
    # names canonical address fields (``connectors.intake``): the one arrow
    # the design did not draw, to pure code with no I/O.
    "connectors": frozenset({"mappings"}),
    "mappings": frozenset(),
    "hub": frozenset(),
    "emulators": frozenset(),
    "workers": frozenset({"connectors", "mappings", "hub"}),
    "s2s": PROJECT - {"tests"},
    "bench": PROJECT,
}


@dataclass(frozen=True)
class Arrow:
    """One import of the project's code by a module of the project."""

    path: str
    line: int
    importer: str
    imported: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.importer} imports {self.imported}"


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    """The absolute names a ``from`` import reaches (relative ones resolved)."""
    if node.level == 0:
        return [node.module or ""]
    package = module.split(".") if is_package else module.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    if node.module:
        return [".".join([*base, node.module])]
    return [".".join([*base, alias.name]) for alias in node.names]


def _imported_names(tree: ast.AST, module: str, is_package: bool) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            for name in _resolve(node, module, is_package):
                yield node.lineno, name
        elif isinstance(node, ast.Call) and _is_dynamic_import(node.func):
            first = node.args[0] if node.args else None
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                yield node.lineno, first.value


def _is_dynamic_import(func: ast.expr) -> bool:
    if isinstance(func, ast.Attribute):
        return func.attr == "import_module"
    return isinstance(func, ast.Name) and func.id in {"import_module", "__import__"}


def arrows(root: Path, packages: set[str] | frozenset[str]) -> Iterator[Arrow]:
    """Every import of one project package by another, in ``packages`` under ``root``."""
    for package in sorted(packages):
        for path in sorted((root / package).rglob("*.py")):
            module = _module_name(path, root)
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for line, name in _imported_names(tree, module, path.name == "__init__.py"):
                top = name.split(".")[0]
                if top in PROJECT and top != package:
                    rel = path.relative_to(root).as_posix()
                    yield Arrow(rel, line, module, name)


def violations(root: Path, allowed: dict[str, frozenset[str]]) -> list[str]:
    """The arrows the table does not allow, one line each."""
    return [
        str(arrow)
        for arrow in arrows(root, set(allowed))
        if arrow.imported.split(".")[0] not in allowed[arrow.path.split("/")[0]]
    ]


def test_the_project_keeps_the_import_table() -> None:
    # The scan sees the arrows the table allows (so an empty result means something).
    seen = {(a.path.split("/")[0], a.imported.split(".")[0]) for a in arrows(ROOT, ALLOWED)}
    assert {("workers", "hub"), ("workers", "connectors"), ("s2s", "workers")} <= seen
    found = violations(ROOT, ALLOWED)
    assert found == [], "imports the design's table does not allow:\n" + "\n".join(found)


def test_the_table_names_every_package_the_project_ships() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    shipped = {p.rstrip("*") for p in config["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert shipped == set(ALLOWED)
    for package in shipped:
        assert any((ROOT / package).rglob("*.py")), package


def _tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    for package in ALLOWED:
        (root / package).mkdir(exist_ok=True)
        (root / package / "__init__.py").touch()
    return root


TYPE_ONLY = (
    "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from hub.models import Order\n"
)
DYNAMIC = "import importlib\nimportlib.import_module('workers.app')\n"
IN_FUNCTION = "def f():\n    import workers.tasks\n    return workers.tasks\n"


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        # Allowed: the standard library, third parties, the package itself, the table's arrows.
        ({"hub/a.py": "import os\nimport sqlalchemy\nfrom hub import b\n"}, []),
        ({"hub/sub/a.py": "from .. import db\nfrom . import x\nfrom ..db import y\n"}, []),
        ({"workers/a.py": "import connectors.sql\nfrom mappings import core\nimport hub\n"}, []),
        ({"s2s/a.py": "import workers\nimport emulators.sql_erp\nimport bench.run\n"}, []),
        ({"bench/a.py": "import tests.conftest\nimport s2s.cli\n"}, []),
        # Forbidden, however written.
        ({"connectors/a.py": "from hub.models import Source\n"}, ["connectors/a.py:1"]),
        ({"mappings/a.py": "import connectors.base\n"}, ["mappings/a.py:1"]),
        ({"hub/a.py": "from workers import tasks\n"}, ["hub/a.py:1"]),
        ({"emulators/a.py": "x = 1\nimport hub\n"}, ["emulators/a.py:2"]),
        ({"workers/a.py": "from s2s.cli import main\n"}, ["workers/a.py:1"]),
        ({"workers/a.py": "import emulators.serving\n"}, ["workers/a.py:1"]),
        ({"s2s/a.py": "from tests.conftest import Hub\n"}, ["s2s/a.py:1"]),
        ({"connectors/a.py": TYPE_ONLY}, ["connectors/a.py:3"]),
        ({"hub/a.py": IN_FUNCTION}, ["hub/a.py:2"]),
        ({"hub/a.py": DYNAMIC}, ["hub/a.py:2"]),
        # A relative import that climbs out of the package is an import of another one.
        ({"hub/a.py": "from .. import workers\n"}, ["hub/a.py:1"]),
        ({"hub/migrations/env.py": "import hub.db\nimport mappings\n"}, ["env.py:2"]),
        ({"hub/__init__.py": "from . import db\nfrom connectors import sql\n"}, ["__init__.py:2"]),
    ],
)
def test_a_violation_fails_the_contract(
    tmp_path: Path, files: dict[str, str], expected: list[str]
) -> None:
    found = violations(_tree(tmp_path, files), ALLOWED)
    assert len(found) == len(expected), found
    for line, where in zip(found, expected, strict=True):
        assert where in line.split(": ")[0], (where, line)
