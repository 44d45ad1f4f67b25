"""The layout stays true: each layer imports only what its rules allow (walked with ast)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROJECT = ("bandit", "curation_app", "sim", "tests")
STDLIB = frozenset(__import__("sys").stdlib_module_names) | {"__future__"}

# Layer (a folder) -> the top-level packages and project modules it may import.
RULES: dict[str, tuple[frozenset[str], tuple[str, ...]]] = {
    # The pure engine: numerics (and the limit on their native threads) and Vowpal Wabbit only.
    "bandit/engine": (
        frozenset({"numpy", "scipy", "threadpoolctl", "vowpalwabbit", "pylibvw"}),
        ("bandit.engine",),
    ),
    # Offline evaluation reads files and arrays, never a Session.
    "bandit/ope": (
        frozenset({"numpy", "scipy", "pandas", "pyarrow", "vowpalwabbit"}),
        ("bandit.engine", "bandit.ope"),
    ),
    "bandit/db": (
        frozenset({"sqlalchemy", "alembic", "migrations", "orjson"}),
        ("bandit.db", "bandit.engine"),
    ),
    # Everything that takes a Session; never the web framework.
    "bandit/services": (
        frozenset({"numpy", "scipy", "pandas", "pyarrow", "sqlalchemy", "werkzeug", "matplotlib"}),
        ("bandit.engine", "bandit.ope", "bandit.db", "bandit.services"),
    ),
}
# The web app never formats VW text, and nothing below it imports it.
FORBIDDEN_FOR_APP = ("bandit.engine.vw_format",)


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            if node.module.split(".")[0] in PROJECT:
                # `from bandit.engine import vw_format` imports bandit.engine.vw_format.
                found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def layer_violations(root: Path = ROOT) -> list[str]:
    """Every import edge that breaks a layer's rule, as 'file:line imports module'."""
    problems = []
    for layer, (packages, project) in RULES.items():
        for path in sorted((root / layer).rglob("*.py")):
            for line, module in _imports(path):
                top = module.split(".")[0]
                if top in STDLIB or top in packages:
                    continue
                if top in PROJECT:
                    if any(module == p or module.startswith(p + ".") for p in project):
                        continue
                    if module.rsplit(".", 1)[0] in project and top == "bandit":
                        continue  # `from bandit.engine import name` where name is not a module
                problems.append(f"{path.relative_to(root)}:{line} imports {module}")
    for path in sorted((root / "curation_app").rglob("*.py")):
        for line, module in _imports(path):
            if module in FORBIDDEN_FOR_APP:
                problems.append(f"{path.relative_to(root)}:{line} imports {module}")
    return problems


def test_every_import_respects_its_layer() -> None:
    assert layer_violations() == []


def test_engine_has_no_database_handle(tmp_path: Path) -> None:
    """The check itself catches a forbidden edge (a scratch copy of the engine importing SQL)."""
    scratch = tmp_path / "bandit" / "engine"
    scratch.mkdir(parents=True)
    source = (ROOT / "bandit/engine/pruning.py").read_text()
    (scratch / "pruning.py").write_text("from sqlalchemy.orm import Session\n" + source)
    assert layer_violations(tmp_path) == ["bandit/engine/pruning.py:1 imports sqlalchemy.orm"]


@pytest.mark.parametrize(
    ("layer", "line", "expected"),
    [
        ("bandit/ope", "from bandit.services import learning", "bandit.services"),
        ("bandit/engine", "import pandas", "pandas"),
        ("bandit/services", "from curation_app import create_app", "curation_app"),
        ("bandit/services", "import flask", "flask"),
    ],
)
def test_forbidden_edges_are_reported(tmp_path: Path, layer: str, line: str, expected: str) -> None:
    folder = tmp_path / layer
    folder.mkdir(parents=True)
    (folder / "scratch.py").write_text(line + "\n")
    problems = layer_violations(tmp_path)
    assert problems and all(expected in p for p in problems)


def test_the_architecture_page_names_every_module() -> None:
    # docs/architecture.md is where a newcomer finds each stage of the loop; a module it does
    # not name is one nobody will find there.
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    unnamed = [
        str(path.relative_to(ROOT))
        for folder in ("bandit", "curation_app", "sim")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if path.name != "__init__.py" and path.name not in page
    ]
    assert not unnamed, f"docs/architecture.md does not name {unnamed}"
