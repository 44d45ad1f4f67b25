"""Shared fixtures: a migrated database per backend, the app, a client, demo data, accounts.

Every database test runs on SQLite and on the PostgreSQL at 127.0.0.1:5432; the test id names
the backend. PostgreSQL gets a fresh database per test run, dropped at the end.

A test that works through one `session` only runs inside an outer transaction that is rolled
back at the end (SQLAlchemy's "joining a session into an external transaction" recipe): its
commits release savepoints, and nothing it wrote outlives it. A test that talks to the database
over several connections (the app, live servers, threads, CLI commands, `session_factory`)
commits for real, as production does, and the tables are emptied after it.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session, sessionmaker

from bandit.db import migrate
from bandit.db.models import Base
from bandit.db.session import make_engine, make_session_factory
from bandit.services import accounts, catalog_store
from curation_app import create_app
from sim.demo_data import generate

POSTGRES_ADMIN_URL = os.environ.get(
    "HITL_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
BACKENDS = ("sqlite", "postgresql")
CURATOR_PASSWORD = "correct-horse-battery"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this run, dropped afterwards."""
    name = f"hitl_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = re.sub(r"/[^/]*$", f"/{name}", POSTGRES_ADMIN_URL)
    yield url
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A SQLite file for this run."""
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'hitl.sqlite3'}"


@pytest.fixture(scope="session")
def migrated_urls() -> dict[str, bool]:
    """Which backends have been migrated in this run."""
    return {}


# Fixtures that open connections of their own: with any of them a test commits for real.
MULTI_CONNECTION_FIXTURES = frozenset({"session_factory", "app", "client"})


def rolls_back(request: pytest.FixtureRequest) -> bool:
    """Whether this test works through the one rolled-back `session` only."""
    names = set(request.fixturenames)
    return "session" in names and not names & MULTI_CONNECTION_FIXTURES


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, migrated_urls: dict[str, bool]) -> Iterator[str]:
    """A migrated database on each backend, emptied after a test that committed to it."""
    backend = request.param
    url = request.getfixturevalue("postgres_url" if backend == "postgresql" else "sqlite_url")
    if not migrated_urls.get(url):
        migrate.upgrade(url)
        migrated_urls[url] = True
    yield url
    if not rolls_back(request):
        _empty_tables(url)


def _empty_tables(url: str) -> None:
    engine = make_engine(url)
    with engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(table.delete())
    engine.dispose()


@pytest.fixture
def db_engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def session_factory(db_engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(db_engine)


@pytest.fixture
def session(request: pytest.FixtureRequest, db_engine: Engine) -> Iterator[Session]:
    """The test's session: rolled back at the end when it is the test's only connection."""
    if not rolls_back(request):
        with make_session_factory(db_engine)() as db_session:
            yield db_session
        return
    connection = db_engine.connect()
    outer = connection.begin()
    db_session = Session(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )
    try:
        yield db_session
    finally:
        db_session.close()
        outer.rollback()
        connection.close()


@contextmanager
def writer(request: pytest.FixtureRequest) -> Iterator[Session]:
    """Where a data fixture writes: the test's rolled-back session, or a committing one."""
    if rolls_back(request):
        yield request.getfixturevalue("session")
        return
    factory: sessionmaker[Session] = request.getfixturevalue("session_factory")
    with factory() as db_session:
        yield db_session


@dataclass(frozen=True)
class DemoCatalog:
    item_ids: list[str]
    customers: list[dict]


@pytest.fixture
def demo_catalog(request: pytest.FixtureRequest, database_url: str) -> DemoCatalog:
    """A small generated catalog (200 items) and 40 customers, stored."""
    world = generate(items=200, customers=40, seed=11)
    with writer(request) as db_session:
        catalog_store.upsert_items(db_session, catalog_store.rows_from_frame(world.catalog))
        db_session.commit()
    return DemoCatalog(list(world.catalog["item_id"]), world.customers)


@pytest.fixture
def app(database_url: str, session_factory: sessionmaker[Session]) -> Flask:
    return create_app(
        {
            "TESTING": True,
            "DATABASE_URL": database_url,
            "SESSION_FACTORY": session_factory,
            "SECRET_KEY": "test-secret",
            "ENGINE_SEED": 1234,
        }
    )


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def api_token(session_factory: sessionmaker[Session]) -> str:
    with session_factory() as db_session:
        token = accounts.create_token(db_session, "test-client")
        db_session.commit()
    return token


@pytest.fixture
def auth_headers(api_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_token}"}


@pytest.fixture
def curator_account(request: pytest.FixtureRequest, database_url: str) -> tuple[str, str]:
    """(username, password) of a stored curator."""
    with writer(request) as db_session:
        accounts.add_curator(db_session, "stylist", CURATOR_PASSWORD)
        db_session.commit()
    return "stylist", CURATOR_PASSWORD


@pytest.fixture
def artifacts_dir() -> Path:
    path = Path(__file__).resolve().parents[1] / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path
