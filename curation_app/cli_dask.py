"""The `--dask` option of the offline commands: partitioned logs replayed on a Dask cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from bandit.ope.log_format import ReplayLog, load_log
from bandit.ope.partitioned import (
    PARTITIONED_ESTIMATORS,
    STEM,
    load_partitioned,
    partition_files,
    target_for,
)
from bandit.ope.policy_target import resolve_target
from bandit.ope.replay import ReplayOptions, ReplayReport
from bandit.ope.reward_model import RewardModelSettings
from bandit.ope.targets import TargetDistribution

DASK_OPTION = click.option(
    "--dask",
    "dask_spec",
    metavar="ADDRESS|local[:N]",
    help="Run on a Dask cluster: a scheduler address, or a local cluster of N processes.",
)


def is_partitioned(log_file: Path) -> bool:
    """A glob pattern or a directory names a partitioned log."""
    return any(c in str(log_file) for c in "*?[") or log_file.is_dir()


def load_any(log_file: Path) -> ReplayLog:
    """One log file, or every partition a pattern or directory names, as one log."""
    if is_partitioned(log_file):
        return load_partitioned(partition_files(str(log_file)))
    return load_log(log_file)


def target_of(
    log: ReplayLog, spec: str, log_file: Path | None, **options: Any
) -> TargetDistribution:
    """The target; `{stem}` in its path stands for each partition's own target file."""
    if STEM in spec and log_file is not None:
        return target_for(log, spec, partition_files(str(log_file)))
    return resolve_target(log, spec, **options)


def dask_client(spec: str) -> Any:
    """A client of the named cluster; a bad spec is a usage error naming --dask."""
    from curation_app.dask_jobs import DaskSpecError, dask_client, local_workers

    try:
        local_workers(spec)  # checked before any cluster starts
        return dask_client(spec)
    except DaskSpecError as error:
        raise click.UsageError(str(error)) from error


def replay_on_dask(
    spec: str,
    log_file: Path,
    target: str,
    estimators: str,
    settings: RewardModelSettings,
    options: ReplayOptions,
    reward: str = "customer",
    blend_weight: float = 0.5,
) -> ReplayReport:
    """The report of `hitl replay` over every partition on the cluster (docs/replay.md)."""
    from curation_app import dask_jobs

    names = (
        None
        if estimators == "auto"
        else tuple(n.strip().lower() for n in estimators.split(",") if n.strip())
    )
    unknown = [n for n in names or () if n not in PARTITIONED_ESTIMATORS]
    if unknown:
        raise click.UsageError(
            f"--estimators: {', '.join(unknown)} cannot run with --dask; use "
            f"{', '.join(PARTITIONED_ESTIMATORS)}"
        )
    files = partition_files(str(log_file))
    if Path(target).suffix in (".toml", ".json"):
        target_for(load_log(files[0]), target, files[:1])  # refuses, with the reason
    with dask_client(spec) as client:
        return dask_jobs.replay(
            client, files, target, names, settings, options, reward, blend_weight
        )
