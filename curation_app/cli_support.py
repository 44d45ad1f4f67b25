"""What `hitl` command modules share: the database URL and heartbeat options, a session factory."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

URL_OPTION = click.option(
    "--database-url", envvar="HITL_DATABASE_URL", default=None, help="Defaults to instance/."
)
# The long-running workers' liveness file, which the compose health checks read.
HEARTBEAT_OPTION = click.option(
    "--heartbeat",
    type=click.Path(dir_okay=False, path_type=Path),
    help="With --watch: touch this file after every pass (for a container health check).",
)


def sessions_for(url: str | None) -> sessionmaker[Session]:
    """Sessions on `url`, or on HITL_DATABASE_URL / the instance/ SQLite default."""
    # SQLAlchemy is imported when a command opens the database, not by every `hitl` command.
    from bandit.db.session import database_url as resolve_database_url
    from bandit.db.session import make_engine, make_session_factory

    return make_session_factory(make_engine(resolve_database_url(url)))
