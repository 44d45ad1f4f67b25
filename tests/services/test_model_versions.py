"""Model versions: list, checkpoint, rollback reaching a running console, new lineages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, select
from sqlalchemy.orm import Session, sessionmaker

from bandit.db.models import Decision, ModelVersion
from bandit.engine import vw_format
from bandit.engine.config import PolicyConfig
from bandit.engine.policy import VWPolicy
from bandit.engine.records import LoggedRound
from bandit.services import catalog_store, configs, decisions, learning, model_store
from curation_app.cli import main
from tests.api_support import activate_config, ranked, snapshot
from tests.conftest import DemoCatalog


def _train_version(sessions: sessionmaker[Session], context: dict[str, Any], favourite: int) -> int:
    """Teach the newest model that candidate `favourite` of a fixed list is best; save it."""
    with sessions() as session:
        config_row, config = configs.active_config(session)
        previous = model_store.latest_model(session)
        policy = (
            VWPolicy.fresh(config)
            if previous is None
            else VWPolicy.from_bytes(previous.model_bytes, config)
        )
        rows = catalog_store.load_index(session).rows[:20]
        catalog = {row.item_id: row for row in rows}
        offered = tuple(catalog)
        rounds = [
            LoggedRound("t", context, offered, offered[i], 0, 0.5, float(i == favourite), "t")
            for _ in range(20)
            for i in range(len(offered))
        ]
        learning.apply_rounds(policy, rounds, catalog)
        saved = model_store.save_model(session, policy, config_row, len(rounds), previous, "t")
        session.commit()
        return saved.version


def _stored_bytes(session: Session, version: int) -> bytes:
    row = session.scalars(select(ModelVersion).where(ModelVersion.version == version)).one()
    return row.model_bytes


def _scores_under(model: bytes, config: PolicyConfig, session: Session, decision: Decision) -> Any:
    rows = catalog_store.items_by_id(session, [c["item_id"] for c in decision.candidates])
    lines = [
        vw_format.action_line(catalog_store.as_row(rows[c["item_id"]])) for c in decision.candidates
    ]
    policy = VWPolicy.from_bytes(model, config)
    return policy.score(vw_format.shared_line(decision.context), lines)[1]


def test_rollback_reaches_a_running_console_without_restart(
    app: Flask,
    client: FlaskClient,
    auth_headers: dict[str, str],
    session_factory: sessionmaker[Session],
    demo_catalog: DemoCatalog,
) -> None:
    context = dict(demo_catalog.customers[0])
    first = _train_version(session_factory, context, favourite=3)
    assert ranked(client, auth_headers, context)["model_version"] == first
    second = _train_version(session_factory, context, favourite=11)
    # Explanations are computed when asked for: without "explain" the answer's "why" is empty.
    assert all(item["why"] == [] for item in ranked(client, auth_headers, context)["slate"])
    trained = ranked(client, auth_headers, context, explain=True)
    assert trained["model_version"] == second
    # A trained model explains its picks: "why" lists features with their score contributions.
    assert any(item["why"] for item in trained["slate"])
    assert all(set(w) == {"feature", "weight"} for item in trained["slate"] for w in item["why"])

    result = CliRunner().invoke(
        main, ["model", "rollback", str(first), "--database-url", app.config["DATABASE_URL"]]
    )
    assert result.exit_code == 0, result.output

    body = ranked(client, auth_headers, context)
    assert body["model_version"] == second + 1
    with session_factory() as session:
        decision = decisions.find_decision(session, body["event_id"])
        assert decision is not None
        _, config = configs.active_config(session)
        served = np.array([c["score"] for c in decision.candidates])
        expected = _scores_under(_stored_bytes(session, first), config, session, decision)
    assert np.allclose(served, expected, atol=1e-6)


def test_model_list_checkpoint_and_refused_rollbacks(
    database_url: str, session_factory: sessionmaker[Session], demo_catalog: DemoCatalog
) -> None:
    runner = CliRunner()
    url = ["--database-url", database_url]
    context = dict(demo_catalog.customers[1])
    assert "untrained" in runner.invoke(main, ["model", "list", *url]).output
    _train_version(session_factory, context, favourite=2)
    checkpoint = runner.invoke(main, ["model", "checkpoint", "--note", "before sale", *url])
    assert checkpoint.exit_code == 0 and "version 2" in checkpoint.output
    listing = runner.invoke(main, ["model", "list", *url]).output
    assert "checkpoint: before sale" in listing and "     2*" in listing

    missing = runner.invoke(main, ["model", "rollback", "9", *url])
    assert missing.exit_code == 1 and "version: no model version 9" in missing.output
    served = runner.invoke(main, ["model", "rollback", "2", *url])
    assert served.exit_code == 1 and "already the version being served" in served.output


@pytest.mark.parametrize(
    ("toml", "field"),
    [
        ('algorithm = "thompson"', "algorithm"),
        ("epsilon = 1.5", "epsilon"),
        ("epsilon = -0.2", "epsilon"),
        ("auto_threshold = 0.5\nreview_threshold = 0.8", "review_threshold"),
        ("candidate_count = 3\nslate_size = 5", "candidate_count"),
        ('uncertainty_measure = "vote_entropy"', "uncertainty_measure"),
        ('routing_mode = "sometimes"', "routing_mode"),
        ("learn_from_swap_ins = 1", "learn_from_swap_ins"),
    ],
    ids=[
        "unknown-algorithm",
        "epsilon-high",
        "epsilon-low",
        "thresholds",
        "k-below-m",
        "committee-without-bag",
        "routing-mode",
        "swap-in-flag",
    ],
)
def test_bad_policy_files_are_refused_by_name_and_nothing_changes(
    database_url: str,
    session_factory: sessionmaker[Session],
    tmp_path: Path,
    toml: str,
    field: str,
) -> None:
    activate_config(session_factory, name="live")
    before = snapshot(session_factory)
    path = tmp_path / "policy.toml"
    path.write_text(toml + "\n")
    result = CliRunner().invoke(main, ["policy", "set", str(path), "--database-url", database_url])
    assert result.exit_code == 1
    assert f"{field}:" in result.output
    assert snapshot(session_factory) == before


def test_a_reduction_change_needs_an_explicit_new_lineage(
    database_url: str,
    session_factory: sessionmaker[Session],
    demo_catalog: DemoCatalog,
    tmp_path: Path,
) -> None:
    _train_version(session_factory, dict(demo_catalog.customers[0]), favourite=1)
    path = tmp_path / "cover.toml"
    path.write_text('name = "default"\nalgorithm = "cover"\n')
    url = ["--database-url", database_url]
    before = snapshot(session_factory)

    refused = CliRunner().invoke(main, ["policy", "set", str(path), *url])
    assert refused.exit_code == 1 and "algorithm: model version 1" in refused.output
    assert snapshot(session_factory) == before

    accepted = CliRunner().invoke(main, ["policy", "set", str(path), "--new-model", *url])
    assert accepted.exit_code == 0, accepted.output
    assert "model version 2 starts a new, untrained lineage" in accepted.output
    with session_factory() as session:
        _, config = configs.active_config(session)
        assert config.algorithm == "cover"
        newest = model_store.latest_model(session)
        assert newest is not None and newest.examples_total == 0
    # The old lineage cannot be served under the new config: rollback names the field.
    rollback = CliRunner().invoke(main, ["model", "rollback", "1", *url])
    assert rollback.exit_code == 1 and "algorithm:" in rollback.output


def test_the_newest_model_is_read_as_one_row(session: Session, demo_catalog: DemoCatalog) -> None:
    """Every rank and learn pass asks for the newest model: a query that fetched every stored
    version (each with its model bytes) made a long-running loop slower with every pass."""
    row, _ = configs.active_config(session)
    for version in (1, 2, 3):
        session.add(ModelVersion(
            version=version, policy_config_id=row.id, vw_arguments="", examples_learned=1,
            examples_total=version, note="test", model_bytes=b"model" * 1000,
        ))  # fmt: skip
    session.flush()
    statements: list[str] = []
    connection = session.connection()

    def capture(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(connection, "before_cursor_execute", capture)
    try:
        saved = model_store.latest_model(session)
    finally:
        event.remove(connection, "before_cursor_execute", capture)
    assert saved is not None and saved.version == 3
    (query,) = [s for s in statements if "model_versions" in s]
    assert "LIMIT" in query.upper()
