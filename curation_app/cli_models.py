"""`hitl model ...`: list model versions, checkpoint on demand, roll back."""

from __future__ import annotations

import click
from sqlalchemy.orm import Session, sessionmaker

from bandit.config import ConfigError
from bandit.db.session import database_url as resolve_database_url
from bandit.db.session import make_engine, make_session_factory
from bandit.services import apprentice, model_versions

URL_OPTION = click.option(
    "--database-url", envvar="HITL_DATABASE_URL", default=None, help="Defaults to instance/."
)


def _sessions(url: str | None) -> sessionmaker[Session]:
    return make_session_factory(make_engine(resolve_database_url(url)))


@click.group()
def model() -> None:
    """Model versions: every learning pass saves one; the newest is served."""


@model.command("list")
@URL_OPTION
def model_list(database_url: str | None) -> None:
    """Every model version, newest (served) first."""
    with _sessions(database_url)() as session:
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
    with _sessions(database_url)() as session:
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
    with _sessions(database_url)() as session:
        saved = model_versions.checkpoint(session, note)
        click.echo(f"checkpoint stored as model version {saved.version}")


@model.command("apprentice")
@URL_OPTION
def model_apprentice(database_url: str | None) -> None:
    """How often the policy's proposal matched the human's choice in apprentice mode."""
    with _sessions(database_url)() as session:
        report = apprentice.match_report(session)
    if report.positions == 0:
        click.echo("no apprentice decisions yet")
        return
    click.echo(
        f"apprentice: policy matched the human choice at {report.matched} of "
        f"{report.positions} positions ({report.match_rate:.1%}); last "
        f"{report.recent_positions}: {report.recent_match_rate:.1%}"
    )
