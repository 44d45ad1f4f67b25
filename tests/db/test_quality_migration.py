"""Migration 0003_quality on both backends, upgrading a database that already holds reviews."""

from __future__ import annotations

from datetime import datetime

import pytest
import sqlalchemy as sa
from sqlalchemy import create_engine, text
from sqlalchemy.exc import IntegrityError

from bandit.db import migrate

WHEN = datetime(2026, 11, 1, 12, 0)


def _seed_reviewed_decision(connection: sa.Connection) -> None:
    connection.execute(
        text(
            "INSERT INTO policy_configs (id, name, version, document, active, created_by, "
            "created_at) VALUES (1, 'default', 1, '{}', :yes, 'test', :when)"
        ),
        {"yes": True, "when": WHEN},
    )
    connection.execute(
        text(
            "INSERT INTO curators (id, username, password_hash, role, active, created_at) "
            "VALUES (1, 'stylist', 'x', 'curator', :yes, :when)"
        ),
        {"yes": True, "when": WHEN},
    )
    connection.execute(
        text(
            "INSERT INTO decisions (id, event_id, context, exclude, candidates, position_pmfs, "
            "uncertainty, route, status, policy_config_id, policy_name, policy_version, "
            "model_version, created_at) VALUES (1, 'ev-1', '{}', '[]', '[]', '[]', '{}', "
            "'review_before', 'delivered', 1, 'default', 1, 0, :when)"
        ),
        {"when": WHEN},
    )
    connection.execute(
        text(
            "INSERT INTO review_tasks (id, decision_id, route, status, priority, curator_id, "
            "created_at, completed_at) VALUES (1, 1, 'review_before', 'done', 0.5, 1, :when, "
            ":when)"
        ),
        {"when": WHEN},
    )
    connection.execute(
        text(
            "INSERT INTO curator_actions (id, task_id, decision_id, curator_id, position, "
            "item_id, verdict, reason, seconds_spent, created_at) VALUES (1, 1, 1, 1, 0, "
            "'item-1', 'kept', '', 3.0, :when)"
        ),
        {"when": WHEN},
    )


def _add_task(connection: sa.Connection, task_id: int, review_round: int) -> None:
    connection.execute(
        text(
            "INSERT INTO review_tasks (id, decision_id, review_round, route, status, priority, "
            "created_at) VALUES (:id, 1, :round, 'review_before', 'open', 0.5, :when)"
        ),
        {"id": task_id, "round": review_round, "when": WHEN},
    )


def test_upgrade_keeps_existing_reviews_as_first_rounds_and_allows_one_second(
    empty_url: str,
) -> None:
    migrate.upgrade(empty_url, "0002_console")
    engine = create_engine(empty_url)
    try:
        with engine.begin() as connection:
            _seed_reviewed_decision(connection)
        migrate.upgrade(empty_url, "0003_quality")
        with engine.begin() as connection:
            assert connection.execute(text("SELECT review_round FROM review_tasks")).all() == [(1,)]
            flags = connection.execute(text("SELECT agreement_only FROM curator_actions")).all()
            assert [bool(flag) for (flag,) in flags] == [False]
            _add_task(connection, 2, review_round=2)
        with pytest.raises(IntegrityError), engine.begin() as connection:
            _add_task(connection, 3, review_round=2)
        migrate.downgrade(empty_url, "0002_console")
        with engine.begin() as connection:
            assert connection.execute(text("SELECT id FROM review_tasks")).all() == [(1,)]
        with pytest.raises(IntegrityError), engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO review_tasks (id, decision_id, route, status, priority, "
                    "created_at) VALUES (4, 1, 'review_before', 'open', 0.5, :when)"
                ),
                {"when": WHEN},
            )
        migrate.upgrade(empty_url)
    finally:
        engine.dispose()
