"""Export from the database: the same numbers from --db and from the file; DSJSON and OBP shapes."""

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from sqlalchemy.orm import Session, sessionmaker
from vowpalwabbit import Workspace

from bandit.engine.config import PolicyConfig
from bandit.engine.vocabulary import DecisionStatus
from bandit.ope.log_format import load_log
from bandit.services import accounts, configs, decisions, learning, review, rewards
from bandit.services.export import export_log
from bandit.services.review import ItemVerdict
from bandit.services.runtime import EngineRuntime
from curation_app.cli import main
from tests.conftest import DemoCatalog

EVENTS = 14


@pytest.fixture
def logged_history(session_factory: sessionmaker[Session], demo_catalog: DemoCatalog) -> None:
    """A short history through the real services: ranks, reviews (keep/remove/swap), rewards."""
    rng = np.random.default_rng(5)
    with session_factory() as session:
        config = PolicyConfig(name="small", candidate_count=8, slate_size=3, auto_threshold=0.999)
        configs.save_config(session, config, created_by="test", activate=True)
        curator = accounts.add_curator(session, "ope-curator", "ope-password-123")
        session.commit()
        curator_id = curator.id
    runtime = EngineRuntime(rng)
    for index in range(EVENTS):
        with session_factory() as session:
            context = demo_catalog.customers[index % len(demo_catalog.customers)]
            decision, _ = decisions.rank(session, runtime, decisions.RankRequest(context=context))
            session.commit()
            task = review.claim_next(session, curator_id)
            session.commit()
            if task is not None and index % 3 != 0:
                verdicts = [
                    ItemVerdict(p.position, "keep" if (p.position + index) % 2 else "remove")
                    for p in task.decision.proposed
                ]
                review.submit_review(
                    session, task.id, curator_id, task.lease_token or "", verdicts, 12.0
                )
                session.commit()
            session.refresh(decision)
            if decision.status == DecisionStatus.DELIVERED and index % 2 == 0:
                rewards.record_reward(
                    session, decision.event_id, float(index % 4 == 0), None, "test"
                )
                session.commit()
        if index % 5 == 4:
            with session_factory() as session:
                learning.learn_pending(session)
                session.commit()


def _replay(args: list[str], out: Path, env: dict[str, str] | None = None) -> dict:
    result = CliRunner(env=env).invoke(
        main,
        [
            "replay",
            *args,
            "--target",
            "uniform",
            "--estimand",
            "position",
            "--estimators",
            "ips,snips,dm,dr",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    return json.loads((out / "replay.json").read_text())


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_replay_from_db_equals_replay_from_exported_file(
    database_url: str, logged_history: None, tmp_path: Path, suffix: str
) -> None:
    file = tmp_path / f"log{suffix}"
    result = CliRunner().invoke(
        main, ["export", "--out", str(file), "--database-url", database_url]
    )
    assert result.exit_code == 0, result.output
    from_db = _replay(["--db", database_url], tmp_path / "db")
    from_file = _replay(["--log", str(file)], tmp_path / "file")
    assert from_db["rows"] == from_file["rows"] > 0
    for name in ("ips", "snips", "dm", "dr"):
        for field in ("value", "ci_low", "ci_high", "ess"):
            assert from_file["estimators"][name][field] == pytest.approx(
                from_db["estimators"][name][field], rel=1e-9, abs=1e-12
            ), (name, field)


def test_replay_reads_the_database_named_by_hitl_database_url(
    database_url: str, logged_history: None, tmp_path: Path
) -> None:
    from_option = _replay(["--database-url", database_url], tmp_path / "option")
    from_env = _replay([], tmp_path / "env", env={"HITL_DATABASE_URL": database_url})
    assert from_env["rows"] == from_option["rows"] > 0
    assert from_env["estimators"] == from_option["estimators"]


def test_a_log_file_wins_over_hitl_database_url(
    database_url: str, logged_history: None, tmp_path: Path
) -> None:
    file = tmp_path / "log.parquet"
    exported = CliRunner().invoke(
        main, ["export", "--out", str(file), "--database-url", database_url]
    )
    assert exported.exit_code == 0, exported.output
    from_file = _replay(["--log", str(file)], tmp_path / "file")
    # A database that cannot be opened: reading it would fail the replay.
    unreachable = {"HITL_DATABASE_URL": f"sqlite:///{tmp_path / 'no' / 'such' / 'hitl.db'}"}
    with_env = _replay(["--log", str(file)], tmp_path / "with-env", env=unreachable)
    assert with_env["rows"] == from_file["rows"] > 0
    assert with_env["estimators"] == from_file["estimators"]


def test_replay_refuses_both_sources_and_neither_on_the_command_line(tmp_path: Path) -> None:
    file = tmp_path / "log.parquet"
    both = CliRunner().invoke(
        main, ["replay", "--log", str(file), "--database-url", "sqlite://", "--target", "uniform"]
    )
    neither = CliRunner().invoke(main, ["replay", "--target", "uniform"])
    for result in (both, neither):
        assert result.exit_code == 2
        assert "--log FILE or --database-url URL" in result.output


def test_export_rows_follow_the_documented_reward_rule(
    session_factory: sessionmaker[Session], logged_history: None
) -> None:
    with session_factory() as session:
        exported = export_log(session)
    rounds = exported.rounds.to_pandas()
    assert exported.pending + len(rounds) == EVENTS * 3
    curator = rounds[rounds["reward_source"] == "curator_proxy"]
    expected = curator["curator_verdict"].map({"kept": 1.0, "removed": 0.0, "swapped": 0.0})
    assert (curator["reward"] == expected).all()
    assert set(rounds["reward_source"]) <= {"customer", "curator_proxy", "default"}
    assert ((rounds["propensity"] > 0) & (rounds["propensity"] <= 1)).all()
    assert {"context_segment", "context_taste_0", "confidence", "model_version"} <= set(rounds)
    assert set(exported.items.column("item_id").to_pylist()) >= set(rounds["action"])


def test_dsjson_and_obp_exports_have_the_documented_shapes(
    database_url: str, logged_history: None, tmp_path: Path
) -> None:
    log_file = tmp_path / "log.parquet"
    runner = CliRunner()
    assert (
        runner.invoke(
            main, ["export", "--out", str(log_file), "--database-url", database_url]
        ).exit_code
        == 0
    )
    log = load_log(log_file)
    dsjson = tmp_path / "log.dsjson"
    result = runner.invoke(
        main, ["export", "--log", str(log_file), "--format", "dsjson", "--out", str(dsjson)]
    )
    assert result.exit_code == 0, result.output
    lines = dsjson.read_text().splitlines()
    # Slates go out as VW's CCB DSJSON: one line per event, one slot and outcome per position.
    events = len(set(log.rounds.column("event_id").to_pylist()))
    assert len(lines) == events
    workspace = Workspace("--ccb_explore_adf --dsjson --strict_parse --quiet -q UI")
    try:
        for line in lines:
            document = json.loads(line)
            assert len(document["c"]["_slots"]) == len(document["_outcomes"])
            for outcome in document["_outcomes"]:
                assert sum(outcome["_p"]) == pytest.approx(1.0)
            examples = workspace.parse(line)
            workspace.learn(examples)
            workspace.finish_example(examples)
    finally:
        workspace.finish()

    npz = tmp_path / "obp.npz"
    result = runner.invoke(
        main,
        [
            "export",
            "--log",
            str(log_file),
            "--format",
            "obp",
            "--target",
            "uniform",
            "--out",
            str(npz),
        ],
    )
    assert result.exit_code == 0, result.output
    feedback = np.load(npz, allow_pickle=True)
    n, actions, slots = int(feedback["n_rounds"]), int(feedback["n_actions"]), 3
    assert feedback["action_dist"].shape == (n, actions, slots)
    for key in ("action", "reward", "pscore", "position"):
        assert feedback[key].shape == (n,)
    rows = np.arange(n)
    at_position = feedback["action_dist"][rows, :, feedback["position"]]
    np.testing.assert_allclose(at_position.sum(axis=1), 1.0)
    # OBP's IPS on these arrays equals ours.
    weight = at_position[rows, feedback["action"]] / feedback["pscore"]
    ours = json.loads(json.dumps(_replay(["--log", str(log_file)], tmp_path / "r")))
    assert np.mean(weight * feedback["reward"]) == pytest.approx(ours["estimators"]["ips"]["value"])
