"""The `hitl` command: database, catalog, accounts, learning, simulation warm-up and serving."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import click
import numpy as np
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from bandit.db import migrate
from bandit.db.models import Customer
from bandit.db.session import database_url as resolve_database_url
from bandit.db.session import make_engine
from bandit.engine.config import ConfigError, load_config_file
from bandit.services import accounts, catalog_store, configs, learning, model_versions
from curation_app.cli_models import model
from curation_app.cli_offline import OFFLINE_COMMANDS
from curation_app.cli_support import URL_OPTION, sessions_for
from curation_app.cli_webhooks import webhook, webhooks_command


@click.group()
def main() -> None:
    """Contextual-bandit recommendations with human curators in the loop."""


for _offline_command in OFFLINE_COMMANDS:
    main.add_command(_offline_command)


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@URL_OPTION
@click.option("--revision", default="head", show_default=True)
def db_upgrade(database_url: str | None, revision: str) -> None:
    """Create or migrate the schema."""
    url = resolve_database_url(database_url)
    migrate.upgrade(url, revision)
    click.echo(f"database at {_redacted(url)} is at revision {revision}")


@main.group()
def catalog() -> None:
    """The item catalog."""


@catalog.command("load")
@click.argument("file", type=click.Path(path_type=Path))
@URL_OPTION
def catalog_load(file: Path, database_url: str | None) -> None:
    """Load items from a CSV or Parquet FILE (insert new ids, update known ones)."""
    try:
        rows = catalog_store.rows_from_frame(catalog_store.read_catalog_file(file))
    except catalog_store.CatalogFileError as error:
        raise click.ClickException(str(error)) from error
    with sessions_for(database_url)() as session:
        inserted, updated = catalog_store.upsert_items(session, rows)
        session.commit()
    click.echo(f"catalog: {inserted} items added, {updated} updated")


@main.command("demo-data")
@click.option("--items", type=click.IntRange(1, 2_000_000), default=2000, show_default=True)
@click.option("--customers", type=click.IntRange(1, 1_000_000), default=300, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), help="Also write catalog.csv here.")
@URL_OPTION
def demo_data(
    items: int, customers: int, seed: int, out: Path | None, database_url: str | None
) -> None:
    """Generate a synthetic fashion catalog and customer base into the database."""
    from sim.demo_data import generate

    world = generate(items, customers, seed)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        world.catalog.to_csv(out / "catalog.csv", index=False)
    rows = catalog_store.rows_from_frame(world.catalog)
    with sessions_for(database_url)() as session:
        inserted, updated = catalog_store.upsert_items(session, rows)
        known = set(session.scalars(select(Customer.customer_id)))
        for profile in world.customers:
            if profile["customer_id"] not in known:
                session.add(Customer(customer_id=profile["customer_id"], profile=profile))
        configs.active_config(session)
        session.commit()
    click.echo(
        f"demo data (seed {seed}): {inserted} items added, {updated} updated, "
        f"{len(world.customers)} customers"
    )


@main.command("warm-up")
@click.option("--decisions", type=click.IntRange(1, 100_000), default=300, show_default=True)
@click.option(
    "--leave",
    type=click.IntRange(0, 10_000),
    default=20,
    show_default=True,
    help="Leave this many last decisions unreviewed for the human curators.",
)
@click.option("--seed", type=int, default=7, show_default=True)
@URL_OPTION
def warm_up(decisions: int, leave: int, seed: int, database_url: str | None) -> None:
    """Run a short simulated history (curators and customers) so the policy and queue are live."""
    from tqdm import tqdm

    from bandit.services.runtime import EngineRuntime
    from sim.curators import SimulatedCurator
    from sim.demo_data import generate_catalog
    from sim.loop import LoopSettings, run_loop
    from sim.world import TrueRewardModel

    sessions = sessions_for(database_url)
    with sessions() as session:
        customers = [c.profile for c in session.scalars(select(Customer).order_by(Customer.id))]
        items = catalog_store.load_index(session)
    if not customers or len(items) == 0:
        raise click.ClickException("no demo data: run `hitl demo-data` first")
    catalog = generate_catalog(len(items), seed)
    if set(catalog["item_id"]) != set(items.item_ids):
        raise click.ClickException(
            "warm-up needs the catalog generated by `hitl demo-data` "
            f"with --items {len(items)} --seed {seed}"
        )
    rng = np.random.default_rng(seed)
    curators = [
        SimulatedCurator(f"sim-curator-{i}", accuracy=0.9, seconds_per_item=6.0, rng=rng)
        for i in range(3)
    ]
    settings = LoopSettings(decisions=decisions, leave_unreviewed=leave)
    with tqdm(total=decisions, desc="warm-up", unit="decision", file=sys.stderr) as bar:
        stats = run_loop(
            sessions,
            EngineRuntime(rng),
            TrueRewardModel.from_catalog(catalog, seed),
            customers,
            curators,
            settings,
            rng,
            on_step=lambda _: bar.update(),
        )
    first, last = stats[: len(stats) // 4], stats[-(len(stats) // 4) :]
    click.echo(
        "warm-up: mean true keep chance of proposed items "
        f"{np.mean([s.mean_keep_probability for s in first]):.3f} (first quarter) -> "
        f"{np.mean([s.mean_keep_probability for s in last]):.3f} (last quarter)"
    )


@main.group()
def curator() -> None:
    """Curator accounts."""


@curator.command("add")
@click.argument("username")
@click.option("--role", type=click.Choice(accounts.ROLES), default="curator", show_default=True)
@click.option("--password", help="Read from standard input when omitted.")
@click.option("--if-missing", is_flag=True, help="Do nothing if the curator exists.")
@URL_OPTION
def curator_add(
    username: str, role: str, password: str | None, if_missing: bool, database_url: str | None
) -> None:
    """Create a curator account."""
    with sessions_for(database_url)() as session:
        if if_missing and accounts.find_curator(session, username) is not None:
            click.echo(f"curator {username} already exists")
            return
        if password is None:
            password = sys.stdin.readline().rstrip("\n")
        try:
            accounts.add_curator(session, username, password, role)
        except accounts.AccountError as error:
            raise click.ClickException(str(error)) from error
        session.commit()
    click.echo(f"curator {username} ({role}) created")


@main.group()
def token() -> None:
    """API tokens for client services."""


@token.command("create")
@click.argument("name")
@click.option("--replace", is_flag=True, help="Give an existing client a new token.")
@click.option(
    "--curator", "curator_username", help="Bind the token to this curator (review API access)."
)
@URL_OPTION
def token_create(
    name: str, replace: bool, curator_username: str | None, database_url: str | None
) -> None:
    """Create an API client NAME and print its bearer token (shown only once)."""
    with sessions_for(database_url)() as session:
        try:
            secret = accounts.create_token(
                session, name, replace=replace, curator_username=curator_username
            )
        except accounts.AccountError as error:
            raise click.ClickException(str(error)) from error
        session.commit()
    click.echo(secret)


@main.command("learn")
@URL_OPTION
def learn(database_url: str | None) -> None:
    """Learn every pending verdict and reward exactly once and save a model version."""
    with sessions_for(database_url).begin() as session:
        report = learning.learn_pending(session)
    click.echo(
        f"learned {report.rounds_learned} rounds from {report.verdicts} verdicts and "
        f"{report.rewards} rewards ({report.rewards_not_fed} not given to the policy, "
        f"{report.defaults_assigned} default rewards assigned); model version "
        f"{report.model_version if report.model_version is not None else 'unchanged'}"
    )


main.add_command(model)
main.add_command(webhook)
main.add_command(webhooks_command)


@main.group()
def policy() -> None:
    """Policy configs."""


@policy.command("set")
@click.argument("file", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--new-model",
    is_flag=True,
    help="Start a fresh, untrained model (needed to change algorithm, bits or bag/cover/rnd size).",
)
@URL_OPTION
def policy_set(file: Path, new_model: bool, database_url: str | None) -> None:
    """Store a TOML/JSON policy config FILE as a new version and activate it."""
    try:
        config = load_config_file(file)
    except (ConfigError, TypeError) as error:
        raise click.ClickException(f"invalid policy config: {error}") from error
    with sessions_for(database_url)() as session:
        try:
            if new_model:
                saved = model_versions.start_new_lineage(session, config, created_by="cli")
                click.echo(f"model version {saved.version} starts a new, untrained lineage")
                row, _ = configs.active_config(session)
            else:
                row = configs.save_config(session, config, created_by="cli", activate=True)
        except ConfigError as error:
            raise click.ClickException(f"policy config refused: {error}") from error
        session.commit()
    click.echo(f"policy config {row.name} version {row.version} is active")


@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=5000, show_default=True)
@click.option(
    "--learn-every",
    type=click.FloatRange(0),
    default=30.0,
    show_default=True,
    help="Seconds between background learning passes; 0 turns the learner off.",
)
@URL_OPTION
def serve(host: str, port: int, learn_every: float, database_url: str | None) -> None:
    """Serve the console and the API from one process on an existing database."""
    from curation_app import create_app

    url = database_url_or_default(database_url)
    app = create_app({"DATABASE_URL": url})
    if learn_every > 0:
        start_background_learner(sessions_for(url), learn_every)
    app.run(host=host, port=port, threaded=True, use_reloader=False)


def database_url_or_default(url: str | None) -> str:
    """The URL, checked to be reachable and migrated."""
    resolved = resolve_database_url(url)
    try:
        with sessions_for(resolved)() as session:
            configs.active_config(session)
            session.commit()
    except OperationalError as error:
        raise click.ClickException(
            f"cannot use the database at {_redacted(resolved)}: run `hitl db upgrade` first "
            f"({error.orig})"
        ) from error
    return resolved


def start_background_learner(
    sessions: sessionmaker[Session], every: float, stop: threading.Event | None = None
) -> threading.Thread:
    """Run `learn_pending` every `every` seconds in a daemon thread until `stop` is set."""
    stop = stop or threading.Event()

    def loop() -> None:
        while not stop.wait(every):
            try:
                with sessions.begin() as session:
                    learning.learn_pending(session)
            except Exception as error:  # keep serving; the next pass retries the same rows
                click.echo(f"background learner: {error}", err=True)

    thread = threading.Thread(target=loop, name="hitl-learner", daemon=True)
    thread.start()
    return thread


def _redacted(url: str) -> str:
    return make_engine(url).url.render_as_string(hide_password=True)


def _register_commands() -> None:
    from curation_app.cli_sim import simulate_command

    main.add_command(simulate_command)


_register_commands()
