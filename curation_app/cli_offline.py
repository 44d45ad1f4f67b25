"""Offline commands: `hitl export`, `hitl replay`, `hitl tune` (no web app, no live engine)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import click
import numpy as np

from bandit.ope import interop
from bandit.ope.log_format import write_log
from bandit.ope.partitioned import count_rows, partition_files
from bandit.ope.policy_target import resolve_target
from bandit.ope.tuning import TunedPoint, indistinguishable_message, load_grid, named, tune
from curation_app.cli_dask import DASK_OPTION, dask_client, is_partitioned
from curation_app.cli_replay import (
    OFFLINE_ERRORS,
    clipped_text,
    interval_text,
    source_log,
)
from curation_app.cli_support import sessions_for
from sim.grid import simulate_configs
from sim.scenario import ScenarioError, load_scenario

URL_HELP = "Database URL (defaults to HITL_DATABASE_URL, then instance/)."


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
        from bandit.db.session import begin_reading
        from bandit.services.export_stream import export_partitioned

        with sessions_for(database_url)() as session:
            begin_reading(session)  # a long read: ranks and reviews go on beside it
            written = export_partitioned(session, out, chunk)
        click.echo(
            f"exported {written.rows} rows in {written.parts} parts over {len(written.days)} "
            f"day(s) to {out}/day=*/; {written.pending} positions have no reward yet"
        )
        return
    require_folder(out)
    if fmt == "table":
        if log_file is not None:
            raise click.UsageError("--log converts a log: use it with --format dsjson or obp")
        if out.suffix not in (".parquet", ".csv"):
            raise click.UsageError("--out must end in .parquet or .csv for --format table")
        from bandit.db.session import begin_reading
        from bandit.services.export import export_log

        with sessions_for(database_url)() as session:
            begin_reading(session)  # a long read: ranks and reviews go on beside it
            exported = export_log(session)
        paths = write_log(exported.rounds, exported.candidates, exported.items, out)
        click.echo(
            f"exported {exported.rounds.num_rows} rows to {paths.rounds} "
            f"(+ {paths.candidates.name}, {paths.items.name}); "
            f"{exported.pending} positions have no reward yet"
        )
        return
    log = source_log(log_file, database_url)
    try:
        if fmt == "dsjson":
            with out.open("w", encoding="utf-8") as handle:
                for line in interop.dsjson_lines(log):
                    handle.write(line + "\n")
        else:
            chosen = resolve_target(log, target) if target else None
            feedback = interop.obp_feedback(log, chosen)
            np.savez_compressed(out, **feedback)
            ids = out.with_suffix(".ids.csv")
            interop.id_table(feedback).to_csv(ids, index=False)
            click.echo(f"action codes -> item ids in {ids}")
            if "action_dist_skipped" in feedback:
                click.echo(f"note: {feedback['action_dist_skipped']}")
    except OFFLINE_ERRORS as error:
        raise click.ClickException(str(error)) from error
    except OSError as error:
        raise click.ClickException(f"--out: cannot write {out}: {error}") from error
    click.echo(f"wrote {log.rows} rows as {fmt} to {out}")


def require_folder(out: Path) -> None:
    """The output file's folder must exist: say so instead of a traceback."""
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir():
        raise click.ClickException(
            f"--out: folder {folder} does not exist; create it first or choose another path"
        )


def _point_line(rank: int, point: TunedPoint) -> str:
    config, estimate, workload = point.config, point.estimate, point.workload
    rejection = workload.unreviewed_rejection
    return (
        f"{rank:>3} {config.algorithm:<15} eps={config.epsilon:<5g} "
        f"auto>={config.auto_threshold:<5g} review>={config.review_threshold:<5g} "
        f"{estimate.value:>7.4f} {interval_text(estimate):<20} "
        f"{workload.review_share:>7.1%} {workload.blocking_share:>7.1%} "
        f"{'n/a' if math.isnan(rejection) else f'{rejection:.1%}':>7}"
        f"{'' if point.feasible else '  (outside limits)'}{clipped_text(estimate)}"
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
            log = source_log(log_file, None)
            rows = log.rows
            ranked, best = tune(log, grid)
        else:
            from curation_app import dask_jobs

            files = partition_files(str(log_file)) if is_partitioned(log_file) else [log_file]
            rows = count_rows(files)
            with dask_client(dask_spec) as client:
                ranked, best = dask_jobs.tune_on(client, files, grid)
    except (*OFFLINE_ERRORS, ScenarioError) as error:
        raise click.ClickException(str(error)) from error
    click.echo(
        f"{len(ranked)} grid points on {rows} rows, replayed as VW --explore_eval, ranked "
        f"by the lower bound of {ranked[0].estimate.estimator if ranked else '-'}; "
        "workload = share of events reviewed / held before output / rejected when unreviewed"
    )
    click.echo(
        f"{'#':>3} {'algorithm':<15} {'settings':<42} {'value':>7} {'95% CI':<20} "
        f"{'review':>7} {'before':>7} {'reject':>7}"
    )
    for rank, point in enumerate(ranked, start=1):
        click.echo(_point_line(rank, point))
    message = indistinguishable_message(ranked, best)
    if message:
        click.echo(f"note: {message}")
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
            "indistinguishable": indistinguishable_message(ranked, best),
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
