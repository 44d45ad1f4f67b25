"""`hitl webhook ...` (endpoints, delivery log, replay) and `hitl webhooks --watch` (the sender)."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType

import click

from bandit.db.models import utcnow
from bandit.engine.vocabulary import AuditAction, WebhookStatus
from bandit.services import audit, webhooks
from bandit.services.review import overflow
from bandit.services.webhook_sender import PassReport, run_worker, send_due_webhooks
from curation_app.cli_support import HEARTBEAT_OPTION, URL_OPTION, sessions_for

CLI_ACTOR = "cli"
RETRY_FOR = click.option(
    "--retry-for",
    type=click.FloatRange(1, 30 * 86_400),
    default=webhooks.WebhookSettings.retry_for_seconds,
    show_default=True,
    help="Seconds to keep retrying a delivery before it fails.",
)


@click.group()
def webhook() -> None:
    """Webhook endpoints a client service registers, and their delivery log."""


@webhook.command("add")
@click.argument("url")
@click.option(
    "--events",
    default="delivered,corrected,rewarded",
    show_default=True,
    help=f"Comma-separated: {', '.join(webhooks.EVENT_KINDS)}.",
)
@click.option("--description", default="", help="Who this endpoint is for.")
@URL_OPTION
def webhook_add(url: str, events: str, description: str, database_url: str | None) -> None:
    """Register URL for these event changes; prints its signing secret (shown once)."""
    with sessions_for(database_url)() as session:
        try:
            endpoint = webhooks.add_endpoint(
                session, url, webhooks.parse_events(events), CLI_ACTOR, description
            )
        except webhooks.WebhookError as error:
            raise click.ClickException(str(error)) from error
        audit.record(
            session, AuditAction.WEBHOOK_ADD, CLI_ACTOR, None, endpoint.url, events=endpoint.events
        )
        session.commit()
        click.echo(f"webhook endpoint {endpoint.id}: {endpoint.url} ({', '.join(endpoint.events)})")
        click.echo(f"signing secret (store it now, it is not shown again): {endpoint.secret}")


@webhook.command("list")
@URL_OPTION
def webhook_list(database_url: str | None) -> None:
    """Every endpoint, active ones first."""
    with sessions_for(database_url)() as session:
        found = webhooks.endpoints(session)
        if not found:
            click.echo("no webhook endpoints; add one with `hitl webhook add URL`")
        for endpoint in found:
            state = "active" if endpoint.active else "removed"
            click.echo(f"{endpoint.id:>4}  {state:8} {endpoint.url}  {','.join(endpoint.events)}")


@webhook.command("remove")
@click.argument("endpoint_id", type=click.IntRange(1))
@URL_OPTION
def webhook_remove(endpoint_id: int, database_url: str | None) -> None:
    """Stop sending to an endpoint (its delivery log is kept)."""
    with sessions_for(database_url)() as session:
        try:
            endpoint = webhooks.deactivate_endpoint(session, endpoint_id)
        except webhooks.WebhookError as error:
            raise click.ClickException(str(error)) from error
        audit.record(session, AuditAction.WEBHOOK_REMOVE, CLI_ACTOR, None, endpoint.url)
        session.commit()
    click.echo(f"webhook endpoint {endpoint_id} removed")


@webhook.command("log")
# Click matches an enum's choices by member name (FAILED); users type the stored values (failed).
@click.option(
    "--status", type=click.Choice([status.value for status in WebhookStatus]), default=None
)
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@URL_OPTION
def webhook_log(status: str | None, limit: int, database_url: str | None) -> None:
    """The newest deliveries: id, status, attempts, endpoint, event and last error."""
    with sessions_for(database_url)() as session:
        for delivery, endpoint, change in webhooks.delivery_log(session, limit, status):
            click.echo(
                f"{delivery.delivery_id}  {delivery.status:9} {delivery.attempts:>3} attempts  "
                f"{change.kind:10} {change.event_id}  -> {endpoint.url}  {delivery.last_error}"
            )


@webhook.command("replay")
@click.argument("delivery_id")
@RETRY_FOR
@URL_OPTION
def webhook_replay(delivery_id: str, retry_for: float, database_url: str | None) -> None:
    """Send a failed delivery again (same delivery id, so receivers can deduplicate)."""
    settings = webhooks.WebhookSettings(retry_for_seconds=retry_for)
    with sessions_for(database_url)() as session:
        try:
            webhooks.replay(session, delivery_id, settings, utcnow())
        except webhooks.WebhookError as error:
            raise click.ClickException(str(error)) from error
        audit.record(session, AuditAction.WEBHOOK_REPLAY, CLI_ACTOR, None, delivery_id)
        session.commit()
    click.echo(f"delivery {delivery_id} queued again; the webhooks worker sends it")


@click.command("webhooks")
@click.option("--watch", is_flag=True, help="Keep sending until stopped (SIGINT or SIGTERM).")
@click.option(
    "--interval", type=click.FloatRange(0.05, 3600), default=1.0, show_default=True,
    help="Seconds between passes when nothing is due.",
)  # fmt: skip
@RETRY_FOR
@click.option("--timeout", type=click.FloatRange(0.1, 120), default=10.0, show_default=True)
@click.option("--first-retry", type=click.FloatRange(0.01, 3600), default=10.0, show_default=True)
@click.option("--max-retry", type=click.FloatRange(0.01, 86_400), default=3600.0, show_default=True)
@HEARTBEAT_OPTION
@URL_OPTION
def webhooks_command(
    watch: bool,
    interval: float,
    retry_for: float,
    timeout: float,
    first_retry: float,
    max_retry: float,
    heartbeat: Path | None,
    database_url: str | None,
) -> None:
    """Send due webhook deliveries once, or with --watch as a long-running worker.

    With --watch each pass also runs the review queue's upkeep, so client fallbacks and
    review SLAs fire even when no curator is claiming tasks.
    """
    settings = webhooks.WebhookSettings(
        retry_for_seconds=retry_for,
        timeout_seconds=timeout,
        first_retry_seconds=first_retry,
        max_retry_seconds=max_retry,
    )
    sessions = sessions_for(database_url)
    if not watch:
        with sessions.begin() as session:
            overflow.upkeep(session)
        _echo(send_due_webhooks(sessions, settings=settings))
        return
    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    click.echo("webhooks worker: sending; stop with Ctrl-C or SIGTERM")
    run_worker(
        sessions,
        settings,
        interval,
        stop.is_set,
        upkeep=overflow.upkeep,
        on_pass=lambda report: _after_pass(report, heartbeat),
    )
    click.echo("webhooks worker: stopped")


def _after_pass(report: PassReport, heartbeat: Path | None) -> None:
    if heartbeat is not None:
        heartbeat.touch()
    if report.attempted:
        _echo(report)


def _echo(report: PassReport) -> None:
    skipped = (
        f" ({report.skipped} outbox changes no endpoint subscribed to marked done)"
        if report.skipped
        else ""
    )
    click.echo(
        f"webhooks: {report.fanned_out} new deliveries, {report.attempted} attempts, "
        f"{report.delivered} delivered, {report.retrying} to retry, {report.failed} failed"
        + skipped
    )
