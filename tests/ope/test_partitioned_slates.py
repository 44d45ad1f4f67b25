"""`hitl replay --dask` on slate logs: the same report as the single-process path, field by
field (estimand, slate length, headline, estimators, intervals, ESS, warnings, reward split),
on a two-process local cluster."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from click.testing import CliRunner
from distributed import LocalCluster

from bandit.ope.log_format import write_log
from bandit.ope.slate_world import SlateWorld
from bandit.ope.synthetic import action_names
from curation_app.cli import main

TOLERANCE = 1e-9


def _slate_partitions(folder: Path, events: int, parts: int, seed: int = 0) -> Path:
    """The reviewer's log: `events` slates of 3 positions (SlateWorld, seed 0), split by event
    into `parts` files."""
    world = SlateWorld.make()
    sample = world.sample(events, np.random.default_rng(seed), world.logging_scores)
    rounds, candidates = world.log_tables(sample)
    source = np.where(np.arange(rounds.num_rows) % 4 == 0, "curator_proxy", "customer")
    rounds = rounds.append_column("reward_source", pa.array(source))
    items = pa.table({"item_id": action_names(5)})
    folder.mkdir(parents=True)
    part = sample["event"] * parts // events
    for p in range(parts):
        keep = pa.array(part == p)
        mine = rounds.filter(keep)
        ids = mine.column("event_id")
        theirs = candidates.filter(pc.is_in(candidates.column("event_id"), value_set=ids))
        write_log(mine, theirs, items, folder / f"day-{p}.parquet")
    return folder


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    """Two single-threaded worker processes on 127.0.0.1, closed after the module."""
    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address="127.0.0.1:0",
        host="127.0.0.1",
    ) as cluster:
        yield cluster.scheduler_address


def _both(folder: Path, scheduler: str, tmp_path: Path, *extra: str) -> tuple[dict, dict, str]:
    common = ["replay", "--log", str(folder / "*.parquet"), "--target", "uniform", *extra]
    alone = CliRunner().invoke(main, [*common, "--out", str(tmp_path / "alone")])
    assert alone.exit_code == 0, alone.output
    on_dask = CliRunner().invoke(
        main, [*common, "--out", str(tmp_path / "dask"), "--dask", scheduler]
    )
    assert on_dask.exit_code == 0, on_dask.output
    single = json.loads((tmp_path / "alone" / "replay.json").read_text())
    dask = json.loads((tmp_path / "dask" / "replay.json").read_text())
    return single, dask, on_dask.output


def _assert_same_report(dask: dict, single: dict) -> None:
    for key in ("rows", "target", "estimand", "slate_length", "headline", "warnings", "reward"):
        assert dask[key] == single[key], key
    assert list(dask["estimators"]) == list(single["estimators"])
    for name, fields in single["estimators"].items():
        assert dask["estimators"][name]["interval"] == fields["interval"], name
        for field in ("value", "ci_low", "ci_high", "ess"):
            assert dask["estimators"][name][field] == pytest.approx(
                fields[field], rel=0, abs=TOLERANCE
            ), (name, field)
    assert dask["per_source"].keys() == single["per_source"].keys()
    for source, split in single["per_source"].items():
        assert dask["per_source"][source]["rows"] == split["rows"]
        assert dask["per_source"][source]["contribution"] == pytest.approx(
            split["contribution"], abs=TOLERANCE
        )
    mean_weight = single["diagnostics"]["mean_weight"]
    for field in ("mean", "standard_error"):
        assert dask["diagnostics"]["mean_weight"][field] == pytest.approx(
            mean_weight[field], abs=TOLERANCE
        )


def test_dask_reports_the_slate_value_of_a_slate_log(tmp_path: Path, scheduler: str) -> None:
    # One partition: the reward model is the whole log's, so cascade-dr agrees exactly too.
    folder = _slate_partitions(tmp_path / "log", 400, 1)
    single, dask, output = _both(folder, scheduler, tmp_path)
    _assert_same_report(dask, single)
    assert dask["estimand"] == "slate" and dask["slate_length"] == 3
    assert dask["headline"] == "cascade-dr"
    assert dask["estimators"]["cascade-dr"]["value"] == pytest.approx(0.3322, abs=5e-5)
    assert dask["estimators"]["sips"]["value"] == pytest.approx(0.3289, abs=5e-5)
    assert dask["estimators"]["sips"]["interval"] == "bootstrap+normal"  # ESS 366 < 1,000
    assert "own slates (3 positions)" in output and "cascade-dr*" in output


def test_dask_slate_estimators_over_partitions(tmp_path: Path, scheduler: str) -> None:
    folder = _slate_partitions(tmp_path / "log", 400, 3)
    single, dask, _ = _both(folder, scheduler, tmp_path, "--estimators", "sips,rips,iips")
    _assert_same_report(dask, single)
    assert dask["headline"] == "rips"  # no reward model asked for: the fallback, as alone


def test_dask_per_position_estimand_says_so(tmp_path: Path, scheduler: str) -> None:
    folder = _slate_partitions(tmp_path / "log", 400, 3)
    single, dask, output = _both(
        folder, scheduler, tmp_path, "--estimand", "position", "--estimators", "ips,snips"
    )
    _assert_same_report(dask, single)
    assert dask["estimand"] == "position" and dask["slate_length"] == 3
    assert dask["headline"] == "ips"  # dr was not asked for, so it is not the headline
    assert "NOT the value of the target's own slates" in output
    assert "dr*" not in output


def test_dask_warns_below_an_ess_of_100(tmp_path: Path, scheduler: str) -> None:
    folder = _slate_partitions(tmp_path / "log", 60, 2)
    single, dask, output = _both(folder, scheduler, tmp_path, "--estimators", "sips,rips")
    _assert_same_report(dask, single)
    assert any("below 100" in w for w in dask["warnings"])
    assert "warning: sips: effective sample size" in output
