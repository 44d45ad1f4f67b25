"""Database engines and session factories built from a URL; nothing global."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.orm import Session, sessionmaker

DEFAULT_SQLITE_PATH = Path("instance") / "hitl.sqlite3"


def database_url(explicit: str | None = None) -> str:
    """The URL to use: an explicit one, else HITL_DATABASE_URL, else the SQLite file."""
    if explicit:
        return explicit
    from_env = os.environ.get("HITL_DATABASE_URL", "").strip()
    if from_env:
        return from_env
    DEFAULT_SQLITE_PATH.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{DEFAULT_SQLITE_PATH.resolve()}"


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An Engine with the per-backend settings the loop relies on."""
    kwargs = {"json_serializer": dump_json, "json_deserializer": orjson.loads, **kwargs}
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)
        _configure_sqlite(engine)
        return engine
    engine = create_engine(url, **kwargs)
    _ping_connections_back_from_idle(engine)
    return engine


# A pooled connection checked in less than this long ago is handed out without a ping.
IDLE_PING_SECONDS = 5.0


def _ping_connections_back_from_idle(engine: Engine) -> None:
    """SQLAlchemy's pre-ping, for connections that sat idle in the pool.

    `pool_pre_ping` pings on every checkout: a round trip on every request, which cost the
    rank about 14% of its serving rate here (docs/benchmarks.md). A connection that
    finished a request moments ago is alive unless the server restarted in between; then
    that one request fails, the pool drops
    every older connection, and the client's retry (same event id) gets a fresh one. A
    connection idle for longer, which a server restart or a firewall may have cut, is pinged
    and replaced when dead, as before.
    """

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info["hitl.checked_in_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        checked_in_at = record.info.get("hitl.checked_in_at")
        if checked_in_at is not None and time.monotonic() - checked_in_at < IDLE_PING_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            # The pool discards this connection and hands out a fresh one.
            raise exc.DisconnectionError(str(error)) from error


def dump_json(value: Any) -> str:
    """A JSON column's text, written by orjson: every rank stores its candidates as JSON, and
    the standard library's encoder was a tenth of a rank's time. Keys become strings and
    numpy scalars numbers, as before; NaN, which PostgreSQL refuses in JSON, becomes null."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY).decode()


def _configure_sqlite(engine: Engine) -> None:
    # pysqlite's own transaction handling defers BEGIN and breaks SAVEPOINT; take it over, and
    # begin IMMEDIATE so two writers queue on busy_timeout instead of failing on lock upgrade.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        if engine.url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        if connection.get_execution_options().get(READ_ONLY):
            connection.exec_driver_sql("BEGIN")  # a reader: WAL lets writers go on beside it
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")


# An execution option: the transaction only reads (see `begin_reading`).
READ_ONLY = "hitl_read_only"


def begin_reading(session: Session) -> None:
    """Begin the session's transaction as a reader, before its first statement.

    On SQLite every transaction otherwise begins IMMEDIATE, taking the write lock, so a long
    read (a replay over the whole log) would stall every rank, submit and learn pass behind
    it until their busy timeout ran out. A reader must not write: a deferred transaction that
    writes after another writer committed fails at once instead of queueing.
    """
    session.connection(execution_options={READ_ONLY: True})


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded attributes after commit, for handing records to templates."""
    return sessionmaker(bind=engine, expire_on_commit=False)


def is_postgresql(session: Session) -> bool:
    """True when the session talks to PostgreSQL."""
    return session.get_bind().dialect.name == "postgresql"
