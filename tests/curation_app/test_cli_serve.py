"""`hitl serve` refuses what production must not run with, before anything starts."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from curation_app.cli import main
from curation_app.serving import MAX_DEFAULT_WORKERS, ServerSettings, default_workers


@pytest.mark.parametrize("secret", [None, "", "short"])
def test_production_server_needs_a_real_secret_key(database_url: str, secret: str | None) -> None:
    env = {"HITL_SECRET_KEY": secret} if secret is not None else {"HITL_SECRET_KEY": None}
    result = CliRunner().invoke(main, ["serve", "--database-url", database_url], env=env)
    assert result.exit_code == 1
    assert "HITL_SECRET_KEY must be set" in result.output


def test_learn_every_belongs_to_the_dev_server(database_url: str) -> None:
    result = CliRunner().invoke(
        main, ["serve", "--learn-every", "5", "--database-url", database_url]
    )
    assert result.exit_code == 2 and "hitl learn --watch" in result.output


def test_serve_refuses_an_unmigrated_database(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/empty.sqlite3"
    result = CliRunner().invoke(
        main, ["serve", "--database-url", url], env={"HITL_SECRET_KEY": "s" * 32}
    )
    assert result.exit_code == 1 and "hitl db upgrade" in result.output


def test_gunicorn_settings() -> None:
    assert 1 <= default_workers() <= MAX_DEFAULT_WORKERS
    options = ServerSettings(host="127.0.0.1", port=5001, workers=3, threads=2).gunicorn_options()
    assert options["bind"] == "127.0.0.1:5001" and options["workers"] == 3
    assert options["worker_class"] == "gthread" and options["preload_app"] is False
    single = ServerSettings(threads=1).gunicorn_options()
    assert single["worker_class"] == "sync"
