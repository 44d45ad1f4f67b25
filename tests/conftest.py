"""Shared fixtures: a migrated database per backend, the app, a client, demo data, accounts.

Every database test runs on SQLite and on the PostgreSQL at 127.0.0.1:5432; the test id names
the backend. PostgreSQL gets a fresh database per test run, dropped at the end. Tables are
emptied after each test, so tests that open several connections (live servers, threads) see
committed data exactly as production would.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
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


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, migrated_urls: dict[str, bool]) -> Iterator[str]:
    """A migrated database on each backend, emptied after the test."""
    backend = request.param
    url = request.getfixturevalue("postgres_url" if backend == "postgresql" else "sqlite_url")
    if not migrated_urls.get(url):
        migrate.upgrade(url)
        migrated_urls[url] = True
    yield url
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
def session(session_factory: sessionmaker[Session]) -> Iterator[Session]:
    with session_factory() as db_session:
        yield db_session


@dataclass(frozen=True)
class DemoCatalog:
    item_ids: list[str]
    customers: list[dict]


@pytest.fixture
def demo_catalog(session_factory: sessionmaker[Session]) -> DemoCatalog:
    """A small generated catalog (200 items) and 40 customers, stored."""
    world = generate(items=200, customers=40, seed=11)
    with session_factory() as db_session:
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
def curator_account(session_factory: sessionmaker[Session]) -> tuple[str, str]:
    """(username, password) of a stored curator."""
    with session_factory() as db_session:
        accounts.add_curator(db_session, "stylist", CURATOR_PASSWORD)
        db_session.commit()
    return "stylist", CURATOR_PASSWORD


@pytest.fixture
def artifacts_dir() -> Path:
    path = Path(__file__).resolve().parents[1] / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path
