"""One SQLAlchemy session per request, closed on teardown."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask, current_app, g
from sqlalchemy.orm import Session

from bandit.services.runtime import EngineRuntime


def get_session() -> Session:
    """The request's session, opened on first use."""
    if "db_session" not in g:
        g.db_session = current_app.extensions["hitl.session_factory"]()
    session: Session = g.db_session
    return session


@contextmanager
def transaction() -> Iterator[Session]:
    """One user action: everything done inside (the action, its audit entry, its side effects)
    commits together at the end, or is rolled back together on any error.

    Reads made earlier in the request (the bearer-token lookup, say) are part of the same
    transaction, which is what a request is: one action.
    """
    session = get_session()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise


def get_runtime() -> EngineRuntime:
    """The process's engine runtime."""
    runtime: EngineRuntime = current_app.extensions["hitl.runtime"]
    return runtime


def close_session(_error: BaseException | None = None) -> None:
    """Roll back anything uncommitted and release the connection."""
    session = g.pop("db_session", None)
    if session is not None:
        session.rollback()
        session.close()


def init_app(app: Flask) -> None:
    """Register the teardown."""
    app.teardown_appcontext(close_session)
