"""`hitl simulate --seeds ... --dask local:2`: a seed sweep on two worker processes gives each
seed's sequential result, and a summary across seeds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from curation_app.cli import main
from curation_app.cli_sim import parse_seeds
from tests.sim.test_simulate import SMALL_SCENARIO

# The small scenario with one short noise run: the sweep's cost is runs x seeds.
TINY = SMALL_SCENARIO.replace("accuracies = [0.6, 1.0]", "accuracies = [0.8]").replace(
    "rounds = 15", "rounds = 10"
)

pytestmark = pytest.mark.slow


def test_a_seed_sweep_on_dask_matches_the_sequential_sweep(tmp_path: Path) -> None:
    scenario = tmp_path / "tiny.toml"
    scenario.write_text(TINY, encoding="utf-8")
    common = ["simulate", "--config", str(scenario), "--rounds", "10"]
    on_dask = CliRunner().invoke(
        main, [*common, "--seeds", "3-4", "--out", str(tmp_path / "dask"), "--dask", "local:2"]
    )
    assert on_dask.exit_code == 0, on_dask.output
    # The sequential reference for one of the seeds (each run costs the same).
    alone = CliRunner().invoke(main, [*common, "--seeds", "4", "--out", str(tmp_path / "alone")])
    assert alone.exit_code == 0, alone.output
    sequential = json.loads((tmp_path / "alone" / "sweep.json").read_text())
    distributed = json.loads((tmp_path / "dask" / "sweep.json").read_text())
    assert distributed["seeds"] == [3, 4]
    # The same seed is the same run wherever it runs.
    (theirs,) = sequential["per_seed"]
    mine = next(s for s in distributed["per_seed"] if s["seed"] == 4)
    assert mine["runs"] == theirs["runs"]
    assert (tmp_path / "dask" / "seed-3" / "report.json").exists()
    policy = distributed["summary"]["policy"]["reward_per_decision"]
    values = [s["runs"]["policy"]["reward_per_decision"] for s in distributed["per_seed"]]
    assert policy["mean"] == pytest.approx(sum(values) / 2)
    assert "2 seeds" in on_dask.output


def test_seed_lists_and_ranges_parse() -> None:
    assert parse_seeds("1,3-5, 3") == [1, 3, 4, 5]


@pytest.mark.parametrize("bad", ["", "a", "5-3", "1-5000"])
def test_bad_seed_lists_are_usage_errors(bad: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["simulate", "--seeds", bad, "--out", str(tmp_path)])
    assert result.exit_code == 2 and "--seeds" in result.output


def test_dask_without_seeds_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["simulate", "--dask", "local:2", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "--seeds" in result.output
