"""`hitl replay`: estimate a target policy's value from a logged history, with diagnostics."""

from __future__ import annotations

import json
import math
from pathlib import Path

import click

from bandit.ope.estimators import Estimate
from bandit.ope.log_format import LogFormatError, ReplayLog, build_log
from bandit.ope.pseudo_inverse import LOGGING_POLICIES, UniformLoggingError
from bandit.ope.replay import (
    DEFAULT_SWITCH_THRESHOLD,
    ESTIMANDS,
    POSITION,
    ReplayOptions,
    ReplayReport,
    evaluate,
    parse_estimators,
    slate_length,
)
from bandit.ope.reward_choice import REWARD_CHOICES, choose_reward
from bandit.ope.reward_model import RewardModelSettings
from bandit.ope.targets import TargetError
from bandit.ope.tuning import GridError
from curation_app.cli_dask import DASK_OPTION, load_any, replay_on_dask, target_of
from curation_app.cli_support import sessions_for
from curation_app.heap import keep_freed_memory

OFFLINE_ERRORS = (LogFormatError, TargetError, GridError, ValueError)

ASSUMPTIONS = {
    "sips": "no assumption on the rewards (joint slate weight; high variance)",
    "rips": "the cascade: a position's reward depends only on it and the items above it",
    "cascade-dr": "the cascade: a position's reward depends only on it and the items above it",
    "switch-dr": "the cascade; the reward model alone where the weight exceeds the threshold",
    "iips": "a position's reward depends only on its own item",
    "ips": "none beyond right propensities",
    "snips": "none beyond right propensities (slightly biased, bounded)",
    "dm": "a correct reward model",
    "dr": "right propensities or a correct reward model",
    "pi": "an additive slate reward: one term per (position, item), no interactions "
    "(the logging policy uniform, as declared and checked)",
}


def log_from_db(url: str | None) -> ReplayLog:
    """The database's own log, exported and validated."""
    from bandit.db.session import begin_reading
    from bandit.services.export import export_log

    with sessions_for(url)() as session:
        begin_reading(session)  # a long read: ranks and reviews go on beside it
        exported = export_log(session)
    if exported.rounds.num_rows == 0:
        raise click.ClickException("the database holds no decision with a reward yet")
    return build_log(exported.rounds, exported.candidates, exported.items)


def source_log(log_file: Path | None, db_url: str | None) -> ReplayLog:
    """The log from a file (or the partitions a pattern or directory names), else the database."""
    try:
        return load_any(log_file) if log_file is not None else log_from_db(db_url)
    except OFFLINE_ERRORS as error:
        raise click.ClickException(str(error)) from error


def interval_text(estimate: Estimate) -> str:
    """`[low, high]`, or why there is none."""
    if math.isnan(estimate.value):
        return "n/a (no weight on logged actions)"
    return f"[{estimate.ci_low:.4f}, {estimate.ci_high:.4f}]"


def clipped_text(estimate: Estimate) -> str:
    """` (clipped from 1.8592)` when the value was clipped to the reward range, else ``."""
    return "" if estimate.unclipped is None else f" (clipped from {estimate.unclipped:.4f})"


def prepare_out(out: Path) -> None:
    """Create the output folder, or say why it cannot be (never a traceback)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise click.ClickException(f"--out: cannot create folder {out}: {error}") from error


def _print_report(report: ReplayReport) -> None:
    if report.estimand == POSITION:
        click.echo(
            "estimand: position (each position scored given the logged earlier picks; "
            "NOT the value of the target's own slates)"
        )
    else:
        per = f" ({report.slate_length} positions)" if report.slate_length > 1 else ""
        click.echo(f"estimand: reward per position of the target's own slates{per}")
    click.echo(f"default estimator: {report.headline} (assumes {ASSUMPTIONS[report.headline]})")
    click.echo(f"{'estimator':<11} {'value':>8}  {'95% CI':<22} {'ESS slates':>10}  interval")
    for name, estimate in report.estimates.items():
        mark = "*" if name == report.headline else " "
        click.echo(
            f"{name + mark:<11} {estimate.value:>8.4f}  {interval_text(estimate):<22} "
            f"{estimate.ess:>10.1f}  {estimate.method}{clipped_text(estimate)}"
        )
    if "pi" in report.estimates and report.headline != "pi":
        click.echo(f"pi {report.estimates['pi'].value:.4f} assumes {ASSUMPTIONS['pi']}")
    headline = report.estimates.get(report.headline)
    of_value = f"the {report.headline} value"
    if headline is not None and headline.unclipped is not None:
        of_value += f" before clipping ({headline.unclipped:.4f})"  # the parts add up to it
    width = max((len(source) for source in report.per_source), default=0)
    for source, split in report.per_source.items():
        click.echo(
            f"  from {source:<{max(width, 14)}} {split['contribution']:>8.4f} of {of_value} "
            f"({split['rows']} rows)"
        )
    check = (report.diagnostics or {}).get("mean_weight")
    if check:
        click.echo(
            f"mean slate weight {check['mean']:.4f} +- {check['standard_error']:.4f} "
            f"(should be about 1)"
        )
    for warning in report.warnings:
        click.echo(f"warning: {warning}")


@click.command("replay")
@click.option("--log", "log_file", type=click.Path(path_type=Path), help="A log file.")
@click.option(
    "--database-url",
    "--db",
    "db_url",
    metavar="URL",
    envvar="HITL_DATABASE_URL",
    help="Read the log from this database instead (--db is the older name). HITL_DATABASE_URL "
    "is read when there is no --log.",
)
@click.option("--target", required=True, help="uniform, logged, CONFIG.toml or DIST.parquet/.csv")
@click.option(
    "--estimators",
    default="auto",
    show_default=True,
    help="auto: sips,rips,cascade-dr (+iips) on slates, ips,snips,dm,dr on one position.",
)
@click.option(
    "--estimand",
    type=click.Choice(ESTIMANDS),
    default="slate",
    show_default=True,
    help="position: the old per-position value given the logged earlier picks.",
)
@click.option(
    "--reward",
    "reward_choice",
    type=click.Choice(REWARD_CHOICES),
    default="customer",
    show_default=True,
)
@click.option("--blend-weight", type=click.FloatRange(0, 1), default=0.5, show_default=True)
@click.option("--clip", type=float, default=None, help="Clip every importance weight at this.")
@click.option("--switch-threshold", type=float, default=DEFAULT_SWITCH_THRESHOLD, show_default=True)
@click.option(
    "--explore-eval",
    is_flag=True,
    help="Replay a policy config as VW's --explore_eval (learn only where its draw matches).",
)
@click.option(
    "--logging",
    "logging_policy",
    type=click.Choice(LOGGING_POLICIES),
    help="Declare the logging policy (uniform: slates drawn uniformly at random without "
    "replacement; checked against the propensities). Needed by --estimators pi.",
)
@click.option("--segment", help="Context column to break the value down by (diagnostics).")
@click.option("--out", type=click.Path(path_type=Path), help="Write replay.json and PNG here.")
@click.option("--folds", type=click.IntRange(2, 50), default=5, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Folds, bootstrap, VW.")
@DASK_OPTION
def replay_command(
    log_file: Path | None,
    db_url: str | None,
    target: str,
    estimators: str,
    estimand: str,
    reward_choice: str,
    blend_weight: float,
    clip: float | None,
    switch_threshold: float,
    explore_eval: bool,
    logging_policy: str | None,
    segment: str | None,
    out: Path | None,
    folds: int,
    seed: int,
    dask_spec: str | None,
) -> None:
    """Estimate a target policy's value from a logged history (docs/replay.md).

    --log takes a file, or a glob / directory of partitions (`DIR/*.parquet`, as written by
    `hitl export --partitioned`); `{stem}` in a --target path stands for each partition's stem.
    """
    db_url = _database_unless_log(log_file, db_url)
    try:
        options = ReplayOptions(
            estimand=estimand,
            max_weight=clip,
            switch_threshold=switch_threshold,
            seed=seed,
            logging=logging_policy,
        )
    except ValueError as error:
        raise click.UsageError(str(error)) from error
    if dask_spec is not None:
        if log_file is None:
            raise click.UsageError("--dask replays a partitioned --log, not --db")
        for given, flag in ((logging_policy, "--logging"), (segment, "--segment")):
            if given is not None:
                raise click.UsageError(f"{flag} cannot run with --dask; run it without --dask")
        _replay_on_dask(
            dask_spec,
            log_file,
            target,
            estimators,
            out,
            RewardModelSettings(folds=folds, seed=seed),
            options,
            reward_choice,
            blend_weight,
        )
        return
    if out is not None:
        prepare_out(out)
    keep_freed_memory()  # a short-lived process of whole-column temporaries (curation_app/heap.py)
    log = source_log(log_file, db_url)
    try:
        log = choose_reward(log, reward_choice, blend_weight)
        names = None if estimators == "auto" else parse_estimators(estimators, log, estimand)
        chosen = target_of(log, target, log_file, explore_eval=explore_eval, seed=seed)
        report = evaluate(
            log,
            chosen,
            names,
            RewardModelSettings(folds=folds, seed=seed),
            options=options,
            segment_column=segment,
        )
    except UniformLoggingError as error:
        where = f"log {log_file}" if log_file is not None else "the database's log"
        raise click.ClickException(f"--logging uniform: {where}: {error}") from error
    except OFFLINE_ERRORS as error:
        raise click.ClickException(str(error)) from error
    click.echo(
        f"target {report.target} on {report.rows} rows ({slate_length(log)} positions per "
        f"slate at most), reward: {reward_choice}"
    )
    _print_report(report)
    if out is not None:
        document = {**report.as_json(), "reward": reward_choice, "diagnostics": report.diagnostics}
        (out / "replay.json").write_text(json.dumps(document, indent=2) + "\n")
        (out / "diagnostics.json").write_text(json.dumps(report.diagnostics, indent=2) + "\n")
        # matplotlib only when a PNG is asked for: importing it costs every `hitl` command ~1 s.
        from curation_app.replay_charts import write_diagnostics_png

        write_diagnostics_png(
            report.diagnostics or {}, f"replay of {report.target}", out / "diagnostics.png"
        )
        click.echo(f"wrote {out / 'replay.json'}, diagnostics.json and diagnostics.png")


def _database_unless_log(log_file: Path | None, db_url: str | None) -> str | None:
    """The database to read, None when the log is the --log file; refuses both or neither."""
    from_environment = (
        click.get_current_context().get_parameter_source("db_url")
        == click.core.ParameterSource.ENVIRONMENT
    )
    if log_file is not None and from_environment:
        return None  # a log given on the command line wins over the deployment's database
    if (log_file is None) == (db_url is None):
        raise click.UsageError(
            "give either --log FILE or --database-url URL (or set HITL_DATABASE_URL)"
        )
    return db_url


def _replay_on_dask(
    spec: str,
    log_file: Path,
    target: str,
    estimators: str,
    out: Path | None,
    settings: RewardModelSettings,
    options: ReplayOptions,
    reward_choice: str,
    blend_weight: float,
) -> None:
    """The single-process report, summed over partitions on the cluster (docs/replay.md)."""
    if out is not None:
        prepare_out(out)
    try:
        report = replay_on_dask(
            spec, log_file, target, estimators, settings, options, reward_choice, blend_weight
        )
    except OFFLINE_ERRORS as error:
        raise click.ClickException(str(error)) from error
    click.echo(
        f"target {report.target} on {report.rows} rows ({report.slate_length} positions per "
        f"slate at most), reward: {reward_choice}, on Dask"
    )
    _print_report(report)
    if out is not None:
        # diagnostics: the mean-weight check only (histogram, per-position values and
        # calibration need the rows: run without --dask for them).
        document = {**report.as_json(), "reward": reward_choice, "diagnostics": report.diagnostics}
        (out / "replay.json").write_text(json.dumps(document, indent=2) + "\n")
