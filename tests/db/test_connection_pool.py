"""PostgreSQL connections from the pool: pinged after idling, not between back-to-back requests.

The ping is SQLAlchemy's pre-ping, kept for connections that sat in the pool for
`IDLE_PING_SECONDS` (a server restart or a firewall may have cut them); a connection back from
a request moments ago is handed out as it is. These tests cut connections server-side with
`pg_terminate_backend`, as a restart would.
"""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Connection, Engine, create_engine, exc, select, text
from sqlalchemy.orm import Session, sessionmaker

from bandit.db import session as db_session
from bandit.db.models import Decision
from tests.conftest import POSTGRES_ADMIN_URL, DemoCatalog

# The ping is PostgreSQL's pool only (SQLite files have no server to lose).
pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


@pytest.fixture
def pings(db_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every ping the pool sends, in order."""
    sent: list[Any] = []
    original = db_engine.dialect.do_ping

    def counted(dbapi_connection: Any) -> bool:
        sent.append(dbapi_connection)
        return original(dbapi_connection)

    monkeypatch.setattr(db_engine.dialect, "do_ping", counted)
    return sent


def _backend(connection: Connection) -> int:
    return int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _terminate(pid: int) -> None:
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        assert connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar()
    admin.dispose()


def test_back_to_back_requests_reuse_the_connection_without_a_ping(
    db_engine: Engine, pings: list[Any]
) -> None:
    with db_engine.connect() as connection:
        first = _backend(connection)
    assert len(pings) == 1  # a new connection's first checkout is pinged
    for _ in range(20):
        with db_engine.connect() as connection:
            assert _backend(connection) == first
    assert len(pings) == 1


def test_a_connection_cut_while_idle_is_replaced_and_the_request_succeeds(
    db_engine: Engine, pings: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    with db_engine.connect() as connection:
        cut = _backend(connection)
    _terminate(cut)
    monkeypatch.setattr(db_session, "IDLE_PING_SECONDS", 0.0)  # it has idled long enough
    with db_engine.connect() as connection:
        assert _backend(connection) != cut
    assert len(pings) == 3  # the first checkout, the failed ping, the fresh connection's


def test_a_connection_cut_moments_after_a_request_fails_one_request_then_the_pool_recovers(
    db_engine: Engine,
) -> None:
    with db_engine.connect() as connection:
        cut = _backend(connection)
    _terminate(cut)
    with pytest.raises(exc.OperationalError), db_engine.connect() as connection:
        _backend(connection)
    # The failure invalidated the pool's connections: the retry gets a fresh one.
    with db_engine.connect() as connection:
        assert _backend(connection) != cut


def test_a_rank_on_a_cut_connection_fails_once_storing_nothing_and_its_retry_is_ranked(
    client: FlaskClient,
    auth_headers: dict[str, str],
    demo_catalog: DemoCatalog,
    session_factory: sessionmaker[Session],
) -> None:
    body = {"context": demo_catalog.customers[0], "event_id": "after-a-restart"}
    warm = client.post("/api/v1/rank", json={"context": body["context"]}, headers=auth_headers)
    assert warm.status_code == 201  # the app's pool now holds a connection, just used
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        cut = connection.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = :name AND pid <> pg_backend_pid()"
            ),
            {"name": session_factory.kw["bind"].url.database},
        ).scalar_one()
    admin.dispose()
    assert cut >= 1
    failed = client.post("/api/v1/rank", json=body, headers=auth_headers)
    assert failed.status_code == 500 and failed.get_json() == {"error": "internal error"}
    retried = client.post("/api/v1/rank", json=body, headers=auth_headers)
    assert retried.status_code == 201 and retried.get_json()["event_id"] == "after-a-restart"
    with session_factory() as session:
        stored = session.scalars(select(Decision.event_id)).all()
    assert sorted(stored).count("after-a-restart") == 1 and len(stored) == 2
