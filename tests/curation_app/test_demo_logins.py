"""The logins `make demo` creates and prints: the curator reaches the queue, the admin the
admin pages, each with the password the demo prints and the README gives."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask

from curation_app.cli import main
from tests.curation_app.test_console import login

ROOT = Path(__file__).resolve().parents[2]


def _demo_recipe() -> list[str]:
    """The lines of the Makefile's `demo` target."""
    lines = (ROOT / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("demo:"))
    recipe = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip().lstrip("@"))
    return recipe


def _demo_accounts() -> list[tuple[str, str, list[str]]]:
    """(username, password, hitl arguments) of each `hitl curator add` the demo runs."""
    found = []
    for line in _demo_recipe():
        if not line.startswith("$(BIN)/hitl curator add "):
            continue
        words = shlex.split(line)
        password = words[words.index("--password") + 1]
        found.append((words[3], password, words[1:]))
    return found


def test_the_demo_creates_and_prints_a_curator_and_an_admin_login() -> None:
    accounts = {name: password for name, password, _ in _demo_accounts()}
    assert accounts == {"curator": "curator-demo", "admin": "admin-demo"}
    printed = " ".join(line for line in _demo_recipe() if line.startswith("echo"))
    readme = (ROOT / "README.md").read_text()
    quick_start = readme[readme.index("## Quick start") : readme.index("## What it is")]
    assert re.findall(r"^make \w+$", quick_start, re.MULTILINE) == ["make demo", "make test"]
    for name, password in accounts.items():
        assert f"{name} / {password}" in printed
        assert f"`{name}` / `{password}`" in quick_start


@pytest.mark.parametrize("page", ["/settings", "/quality", "/settings/audit"])
def test_the_demo_admin_reaches_the_admin_pages_and_the_curator_does_not(
    app: Flask, database_url: str, page: str
) -> None:
    runner = CliRunner()
    for _, _, arguments in _demo_accounts():
        for _ in range(2):  # `make demo` run twice: --if-missing keeps the first accounts
            result = runner.invoke(main, [*arguments, "--database-url", database_url])
            assert result.exit_code == 0, result.output
    logins = {name: password for name, password, _ in _demo_accounts()}

    curator, admin = app.test_client(), app.test_client()
    assert login(curator, "curator", logins["curator"]).status_code == 302
    assert curator.get(page).status_code == 403
    assert login(admin, "admin", logins["admin"]).status_code == 302
    assert admin.get(page).status_code == 200
