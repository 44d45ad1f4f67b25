"""`hitl model promote`: the publish gate serves a challenger only when the log says it is
better, or when an admin forces it, and the audit log says why."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bandit.db.models import AuditEntry, ModelVersion
from bandit.engine import vw_format
from bandit.engine.config import PolicyConfig
from bandit.engine.policy import VWPolicy
from bandit.ope.log_format import build_log
from bandit.ope.policy_target import catalog_rows, context_dicts
from bandit.ope.targets import file_target
from bandit.services import accounts, configs, model_store, promotion
from bandit.services.export import export_log
from bandit.services.runtime import EngineRuntime
from curation_app.cli import main
from sim.curators import SimulatedCurator
from sim.demo_data import generate_catalog
from sim.loop import LoopSettings, run_loop
from sim.world import TrueRewardModel
from tests.conftest import DemoCatalog
from tests.ope.test_reward_range import far_target_log


@pytest.fixture
def trained(session_factory: sessionmaker[Session], demo_catalog: DemoCatalog) -> int:
    """A logged history with rewards; returns the newest (good) model version."""
    with session_factory() as session:
        configs.save_config(session, PolicyConfig(routing_mode="review_after"), "t", True)
        accounts.add_curator(session, "boss", "long-enough-pw", role="admin")
        session.commit()
    rng = np.random.default_rng(5)
    truth = TrueRewardModel.from_catalog(generate_catalog(200, 11), 11)
    curators = [SimulatedCurator("sim-gate", 0.95, 5.0, rng)]
    settings = LoopSettings(decisions=400, learn_every=30, reward_share=1.0)
    run_loop(
        session_factory, EngineRuntime(rng), truth, demo_catalog.customers, curators, settings, rng
    )
    with session_factory() as session:
        return model_store.latest_version_number(session)


def _serve_a_contrarian_model(sessions: sessionmaker[Session]) -> int:
    """Train a model on the log with every reward flipped and serve it: a clearly worse one."""
    with sessions() as session:
        exported = export_log(session)
        log = build_log(exported.rounds, exported.candidates, exported.items)
        config_row, config = configs.active_config(session)
        policy = VWPolicy.fresh(config)
        assert log.items is not None
        items = catalog_rows(log.items)
        actions = log.actions.to_pylist()
        contexts = context_dicts(log.context_frame())
        assert log.candidates is not None
        for row in range(log.rows):
            slots = np.flatnonzero(log.candidates.row == row)
            offered = [actions[a] for a in log.candidates.action[slots]]
            lines = [vw_format.action_line(items[a]) for a in offered]
            chosen = offered.index(actions[log.action[row]])
            flipped = 1.0 - float(log.reward[row])
            for _ in range(3):
                policy.learn(
                    vw_format.shared_line(contexts[row]),
                    lines,
                    chosen,
                    flipped,
                    float(log.propensity[row]),
                )
        saved = model_store.save_model(
            session, policy, config_row, log.rows, model_store.latest_model(session), "contrarian"
        )
        session.commit()
        return saved.version


def _promote(database_url: str, *arguments: str) -> Result:
    return CliRunner().invoke(
        main, ["model", "promote", *arguments, "--database-url", database_url]
    )


def _audit(sessions: sessionmaker[Session]) -> list[tuple[str, str, str]]:
    with sessions() as session:
        entries = session.scalars(
            select(AuditEntry).where(AuditEntry.action.like("model.promote%"))
        )
        return [(e.action, e.actor, e.details["reason"]) for e in entries]


def test_a_better_challenger_passes_the_gate_and_is_served(
    database_url: str, session_factory: sessionmaker[Session], trained: int
) -> None:
    contrarian = _serve_a_contrarian_model(session_factory)

    result = _promote(database_url, str(trained))

    assert result.exit_code == 0, result.output
    assert "passed:" in result.output
    with session_factory() as session:
        served = model_store.latest_model(session)
        good = session.scalars(select(ModelVersion).where(ModelVersion.version == trained)).one()
        assert served is not None and served.version == contrarian + 1
        assert served.model_bytes == good.model_bytes
    [(action, _, reason)] = _audit(session_factory)
    assert action == "model.promote" and reason.startswith(
        "passed: cascade-dr lower bound"
    )  # the slate value


def test_a_worse_challenger_is_refused_unless_an_admin_forces_it(
    database_url: str, session_factory: sessionmaker[Session], trained: int
) -> None:
    contrarian = _serve_a_contrarian_model(session_factory)
    _promote(database_url, str(trained))  # the good model is served again
    with session_factory() as session:
        served_before = model_store.latest_version_number(session)

    refused = _promote(database_url, str(contrarian))

    assert refused.exit_code != 0 and "was not promoted" in refused.output
    assert "refused: cascade-dr lower bound" in refused.output
    with session_factory() as session:
        assert model_store.latest_version_number(session) == served_before

    forced = _promote(database_url, str(contrarian), "--force-by", "boss")

    assert forced.exit_code == 0, forced.output
    with session_factory() as session:
        assert model_store.latest_version_number(session) == served_before + 1
    actions = [(a, actor) for a, actor, _ in _audit(session_factory)]
    assert actions[-2:] == [("model.promote_refused", "cli"), ("model.promote", "boss")]
    assert "forced by admin boss" in _audit(session_factory)[-1][2]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["999"], "no model version 999"),
        (["@served"], "already the version being served"),
        (["1", "--force-by", "sim-gate"], "is not an admin"),
        (["1", "--force-by", "nobody"], "is not an admin"),
    ],
    ids=["unknown-version", "served-version", "curator-not-admin", "unknown-admin"],
)
def test_bad_promotions_are_refused_and_change_nothing(
    database_url: str,
    session_factory: sessionmaker[Session],
    trained: int,
    arguments: list[str],
    message: str,
) -> None:
    arguments = [str(trained) if a == "@served" else a for a in arguments]

    result = _promote(database_url, *arguments)

    assert result.exit_code != 0
    assert message in result.output and "Traceback" not in result.output
    with session_factory() as session:
        assert model_store.latest_version_number(session) == trained
    assert _audit(session_factory) == []


@pytest.mark.parametrize(
    ("rare_reward", "clipped_to"), [(1.0, "1.0000"), (0.0, "0.0000")], ids=["above", "below"]
)
def test_estimates_beyond_the_reward_range_are_compared_clipped(
    database_url: str,
    session_factory: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    rare_reward: float,
    clipped_to: str,
) -> None:
    """Two versions that both favour an item the log showed twice: their `dr` lands outside
    [0, 1]. Reported, each value is clipped into its own interval; compared, the challenger's
    lower bound meets the incumbent's clipped value, so an identical challenger is refused
    (below the range, the unclipped bar let it pass)."""
    log, target = far_target_log(tmp_path, rare_reward)
    with session_factory() as session:
        config_row = configs.save_config(session, PolicyConfig(), "t", True)
        previous = None
        for note in ("challenger", "served"):
            previous = model_store.save_model(
                session, VWPolicy.fresh(PolicyConfig()), config_row, 0, previous, note
            )
        session.commit()
    # Both versions propose what the target file says: the gate's arithmetic is under test.
    monkeypatch.setattr(
        promotion, "frozen_model_target", lambda log, model, config, name: file_target(log, target)
    )

    result = _promote(database_url, "1", "--log", str(log))

    assert result.exit_code != 0 and "was not promoted" in result.output
    lines = re.findall(
        r"version +\d+: dr (\S+) \(clipped from (\S+)\) \[(\S+), (\S+)\]", result.output
    )
    assert len(lines) == 2, result.output
    for value, unclipped, low, high in lines:
        assert value == clipped_to and not 0.0 <= float(unclipped) <= 1.0
        assert 0.0 <= float(low) <= float(value) <= float(high) <= 1.0
    [(action, _, reason)] = _audit(session_factory)
    assert action == "model.promote_refused"
    assert reason.startswith(f"refused: dr lower bound 0.0000 <= incumbent estimate {clipped_to}")
    assert "(clipped from" in reason and "effective sample sizes 2.0 and 2.0 slates" in reason


def test_the_gate_holds_no_lock_while_it_replays_and_refuses_if_the_served_model_moved(
    database_url: str,
    session_factory: sessionmaker[Session],
    trained: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A replay can take minutes. A learn pass saving a model meanwhile must neither wait for
    it (on SQLite every transaction took the write lock, so ranks and learn passes queued
    behind the whole replay and failed after their busy timeout) nor be overwritten by a
    promotion that was compared with the model before it."""
    contrarian = _serve_a_contrarian_model(session_factory)
    real_evaluate = promotion.evaluate
    saved_meanwhile: list[int] = []

    def evaluate_while_the_learner_saves(*arguments: Any, **options: Any) -> Any:
        if not saved_meanwhile:
            with session_factory() as other:
                config_row, config = configs.active_config(other)
                latest = model_store.latest_model(other)
                policy = VWPolicy.fresh(config)
                saved = model_store.save_model(other, policy, config_row, 0, latest, "a pass")
                other.commit()
                saved_meanwhile.append(saved.version)
        return real_evaluate(*arguments, **options)

    monkeypatch.setattr(promotion, "evaluate", evaluate_while_the_learner_saves)
    result = _promote(database_url, str(trained))

    assert result.exit_code == 1, result.output  # a refusal, not a traceback
    assert saved_meanwhile == [contrarian + 1]
    assert "the served model changed while the gate compared" in result.output
    assert f"(version {contrarian} then, {contrarian + 1} now)" in result.output
    with session_factory() as session:
        assert model_store.latest_version_number(session) == contrarian + 1
    assert _audit(session_factory) == []
