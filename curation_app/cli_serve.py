"""`hitl serve` (gunicorn, or Flask's server with --dev) and `hitl learn [--watch]`."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import click
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from bandit.db.session import database_url as resolve_database_url
from bandit.db.session import make_engine
from bandit.services import configs, learning
from curation_app import learner_loop
from curation_app.cli_support import HEARTBEAT_OPTION, URL_OPTION, sessions_for
from curation_app.logs import configure_json_logging
from curation_app.serving import ServerSettings, default_workers, run_gunicorn

SECRET_ENV = "HITL_SECRET_KEY"
MIN_SECRET_LENGTH = 16


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=5000, show_default=True)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=default_workers,
    show_default="2 x cores + 1, at most 8",
    help="gunicorn worker processes (each loads the served model).",
)
@click.option("--threads", type=click.IntRange(1, 64), default=4, show_default=True)
@click.option(
    "--timeout", type=click.IntRange(5, 3600), default=30, show_default=True, help="Seconds."
)
@click.option("--dev", is_flag=True, help="Flask's development server, for debugging only.")
@click.option(
    "--learn-every",
    type=click.FloatRange(0),
    default=None,
    help="With --dev: seconds between in-process learning passes (default 30; 0 = off).",
)
@URL_OPTION
def serve(
    host: str,
    port: int,
    workers: int,
    threads: int,
    timeout: int,
    dev: bool,
    learn_every: float | None,
    database_url: str | None,
) -> None:
    """Serve the console and the APIs: gunicorn workers that never learn (see hitl learn)."""
    from curation_app import create_app

    if learn_every is not None and not dev:
        raise click.UsageError(
            "--learn-every works only with --dev: in production run `hitl learn --watch` "
            "as the one learner process"
        )
    url = database_url_or_default(database_url)
    if dev:
        app = create_app({"DATABASE_URL": url})
        every = 30.0 if learn_every is None else learn_every
        if every > 0:
            start_background_learner(sessions_for(url), every)
        app.run(host=host, port=port, threaded=True, use_reloader=False)
        return
    secret = os.environ.get(SECRET_ENV, "")
    if len(secret.strip()) < MIN_SECRET_LENGTH:
        raise click.ClickException(
            f"{SECRET_ENV} must be set to a secret of at least {MIN_SECRET_LENGTH} characters "
            "outside --dev (sessions are signed with it); e.g. "
            "python -c 'import secrets; print(secrets.token_hex(32))'"
        )
    settings = ServerSettings(host=host, port=port, workers=workers, threads=threads)
    settings = ServerSettings(**{**settings.__dict__, "timeout": timeout})
    click.echo(
        f"serving on http://{host}:{port} with {workers} gunicorn workers x {threads} threads; "
        "the learner is `hitl learn --watch`",
        err=True,
    )
    run_gunicorn(lambda: create_app({"DATABASE_URL": url}), settings)


@click.command("learn")
@click.option("--watch", is_flag=True, help="Keep learning every --every seconds until stopped.")
@click.option(
    "--every", type=click.FloatRange(0.1, 86_400), default=10.0, show_default=True, help="Seconds."
)
@click.option(
    "--grace",
    type=click.FloatRange(0),
    default=20.0,
    show_default=True,
    help="After SIGTERM, seconds a pass may still run before it is rolled back; 0 rolls the "
    "running pass back at once.",
)
@HEARTBEAT_OPTION
@URL_OPTION
def learn(
    watch: bool, every: float, grace: float, heartbeat: Path | None, database_url: str | None
) -> None:
    """Learn every pending verdict and reward exactly once and save a model version."""
    sessions = sessions_for(database_url)
    if watch:
        configure_json_logging()
        control = learner_loop.StopControl(grace=grace)
        control.install()
        learner_loop.watch(sessions, every, control, learner_loop.pass_hooks(), heartbeat=heartbeat)
        return
    with sessions() as session:
        report = learning.learn_pending(session)
        session.commit()
    click.echo(
        f"learned {report.rounds_learned} bandit rounds and {report.imitation_rounds} imitation "
        f"rounds from {report.verdicts} verdicts and "
        f"{report.rewards} rewards ({report.rewards_not_fed} not given to the policy, "
        f"{report.defaults_assigned} default rewards assigned); model version "
        f"{report.model_version if report.model_version is not None else 'unchanged'}"
    )
    if report.trust is not None:
        click.echo(report.trust.message())


def database_url_or_default(url: str | None) -> str:
    """The URL, checked to be reachable and migrated."""
    resolved = resolve_database_url(url)
    try:
        with sessions_for(resolved)() as session:
            configs.active_config(session)
            session.commit()
    except OperationalError as error:
        raise click.ClickException(
            f"cannot use the database at {redacted(resolved)}: run `hitl db upgrade` first "
            f"({error.orig})"
        ) from error
    return resolved


def start_background_learner(
    sessions: sessionmaker[Session], every: float, stop: threading.Event | None = None
) -> threading.Thread:
    """With --dev only: run `learn_pending` every `every` seconds in a daemon thread."""
    stop = stop or threading.Event()

    def loop() -> None:
        while not stop.wait(every):
            try:
                with sessions() as session:
                    learning.learn_pending(session)
                    session.commit()
            except Exception as error:  # keep serving; the next pass retries the same rows
                click.echo(f"background learner: {error}", err=True)

    thread = threading.Thread(target=loop, name="hitl-learner", daemon=True)
    thread.start()
    return thread


def redacted(url: str) -> str:
    """The URL with its password hidden."""
    return make_engine(url).url.render_as_string(hide_password=True)
