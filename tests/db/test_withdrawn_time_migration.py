"""Migration 0014: a review task keeps the time of a submit since undone; the columns go back."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import create_engine, inspect, text

from bandit.db import migrate
from tests.db.rows import insert_decision, insert_default_config

WHEN = datetime(2026, 11, 1, 12, 0)


def test_older_tasks_have_no_withdrawn_time_and_the_columns_go_back(empty_url: str) -> None:
    migrate.upgrade(empty_url, "0013_task_end")
    engine = create_engine(empty_url)
    with engine.begin() as connection:
        insert_default_config(connection, WHEN)
        insert_decision(connection, 1, WHEN)
        connection.execute(
            text(
                "INSERT INTO review_tasks (id, decision_id, review_round, route, status, "
                "priority, measure_name, queue_key, created_at) VALUES (1, 1, 1, "
                "'review_before', 'open', 0.5, '', 0.0, :when)"
            ),
            {"when": WHEN},
        )
    engine.dispose()
    migrate.upgrade(empty_url)
    engine = create_engine(empty_url)
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT id, withdrawn_seconds, withdrawn_by FROM review_tasks")
        ).all()
    foreign = {
        (tuple(fk["constrained_columns"]), fk["referred_table"])
        for fk in inspect(engine).get_foreign_keys("review_tasks")
    }
    engine.dispose()
    assert [tuple(row) for row in rows] == [(1, 0.0, None)]
    assert (("withdrawn_by",), "curators") in foreign
    migrate.downgrade(empty_url, "0013_task_end")
    engine = create_engine(empty_url)
    columns = {c["name"] for c in inspect(engine).get_columns("review_tasks")}
    constrained = {
        tuple(fk["constrained_columns"]) for fk in inspect(engine).get_foreign_keys("review_tasks")
    }
    with engine.connect() as connection:
        kept = connection.execute(text("SELECT id, decision_id FROM review_tasks")).all()
    engine.dispose()
    assert not {"withdrawn_seconds", "withdrawn_by"} & columns
    assert ("withdrawn_by",) not in constrained and ("decision_id",) in constrained
    assert [tuple(row) for row in kept] == [(1, 1)]
