"""Partitioned replay: partition sums give the single-process numbers, alone and on Dask."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from distributed import Client, LocalCluster

from bandit.ope.log_format import LogFormatError, write_log
from bandit.ope.partitioned import (
    combine,
    load_partitioned,
    partition_files,
    partition_sums,
    target_for,
)
from bandit.ope.replay import POSITION, ReplayOptions, evaluate
from bandit.ope.reward_model import RewardModelSettings
from bandit.ope.synthetic import SyntheticWorld, action_names
from bandit.ope.targets import TargetError
from bandit.ope.tuning import load_grid, tune
from curation_app import dask_jobs
from curation_app.cli import main

# The partitioned sums are the per-position estimators (docs/replay.md).
PER_POSITION = ReplayOptions(estimand=POSITION)

PARTS = 3
EVENTS = 2400
TOLERANCE = 1e-9
GRID = """
[base]
name = "tuned"
candidate_count = 5
slate_size = 1

[grid]
epsilon = [0.5, 0.05]
auto_threshold = [0.5, 0.9]

[objective]
estimator = "snips"
"""


def _write_partitioned(folder: Path, seed: int = 5) -> Path:
    """EVENTS events of two positions in PARTS day files, each with candidates, items and its
    own target file; plus one target file for the whole log."""
    world = SyntheticWorld.make(segments=4, actions=5, seed=seed, temperature=2.0)
    rng = np.random.default_rng(seed)
    rounds, candidates, segment = world.sample(EVENTS, rng, positions=2)
    rounds = rounds.append_column("confidence", pa.array(rng.uniform(size=rounds.num_rows)))
    verdict = np.where(rounds.column("reward").to_numpy() > 0, "kept", "removed")
    rounds = rounds.append_column("curator_verdict", pa.array(verdict))
    policy = world.greedy() * 0.7 + 0.3 / world.shape[1]
    target = world.distribution_table(rounds, segment, policy, "probability")
    items = pa.table({"item_id": action_names(5), "category": ["c"] * 5})
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(target, folder / "whole.target.parquet")
    event_number = pc.cast(pc.utf8_slice_codeunits(rounds.column("event_id"), 1), pa.int64())
    day = pc.divide(event_number, EVENTS // PARTS)
    for part in range(PARTS):
        keep = pc.equal(day, part)
        part_rounds = rounds.filter(keep)
        ids = part_rounds.column("event_id")
        part_candidates = candidates.filter(pc.is_in(candidates.column("event_id"), value_set=ids))
        stem = f"2026-11-{part + 1:02d}"
        write_log(part_rounds, part_candidates, items, folder / f"{stem}.parquet")
        part_target = target.filter(pc.is_in(target.column("event_id"), value_set=ids))
        pq.write_table(part_target, folder / f"{stem}.target.parquet")
    return folder


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_partitioned(tmp_path_factory.mktemp("partitioned") / "log")


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    """Two worker processes, as a small real cluster."""
    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address="127.0.0.1:0",
        host="127.0.0.1",
    ) as local:
        yield local


@pytest.fixture(scope="module")
def client(cluster: LocalCluster) -> Iterator[Client]:
    with Client(cluster) as dask_client:
        dask_client.wait_for_workers(2, timeout=60)
        yield dask_client


def _assert_same(mine: dict, single: dict, names: tuple[str, ...]) -> None:
    for name in names:
        a, b = mine[name], single[name]
        for field in ("value", "ci_low", "ci_high", "ess"):
            assert getattr(a, field) == pytest.approx(getattr(b, field), rel=0, abs=TOLERANCE), (
                name,
                field,
            )
        assert a.rows == b.rows


def test_partition_files_skip_sibling_tables(log_dir: Path) -> None:
    files = partition_files(str(log_dir / "*.parquet"))
    assert [f.name for f in files] == [f"2026-11-0{i}.parquet" for i in (1, 2, 3)]
    assert partition_files(str(log_dir)) == files
    with pytest.raises(LogFormatError, match="no rounds file matches"):
        partition_files(str(log_dir / "nothing-*.parquet"))


@pytest.mark.parametrize("target", ["uniform", "logged", "{stem}.target.parquet", "whole"])
def test_partition_sums_add_up_to_the_single_process_ips_and_snips(
    log_dir: Path, target: str
) -> None:
    files = partition_files(str(log_dir / "*.parquet"))
    spec = {"{stem}.target.parquet": str(log_dir / "{stem}.target.parquet")}.get(target, target)
    if target == "whole":
        spec = str(log_dir / "whole.target.parquet")
    settings = RewardModelSettings()
    names = ("ips", "snips")
    whole = load_partitioned(files)
    single = evaluate(whole, target_for(whole, spec, files), names, settings, options=PER_POSITION)
    parts = [partition_sums(f, spec, names, settings, PER_POSITION) for f in files]
    report = combine(parts, single.target, PER_POSITION, names)
    assert report.rows == single.rows == EVENTS * 2
    _assert_same(report.estimates, single.estimates, names)


def test_partitioned_ess_counts_events_as_the_single_process_path(log_dir: Path) -> None:
    # The logging policy as target: every event has weight 1, so each ESS is the event count
    # (EVENTS slates of two positions), not the 2 * EVENTS rows.
    files = partition_files(str(log_dir / "*.parquet"))
    names = ("ips", "snips", "dm", "dr")
    parts = [partition_sums(f, "logged", names, RewardModelSettings(), PER_POSITION) for f in files]
    report = combine(parts, "logged", PER_POSITION, names)
    for name in names:
        assert report.estimates[name].ess == pytest.approx(EVENTS, abs=TOLERANCE), name


@pytest.mark.parametrize("seed", [5, 6, 7, 8])
def test_partitioned_dr_agrees_with_single_process_dr_and_the_truth(
    tmp_path: Path, seed: int
) -> None:
    folder = _write_partitioned(tmp_path / "log", seed)
    files = partition_files(str(folder / "*.parquet"))
    spec = str(folder / "{stem}.target.parquet")
    settings = RewardModelSettings()
    whole = load_partitioned(files)
    single = evaluate(
        whole, target_for(whole, spec, files), ("dr",), settings, options=PER_POSITION
    ).estimates["dr"]
    parts = combine(
        [partition_sums(f, spec, ("dr",), settings, PER_POSITION) for f in files],
        "t",
        PER_POSITION,
        ("dr",),
    )
    mine = parts.estimates["dr"]
    half_width = (single.ci_high - single.ci_low) / 2
    # Per-partition reward models differ from the whole-log one; DR absorbs the difference.
    assert abs(mine.value - single.value) < half_width / 2
    # z = 3.5 on the interval's own standard error: a false alarm once in ~2000 seeds.
    world = SyntheticWorld.make(segments=4, actions=5, seed=seed, temperature=2.0)
    truth = world.value(world.greedy() * 0.7 + 0.3 / world.shape[1])
    assert abs(mine.value - truth) < 3.5 * (mine.ci_high - mine.ci_low) / (2 * 1.96)


def test_policy_config_targets_are_refused_on_partitions(log_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "policy.toml"
    config.write_text('name = "p"\n')
    files = partition_files(str(log_dir / "*.parquet"))
    with pytest.raises(TargetError, match="cannot be split"):
        target_for(load_partitioned(files[:1]), str(config), files[:1])


def test_replay_on_a_two_process_cluster_gives_the_single_process_numbers(
    log_dir: Path, client: Client
) -> None:
    files = partition_files(str(log_dir / "*.parquet"))
    spec = str(log_dir / "{stem}.target.parquet")
    settings = RewardModelSettings()
    whole = load_partitioned(files)
    single = evaluate(
        whole, target_for(whole, spec, files), ("ips", "snips"), settings, options=PER_POSITION
    )
    report = dask_jobs.replay(client, files, spec, ("ips", "snips"), settings, PER_POSITION)
    assert len(client.nthreads()) == 2  # asked of the scheduler now, not its cached identity
    _assert_same(report.estimates, single.estimates, ("ips", "snips"))


def test_tune_on_a_two_process_cluster_gives_the_single_process_ranking(
    log_dir: Path, client: Client, tmp_path: Path
) -> None:
    grid_file = tmp_path / "grid.toml"
    grid_file.write_text(GRID)
    grid = load_grid(grid_file)
    files = partition_files(str(log_dir / "*.parquet"))
    single_ranked, single_best = tune(load_partitioned(files), grid)
    ranked, best = dask_jobs.tune_on(client, files, grid)
    assert [p.config for p in ranked] == [p.config for p in single_ranked]
    for mine, theirs in zip(ranked, single_ranked, strict=True):
        assert mine.estimate.value == pytest.approx(theirs.estimate.value, abs=TOLERANCE)
        assert mine.workload == theirs.workload
    assert best is not None and single_best is not None and best.config == single_best.config


def test_cli_replay_with_a_scheduler_address(
    log_dir: Path, cluster: LocalCluster, tmp_path: Path
) -> None:
    pattern = str(log_dir / "*.parquet")
    target = str(log_dir / "{stem}.target.parquet")
    common = [
        "replay", "--log", pattern, "--target", target, "--estimand", "position",
        "--estimators", "ips,snips",
    ]  # fmt: skip
    alone = CliRunner().invoke(main, [*common, "--out", str(tmp_path / "a")])
    assert alone.exit_code == 0, alone.output
    on_dask = CliRunner().invoke(
        main, [*common, "--out", str(tmp_path / "d"), "--dask", cluster.scheduler_address]
    )
    assert on_dask.exit_code == 0, on_dask.output
    a = json.loads((tmp_path / "a" / "replay.json").read_text())
    d = json.loads((tmp_path / "d" / "replay.json").read_text())
    assert a["rows"] == d["rows"]
    for name in ("ips", "snips"):
        for field, value in a["estimators"][name].items():
            assert d["estimators"][name][field] == pytest.approx(value, abs=TOLERANCE)


@pytest.mark.parametrize("spec", ["local:0", "local:x", "not-an-address"])
def test_bad_dask_values_are_usage_errors(log_dir: Path, spec: str) -> None:
    result = CliRunner().invoke(
        main, ["replay", "--log", str(log_dir / "*.parquet"), "--target", "logged", "--dask", spec]
    )
    assert result.exit_code == 2 and "--dask" in result.output
