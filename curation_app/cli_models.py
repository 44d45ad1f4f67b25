"""`hitl model ...`: list model versions, checkpoint on demand, roll back."""

from __future__ import annotations

from pathlib import Path

import click

from bandit.engine.config import ConfigError
from bandit.services import apprentice, model_versions
from curation_app.cli_support import URL_OPTION, sessions_for


@click.group()
def model() -> None:
    """Model versions: every learning pass saves one; the newest is served."""


@model.command("list")
@URL_OPTION
def model_list(database_url: str | None) -> None:
    """Every model version, newest (served) first."""
    with sessions_for(database_url)() as session:
        versions = model_versions.list_versions(session)
    if not versions:
        click.echo("no model versions yet: the policy is untrained (version 0)")
        return
    header = f"{'version':>7}  {'created (UTC)':19}  {'policy':20} {'learned':>7} {'total':>7}"
    click.echo(f"{header}  note")
    for v in versions:
        marker = "*" if v.serving else " "
        click.echo(
            f"{v.version:>6}{marker}  {v.created_at:%Y-%m-%d %H:%M:%S}  {v.policy:20} "
            f"{v.examples_learned:>7} {v.examples_total:>7}  {v.note}"
        )


@model.command("rollback")
@click.argument("version", type=click.IntRange(1))
@URL_OPTION
def model_rollback(version: int, database_url: str | None) -> None:
    """Serve model VERSION again (stored as a new version; running consoles pick it up)."""
    with sessions_for(database_url)() as session:
        try:
            saved = model_versions.rollback(session, version)
        except (model_versions.ModelVersionError, ConfigError) as error:
            raise click.ClickException(f"rollback refused: {error}") from error
        session.commit()
        click.echo(f"model version {saved.version} (a copy of version {version}) is served")


@model.command("checkpoint")
@click.option("--note", default="on demand", show_default=True, help="Label of the checkpoint.")
@URL_OPTION
def model_checkpoint(note: str, database_url: str | None) -> None:
    """Learn everything pending and store the model as a labelled version."""
    with sessions_for(database_url).begin() as session:
        saved = model_versions.checkpoint(session, note)
    click.echo(f"checkpoint stored as model version {saved.version}")


@model.command("apprentice")
@URL_OPTION
def model_apprentice(database_url: str | None) -> None:
    """How often the policy's proposal matched the human's choice in apprentice mode."""
    with sessions_for(database_url)() as session:
        report = apprentice.match_report(session)
    if report.positions == 0:
        click.echo("no apprentice decisions yet")
        return
    click.echo(
        f"apprentice: policy matched the human choice at {report.matched} of "
        f"{report.positions} positions ({report.match_rate:.1%}); last "
        f"{report.recent_positions}: {report.recent_match_rate:.1%}"
    )


@model.command("promote")
@click.argument("version", type=click.IntRange(1))
@click.option(
    "--log",
    "log_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Evaluate on this exported log; the database's own log without it.",
)
@click.option(
    "--estimator",
    type=click.Choice(["auto", "sips", "rips", "cascade-dr", "switch-dr", "ips", "snips", "dr"]),
    default="auto",
    show_default=True,
    help="auto: the slate value (cascade-dr) on slate logs, dr on one-position logs.",
)
@click.option("--force-by", "force_by", help="Admin USERNAME who promotes even if the gate fails.")
@URL_OPTION
def model_promote(
    version: int,
    log_file: Path | None,
    estimator: str,
    force_by: str | None,
    database_url: str | None,
) -> None:
    """Serve model VERSION only if its estimate's lower bound beats the served model's estimate."""
    from bandit.db.session import begin_reading
    from bandit.ope.log_format import LogFormatError, build_log, load_log
    from bandit.ope.targets import TargetError
    from bandit.services import promotion
    from bandit.services.export import export_log
    from curation_app.cli_replay import clipped_text

    refusals = (promotion.PromotionError, LogFormatError, TargetError, ConfigError, ValueError)
    sessions = sessions_for(database_url)
    chosen = None if estimator == "auto" else estimator
    # The export and the replay only read, and may take minutes: as a reader, so that ranks,
    # reviews and learn passes go on meanwhile. The promotion itself is a short write after.
    with sessions() as session:
        begin_reading(session)
        try:
            promotion.admin_id(session, force_by)
            if log_file is not None:
                log = load_log(log_file)
            else:
                exported = export_log(session)
                if exported.rounds.num_rows == 0:
                    raise click.ClickException("the database holds no rewarded decision yet")
                log = build_log(exported.rounds, exported.candidates, exported.items)
            _, judged = promotion.judge(session, version, log, chosen)
        except refusals as error:
            raise click.ClickException(f"promotion refused: {error}") from error
    with sessions() as session:
        try:
            verdict = promotion.promote(session, version, log, chosen, force_by, judged=judged)
        except refusals as error:
            raise click.ClickException(f"promotion refused: {error}") from error
        session.commit()
    for label, number, estimate in (
        ("challenger", verdict.challenger, verdict.challenger_estimate),
        ("served", verdict.incumbent, verdict.incumbent_estimate),
    ):
        click.echo(
            f"{label:10} version {number:>4}: {verdict.estimator} {estimate.value:.4f}"
            f"{clipped_text(estimate)} [{estimate.ci_low:.4f}, {estimate.ci_high:.4f}] "
            f"on {log.rows} rows"
        )
    click.echo(verdict.reason)
    if not verdict.promoted:
        raise click.ClickException(
            f"model version {version} was not promoted (use --force-by ADMIN to override)"
        )
    click.echo(f"model version {verdict.served_version} (a copy of version {version}) is served")
