"""Tuning: a clearly better exploration setting ranks first; workload follows the thresholds."""

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bandit.db.models import PolicyConfigRow
from bandit.engine.config import PolicyConfig
from bandit.engine.routing import route_for
from bandit.engine.vocabulary import Route, RoutingMode
from bandit.ope.log_format import build_log, write_log
from bandit.ope.synthetic import SyntheticWorld, action_names
from bandit.ope.tuning import GridError, event_workload, load_grid
from curation_app.cli import main

GRID = """
[base]
name = "tuned"
candidate_count = 5
slate_size = 1

[grid]
epsilon = [0.6, 0.02]
auto_threshold = [0.5, 0.9]
review_threshold = [0.3]

[objective]
estimator = "snips"
max_review_share = 0.7
"""


def _synthetic_log(tmp_path: Path) -> Path:
    world = SyntheticWorld.make(segments=3, actions=5, seed=8, temperature=3.0)
    rng = np.random.default_rng(12)
    rounds, candidates, _ = world.sample(1500, rng)
    confidence = rng.uniform(size=rounds.num_rows)
    verdict = np.where(rounds.column("reward").to_numpy() > 0, "kept", "removed")
    rounds = rounds.append_column("confidence", pa.array(confidence))
    rounds = rounds.append_column("curator_verdict", pa.array(verdict))
    items = pa.table({"item_id": action_names(5), "category": ["c"] * 5})
    path = tmp_path / "log.parquet"
    write_log(rounds, candidates, items, path)
    return path


def test_tune_ranks_the_less_wasteful_exploration_first_and_saves_it(
    tmp_path: Path, database_url: str, session_factory: sessionmaker[Session]
) -> None:
    log_file = _synthetic_log(tmp_path)
    grid = tmp_path / "grid.toml"
    grid.write_text(GRID)
    result = CliRunner().invoke(
        main,
        [
            "tune",
            "--log",
            str(log_file),
            "--grid",
            str(grid),
            "--out",
            str(tmp_path / "t"),
            "--save",
            "tuned-best",
            "--database-url",
            database_url,
        ],
    )
    assert result.exit_code == 0, result.output
    print(result.output)
    document = json.loads((tmp_path / "t" / "tune.json").read_text())
    points = document["points"]
    assert len(points) == 4
    assert points[0]["config"]["epsilon"] == 0.02 and points[1]["config"]["epsilon"] == 0.02
    best_low = points[0]["estimate"]["ci_low"]
    assert best_low > max(p["estimate"]["ci_high"] for p in points if p["config"]["epsilon"] == 0.6)
    # Equal reward: the lighter workload that stays within the limit is recommended.
    recommended = document["recommended"]
    assert recommended["config"]["epsilon"] == 0.02
    assert recommended["config"]["auto_threshold"] == 0.5
    assert recommended["workload"]["review_share"] == pytest.approx(0.5, abs=0.05)
    with session_factory() as session:
        row = session.scalars(
            select(PolicyConfigRow).where(PolicyConfigRow.name == "tuned-best")
        ).one()
        assert row.version == 1 and not row.active
        assert row.document["epsilon"] == 0.02 and row.document["auto_threshold"] == 0.5


def test_workload_follows_the_thresholds(tmp_path: Path) -> None:
    from bandit.ope.log_format import load_log

    log = load_log(_synthetic_log(tmp_path))
    loose = event_workload(log, PolicyConfig(auto_threshold=0.2, review_threshold=0.1))
    strict = event_workload(log, PolicyConfig(auto_threshold=0.9, review_threshold=0.6))
    always = event_workload(log, PolicyConfig(routing_mode="review_before"))
    assert loose.review_share == pytest.approx(0.2, abs=0.04)
    assert strict.review_share == pytest.approx(0.9, abs=0.04)
    assert strict.blocking_share == pytest.approx(0.6, abs=0.04)
    assert always.review_share == always.blocking_share == 1.0
    assert 0.0 < loose.unreviewed_rejection < 1.0


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[grid]\n", r"\[grid\] table must list"),
        ("[grid]\nepsilon = 0.1\n", "grid.epsilon: must be a non-empty list"),
        ("[grid]\nwobble = [1]\n", "grid.wobble: not a policy config field"),
        ("[grid]\nepsilon = [2.0]\n", "epsilon: must be in"),
        ('[grid]\nepsilon = [0.1]\n[objective]\nestimator = "dm"\n', "objective.estimator"),
        ("[grids]\n", r"unknown table \[grids\]"),
    ],
)
def test_bad_grids_name_the_field(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "grid.toml"
    path.write_text(text)
    with pytest.raises(GridError, match=match):
        load_grid(path)


def test_tune_cli_reports_a_bad_grid_without_a_traceback(tmp_path: Path) -> None:
    log_file = _synthetic_log(tmp_path)
    grid = tmp_path / "grid.toml"
    grid.write_text("[grid]\nwobble = [1]\n")
    result = CliRunner().invoke(main, ["tune", "--log", str(log_file), "--grid", str(grid)])
    assert result.exit_code != 0
    assert "grid.wobble" in result.output and "Traceback" not in result.output


def test_synthetic_log_is_valid() -> None:
    world = SyntheticWorld.make()
    rounds, candidates, _ = world.sample(10, np.random.default_rng(0))
    assert build_log(rounds, candidates).rows == 10


ROUTING_GRID = """
[base]
name = "routing"
candidate_count = 5
slate_size = 2
auto_threshold = 0.0
review_threshold = 0.0

[grid]
routing_mode = ["review_before", "partial"]
"""


def test_tune_with_sim_measures_reward_and_workload_of_every_point(tmp_path: Path) -> None:
    log_file = _synthetic_log(tmp_path)
    grid = tmp_path / "grid.toml"
    grid.write_text(ROUTING_GRID)
    scenario = tmp_path / "scenario.toml"
    scenario.write_text("[world]\nitems = 120\ncustomers = 20\nlearn_every = 5\n")
    arguments = ["tune", "--log", str(log_file), "--grid", str(grid), "--out", str(tmp_path)]

    result = CliRunner().invoke(main, [*arguments, "--sim", str(scenario), "--sim-rounds", "30"])

    assert result.exit_code == 0, result.output
    assert "simulated, 30 decisions each" in result.output
    points = json.loads((tmp_path / "tune.json").read_text())["points"]
    simulated = {p["config"]["routing_mode"]: p["simulated"] for p in points}
    # Always reviewed: curators spend minutes and nothing is automated; with both thresholds
    # at 0 every decision goes out unreviewed.
    assert simulated["review_before"]["automation_rate"] == 0.0
    assert simulated["review_before"]["curator_minutes_per_1000"] > 0
    assert simulated["partial"]["automation_rate"] == 1.0
    assert simulated["partial"]["curator_minutes_per_1000"] == 0.0
    for result_row in simulated.values():
        assert 0 < result_row["reward_per_decision"]


LIVE_ROUTED_MODES = [m for m in RoutingMode if m != RoutingMode.RISK_CONTROLLED]


@pytest.mark.parametrize("mode", LIVE_ROUTED_MODES)
def test_workload_routes_each_event_as_live_routing_would(tmp_path: Path, mode: str) -> None:
    from bandit.ope.log_format import load_log

    log = load_log(_synthetic_log(tmp_path))
    config = PolicyConfig(routing_mode=mode, auto_threshold=0.9, review_threshold=0.5)
    first = np.unique(log.event, return_index=True)[1]
    logged = log.column("confidence")
    assert logged is not None
    confidence = logged.astype(float)[first]
    routes = np.array([route_for(float(c), config) for c in confidence])
    workload = event_workload(log, config)
    assert workload.review_share == pytest.approx(np.mean(routes != Route.AUTO))
    assert workload.blocking_share == pytest.approx(np.mean(routes == Route.REVIEW_BEFORE))


def test_apprentice_mode_sends_every_event_to_review_before_output(tmp_path: Path) -> None:
    from bandit.ope.log_format import load_log

    log = load_log(_synthetic_log(tmp_path))
    apprentice = event_workload(log, PolicyConfig(routing_mode="apprentice"))
    assert apprentice.review_share == apprentice.blocking_share == 1.0
    assert np.isnan(apprentice.unreviewed_rejection)  # nothing goes out unreviewed


RISK_GRID = """
[base]
candidate_count = 5
slate_size = 1

[grid]
routing_mode = ["partial", "risk_controlled"]
"""


def test_risk_controlled_workload_is_refused_not_made_up(tmp_path: Path) -> None:
    from bandit.ope.log_format import load_log

    log_file = _synthetic_log(tmp_path)
    with pytest.raises(GridError, match=r"routing_mode.*risk_controlled.*learn pass"):
        event_workload(load_log(log_file), PolicyConfig(routing_mode="risk_controlled"))
    grid = tmp_path / "grid.toml"
    grid.write_text(RISK_GRID)
    with pytest.raises(GridError, match=r"grid point 2.*routing_mode.*risk_controlled"):
        load_grid(grid)
    result = CliRunner().invoke(main, ["tune", "--log", str(log_file), "--grid", str(grid)])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "routing_mode" in result.output and "%" not in result.output
