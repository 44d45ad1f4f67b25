"""The per-process runtime: one stamps query per request, and the change feed's shortcuts."""

from __future__ import annotations

import time

import numpy as np
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from bandit.engine.config import PolicyConfig
from bandit.services import change_feed, configs, learning, model_store
from bandit.services.change_feed import ChangeFeed
from bandit.services.runtime import EngineRuntime
from tests.conftest import DemoCatalog
from tests.statement_log import recorded_statements


def _save_new_model(sessions: sessionmaker[Session]) -> int:
    with sessions.begin() as session:
        config_row, config = configs.active_config(session)
        previous = model_store.latest_model(session)
        policy = model_store.policy_from(previous, config)
        return model_store.save_model(session, policy, config_row, 0, previous, "test").version


def test_a_warm_runtime_reads_one_small_row_per_request(
    session_factory: sessionmaker[Session], db_engine: Engine, demo_catalog: DemoCatalog
) -> None:
    runtime = EngineRuntime(np.random.default_rng(0))
    with session_factory.begin() as session:
        runtime.serving(session)  # cold: creates the default config, loads everything
    seen = recorded_statements(db_engine)
    with session_factory() as session:
        serving = runtime.serving(session)
    assert len([s for s in seen if s.lstrip().upper().startswith("SELECT")]) == 1
    assert serving.config_row.name == "default"


def test_without_a_feed_a_new_model_and_config_are_served_on_the_next_request(
    session_factory: sessionmaker[Session], demo_catalog: DemoCatalog
) -> None:
    runtime = EngineRuntime(np.random.default_rng(0))
    with session_factory.begin() as session:
        first = runtime.serving(session)
    version = _save_new_model(session_factory)
    with session_factory.begin() as session:
        configs.save_config(session, PolicyConfig(name="next", epsilon=0.2), "test", True)
    with session_factory() as session:
        served = runtime.serving(session)
    assert served.model_version == version != first.model_version
    assert served.config_row.name == "next" and served.recommender.config.epsilon == 0.2


def _wait_for(predicate: object, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False


def test_with_a_feed_a_new_model_reaches_the_runtime_within_a_second(
    session_factory: sessionmaker[Session], db_engine: Engine, demo_catalog: DemoCatalog
) -> None:
    """LISTEN/NOTIFY on PostgreSQL, the half-second poll on SQLite."""
    feed = ChangeFeed(db_engine)
    runtime = EngineRuntime(np.random.default_rng(0), feed)
    try:
        if db_engine.dialect.name == "postgresql":
            assert _wait_for(lambda: feed.token() is not None), "the listener never connected"
        with session_factory.begin() as session:
            before = runtime.serving(session).model_version
        # Creating the default config above was announced too: let that notice arrive.
        time.sleep(0.5)
        with session_factory() as session:
            runtime.serving(session)
        seen = recorded_statements(db_engine)
        with session_factory() as session:
            runtime.serving(session)
        if db_engine.dialect.name == "postgresql":
            assert seen == [], "no change announced: nothing is read"
        version = _save_new_model(session_factory)
        saved_at = time.monotonic()

        def served() -> bool:
            with session_factory() as session:
                return runtime.serving(session).model_version == version

        assert _wait_for(served), "the new model never arrived"
        assert time.monotonic() - saved_at < 1.0 + change_feed.POLL_SECONDS
        assert version != before
    finally:
        feed.close()


def test_announcements_of_a_rolled_back_transaction_never_arrive(
    session_factory: sessionmaker[Session], db_engine: Engine
) -> None:
    feed = ChangeFeed(db_engine)
    if db_engine.dialect.name != "postgresql":
        # SQLite has no notifications: announcing writes nothing, and the feed polls.
        seen = recorded_statements(db_engine)
        with session_factory() as session:
            change_feed.announce(session)
        assert seen == []
        first = feed.token()
        assert _wait_for(lambda: feed.token() != first, 2 * change_feed.POLL_SECONDS + 0.5)
        return
    try:
        assert _wait_for(lambda: feed.token() is not None)
        token = feed.token()
        with session_factory() as session:
            change_feed.announce(session)
            session.rollback()
        time.sleep(0.5)
        assert feed.token() == token
        with session_factory.begin() as session:
            change_feed.announce(session)
        assert _wait_for(lambda: feed.token() not in (token, None))
    finally:
        feed.close()


def test_learning_announces_its_new_version(
    session_factory: sessionmaker[Session], db_engine: Engine, demo_catalog: DemoCatalog
) -> None:
    seen = recorded_statements(db_engine)
    _save_new_model(session_factory)
    if db_engine.dialect.name == "postgresql":
        assert any("pg_notify" in s for s in seen)
    with session_factory() as session:  # and learning with nothing pending saves nothing
        assert learning.learn_pending(session).model_version is None
