"""The layout stays true: each layer imports only what its rules allow (walked with ast)."""

from __future__ import annotations

import ast
import re
from collections import Counter
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
    # The simulator drives the real service layer; never the web app or its framework.
    "sim": (
        frozenset({"numpy", "pandas", "matplotlib", "sqlalchemy"}),
        ("bandit.engine", "bandit.db", "bandit.services", "sim"),
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
        ("sim", "import flask", "flask"),
        ("sim", "from curation_app import create_app", "curation_app"),
    ],
)
def test_forbidden_edges_are_reported(tmp_path: Path, layer: str, line: str, expected: str) -> None:
    folder = tmp_path / layer
    folder.mkdir(parents=True)
    (folder / "scratch.py").write_text(line + "\n")
    problems = layer_violations(tmp_path)
    assert problems and all(expected in p for p in problems)


def named_on(page: str, module: Path, modules: list[Path], root: Path = ROOT) -> bool:
    """Whether `page` names `module`: by its path from the repository root, or by its file name
    standing alone (not the end of a longer name: `replay.py` is not named by `cli_replay.py`,
    nor by another folder's `x/replay.py`) when no other module has that name."""
    alone = r"(?<![\w/.-]){}(?!\w)"
    if re.search(alone.format(re.escape(module.relative_to(root).as_posix())), page):
        return True
    shared = Counter(path.name for path in modules)[module.name] > 1
    return not shared and re.search(alone.format(re.escape(module.name)), page) is not None


def project_modules(root: Path = ROOT) -> list[Path]:
    """Every module of the three packages, without their `__init__.py` files."""
    return [
        path
        for folder in ("bandit", "curation_app", "sim")
        for path in sorted((root / folder).rglob("*.py"))
        if path.name != "__init__.py"
    ]


def test_the_architecture_page_names_every_module() -> None:
    # docs/architecture.md is where a newcomer finds each stage of the loop; a module it does
    # not name is one nobody will find there.
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    modules = project_modules()
    unnamed = [str(p.relative_to(ROOT)) for p in modules if not named_on(page, p, modules)]
    assert not unnamed, f"docs/architecture.md does not name {unnamed}"


@pytest.mark.parametrize(
    ("page", "module", "named"),
    [
        ("`curation_app/cli_replay.py`", "bandit/ope/replay.py", False),  # a longer name
        ("`bandit/services/replay.py`", "bandit/ope/replay.py", False),  # another folder's
        ("`bandit/ope/replay.py` (evaluate)", "bandit/ope/replay.py", True),
        ("the estimators (`replay.py`, `targets.py`)", "bandit/ope/replay.py", True),
        ("`slate.py`", "bandit/ope/slate.py", False),  # two modules share the name
        ("`bandit/ope/slate.py`", "bandit/ope/slate.py", True),
    ],
)
def test_a_module_is_named_only_by_its_own_name(
    tmp_path: Path, page: str, module: str, named: bool
) -> None:
    for path in ("bandit/ope/replay.py", "bandit/ope/slate.py", "bandit/engine/slate.py"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("")
    modules = project_modules(tmp_path)
    assert named_on(page, tmp_path / module, modules, tmp_path) is named
