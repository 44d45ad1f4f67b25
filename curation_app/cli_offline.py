"""Offline commands: `hitl export`, `hitl replay`, `hitl tune` (no web app, no live engine)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import click
import numpy as np

from bandit.ope import interop
from bandit.ope.estimators import Estimate
from bandit.ope.log_format import LogFormatError, ReplayLog, build_log, load_log, write_log
from bandit.ope.partitioned import (
    STEM,
    count_rows,
    load_partitioned,
    partition_files,
    target_for,
)
from bandit.ope.policy_target import resolve_target
from bandit.ope.replay import ReplayReport, evaluate, parse_estimators
from bandit.ope.reward_model import RewardModelSettings
from bandit.ope.targets import TargetDistribution, TargetError
from bandit.ope.tuning import GridError, TunedPoint, load_grid, named, tune
from curation_app.cli_support import sessions_for
from sim.grid import simulate_configs
from sim.scenario import ScenarioError, load_scenario

OFFLINE_ERRORS = (LogFormatError, TargetError, GridError, ValueError)
URL_HELP = "Database URL (defaults to HITL_DATABASE_URL, then instance/)."


def _log_from_db(url: str | None) -> ReplayLog:
    from bandit.services.export import export_log

    with sessions_for(url)() as session:
        exported = export_log(session)
    if exported.rounds.num_rows == 0:
        raise click.ClickException("the database holds no decision with a reward yet")
    return build_log(exported.rounds, exported.candidates, exported.items)


def is_partitioned(log_file: Path) -> bool:
    """A glob pattern or a directory names a partitioned log."""
    return any(c in str(log_file) for c in "*?[") or log_file.is_dir()


def _source(log_file: Path | None, db_url: str | None) -> ReplayLog:
    """The log from a file (or the partitions a pattern names) when given, else the database."""
    try:
        if log_file is None:
            return _log_from_db(db_url)
        if is_partitioned(log_file):
            return load_partitioned(partition_files(str(log_file)))
        return load_log(log_file)
    except OFFLINE_ERRORS as error:
        raise click.ClickException(str(error)) from error


def _target(log: ReplayLog, spec: str, log_file: Path | None) -> TargetDistribution:
    if STEM in spec and log_file is not None:
        return target_for(log, spec, partition_files(str(log_file)))
    return resolve_target(log, spec)


DASK_OPTION = click.option(
    "--dask",
    "dask_spec",
    metavar="ADDRESS|local[:N]",
    help="Run on a Dask cluster: a scheduler address, or a local cluster of N processes.",
)


def _dask_client(spec: str) -> Any:
    from curation_app.dask_jobs import DaskSpecError, dask_client, local_workers

    try:
        local_workers(spec)  # checked before any cluster starts
        return dask_client(spec)
    except DaskSpecError as error:
        raise click.UsageError(str(error)) from error


def _interval(estimate: Estimate) -> str:
    if math.isnan(estimate.value):
        return "n/a (no weight on logged actions)"
    return f"[{estimate.ci_low:.4f}, {estimate.ci_high:.4f}]"


@click.command("export")
@click.option("--out", "out", type=click.Path(path_type=Path), required=True)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "dsjson", "obp"]),
    default="table",
    show_default=True,
    help="table: Parquet/CSV by suffix; dsjson: VW lines; obp: Open Bandit Pipeline .npz.",
)
@click.option("--log", "log_file", type=click.Path(path_type=Path), help="Convert this log.")
@click.option("--target", help="With --format obp: also write this target's action_dist.")
@click.option(
    "--partitioned",
    is_flag=True,
    help="Stream into a dataset of day partitions under the --out directory (bounded memory).",
)
@click.option(
    "--chunk",
    type=click.IntRange(1, 1_000_000),
    default=5000,
    show_default=True,
    help="With --partitioned: decisions read from the database at a time.",
)
@click.option("--database-url", envvar="HITL_DATABASE_URL", default=None, help=URL_HELP)
def export_command(
    out: Path,
    fmt: str,
    log_file: Path | None,
    target: str | None,
    partitioned: bool,
    chunk: int,
    database_url: str | None,
) -> None:
    """Write logged decisions as a replay log (or convert one to DSJSON / OBP arrays)."""
    if partitioned:
        if fmt != "table" or log_file is not None:
            raise click.UsageError("--partitioned writes Parquet tables: no --format or --log")
        if out.suffix in (".parquet", ".csv") or (out.exists() and not out.is_dir()):
            raise click.UsageError("--out must be a directory with --partitioned")
        from bandit.services.export_stream import export_partitioned

        with sessions_for(database_url)() as session:
            written = export_partitioned(session, out, chunk)
        click.echo(
            f"exported {written.rows} rows in {written.parts} parts over {len(written.days)} "
            f"day(s) to {out}/day=*/; {written.pending} positions have no reward yet"
        )
        return
    if fmt == "table":
        if log_file is not None:
            raise click.UsageError("--log converts a log: use it with --format dsjson or obp")
        if out.suffix not in (".parquet", ".csv"):
            raise click.UsageError("--out must end in .parquet or .csv for --format table")
        from bandit.services.export import export_log

        with sessions_for(database_url)() as session:
            exported = export_log(session)
        paths = write_log(exported.rounds, exported.candidates, exported.items, out)
        click.echo(
            f"exported {exported.rounds.num_rows} rows to {paths.rounds} "
            f"(+ {paths.candidates.name}, {paths.items.name}); "
            f"{exported.pending} positions have no reward yet"
        )
        return
    log = _source(log_file, database_url)
    try:
        if fmt == "dsjson":
            with out.open("w", encoding="utf-8") as handle:
                for line in interop.dsjson_lines(log):
                    handle.write(line + "\n")
        else:
            chosen = resolve_target(log, target) if target else None
            np.savez_compressed(out, **interop.obp_feedback(log, chosen))
    except OFFLINE_ERRORS as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"wrote {log.rows} rows as {fmt} to {out}")


@click.command("replay")
@click.option("--log", "log_file", type=click.Path(path_type=Path), help="A log file.")
@click.option("--db", "db_url", help="Read the log from this database instead.")
@click.option("--target", required=True, help="uniform, logged, CONFIG.toml or DIST.parquet/.csv")
@click.option("--estimators", default="ips,snips,dm,dr", show_default=True)
@click.option("--out", type=click.Path(path_type=Path), help="Write DIR/replay.json here.")
@click.option("--folds", type=click.IntRange(2, 50), default=5, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the fold split.")
@DASK_OPTION
def replay_command(
    log_file: Path | None,
    db_url: str | None,
    target: str,
    estimators: str,
    out: Path | None,
    folds: int,
    seed: int,
    dask_spec: str | None,
) -> None:
    """Estimate a target policy's reward per (event, position) from a logged history.

    --log takes a file, or a glob / directory of partitions (`DIR/*.parquet`, as written by
    `hitl export --partitioned`); `{stem}` in a --target path stands for each partition's stem.
    """
    if (log_file is None) == (db_url is None):
        raise click.UsageError("give either --log FILE or --db URL")
    try:
        names = parse_estimators(estimators)
    except ValueError as error:
        raise click.UsageError(str(error)) from error
    settings = RewardModelSettings(folds=folds, seed=seed)
    if dask_spec is not None:
        if log_file is None:
            raise click.UsageError("--dask replays a partitioned --log, not --db")
        report = _replay_on_dask(dask_spec, log_file, target, names, settings)
    else:
        log = _source(log_file, db_url)
        try:
            report = evaluate(log, _target(log, target, log_file), names, settings)
        except OFFLINE_ERRORS as error:
            raise click.ClickException(str(error)) from error
    click.echo(f"target {report.target} on {report.rows} rows")
    click.echo(f"{'estimator':<10} {'value':>8}  {'95% CI':<22} {'ESS':>10}")
    for name, estimate in report.estimates.items():
        click.echo(
            f"{name:<10} {estimate.value:>8.4f}  {_interval(estimate):<22} {estimate.ess:>10.1f}"
        )
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "replay.json").write_text(json.dumps(report.as_json(), indent=2) + "\n")


def _replay_on_dask(
    spec: str,
    log_file: Path,
    target: str,
    names: tuple[str, ...],
    settings: RewardModelSettings,
) -> ReplayReport:
    from curation_app import dask_jobs

    try:
        files = partition_files(str(log_file))
        if Path(target).suffix in (".toml", ".json"):
            target_for(load_log(files[0]), target, files[:1])  # refuses, with the reason
        with _dask_client(spec) as client:
            return dask_jobs.replay(client, files, target, names, settings)
    except OFFLINE_ERRORS as error:
        raise click.ClickException(str(error)) from error


def _point_line(rank: int, point: TunedPoint) -> str:
    config, estimate, workload = point.config, point.estimate, point.workload
    rejection = workload.unreviewed_rejection
    return (
        f"{rank:>3} {config.algorithm:<15} eps={config.epsilon:<5g} "
        f"auto>={config.auto_threshold:<5g} review>={config.review_threshold:<5g} "
        f"{estimate.value:>7.4f} {_interval(estimate):<20} "
        f"{workload.review_share:>7.1%} {workload.blocking_share:>7.1%} "
        f"{'n/a' if math.isnan(rejection) else f'{rejection:.1%}':>7}"
        f"{'' if point.feasible else '  (outside limits)'}"
    )


@click.command("tune")
@click.option("--log", "log_file", type=click.Path(path_type=Path), required=True)
@click.option("--grid", "grid_file", type=click.Path(path_type=Path), required=True)
@click.option("--out", type=click.Path(path_type=Path), help="Write DIR/tune.json here.")
@click.option("--save", "save_name", help="Store the recommended config as a new version NAME.")
@click.option("--database-url", envvar="HITL_DATABASE_URL", default=None, help=URL_HELP)
@click.option(
    "--sim",
    "sim_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Also run every grid point through this simulation scenario (hitl simulate's TOML).",
)
@click.option("--sim-rounds", type=click.IntRange(10, 1_000_000), default=500, show_default=True)
@click.option("--sim-seed", type=int, default=7, show_default=True)
@DASK_OPTION
def tune_command(
    log_file: Path,
    grid_file: Path,
    out: Path | None,
    save_name: str | None,
    database_url: str | None,
    sim_file: Path | None,
    sim_rounds: int,
    sim_seed: int,
    dask_spec: str | None,
) -> None:
    """Rank exploration settings and review thresholds by estimated reward and workload."""
    try:
        grid = load_grid(grid_file)
        scenario = load_scenario(sim_file) if sim_file else None
        if dask_spec is None:
            log = _source(log_file, None)
            rows = log.rows
            ranked, best = tune(log, grid)
        else:
            from curation_app import dask_jobs

            files = partition_files(str(log_file)) if is_partitioned(log_file) else [log_file]
            rows = count_rows(files)
            with _dask_client(dask_spec) as client:
                ranked, best = dask_jobs.tune_on(client, files, grid)
    except (*OFFLINE_ERRORS, ScenarioError) as error:
        raise click.ClickException(str(error)) from error
    click.echo(
        f"{len(ranked)} grid points on {rows} rows, ranked by {grid.objective.estimator}; "
        "workload = share of events reviewed / held before output / rejected when unreviewed"
    )
    click.echo(
        f"{'#':>3} {'algorithm':<15} {'settings':<42} {'value':>7} {'95% CI':<20} "
        f"{'review':>7} {'before':>7} {'reject':>7}"
    )
    for rank, point in enumerate(ranked, start=1):
        click.echo(_point_line(rank, point))
    simulated = None
    if scenario is not None:
        simulated = simulate_configs([p.config for p in ranked], scenario, sim_rounds, sim_seed)
        click.echo(f"simulated, {sim_rounds} decisions each (seed {sim_seed}):")
        click.echo(
            f"{'#':>3} {'reward/decision':>16} {'regret':>9} {'automation':>11} "
            f"{'curator min/1000':>17}"
        )
        for rank, result in enumerate(simulated, start=1):
            click.echo(
                f"{rank:>3} {result['reward_per_decision']:>16.3f} "
                f"{result['cumulative_regret']:>9.1f} {result['automation_rate']:>11.2f} "
                f"{result['curator_minutes_per_1000']:>17.1f}"
            )
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        document = {
            "rows": rows,
            "objective": grid.objective.__dict__,
            "points": [
                {**p.as_json(), **({"simulated": simulated[i]} if simulated else {})}
                for i, p in enumerate(ranked)
            ],
            "recommended": None if best is None else best.as_json(),
        }
        (out / "tune.json").write_text(json.dumps(document, indent=2) + "\n")
    if best is None:
        raise click.ClickException("no grid point meets the objective's workload limits")
    click.echo(
        f"recommended: rank {ranked.index(best) + 1} ({best.config.algorithm}, epsilon "
        f"{best.config.epsilon}, thresholds {best.config.auto_threshold}/"
        f"{best.config.review_threshold})"
    )
    if save_name:
        from bandit.engine.config import ConfigError
        from bandit.services import configs

        try:
            config = named(best, save_name)
        except ConfigError as error:
            raise click.UsageError(f"--save: {error}") from error
        with sessions_for(database_url)() as session:
            row = configs.save_config(session, config, created_by="tune", activate=False)
            session.commit()
        click.echo(f"saved as policy config {row.name} version {row.version} (not activated)")


OFFLINE_COMMANDS = (export_command, replay_command, tune_command)
