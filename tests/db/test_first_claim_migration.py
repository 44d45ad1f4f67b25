"""Migration 0011: a review task's first claim, taken from its claimed_at for older tasks."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Integer, create_engine, inspect, text

from bandit.db import migrate
from tests.db.rows import insert_decision, insert_default_config

WHEN = datetime(2026, 11, 1, 12, 0)
CLAIMED = datetime(2026, 11, 1, 12, 5)


def test_claimed_tasks_keep_their_claim_as_the_first_and_the_column_goes_back(
    empty_url: str,
) -> None:
    migrate.upgrade(empty_url, "0010_activation")
    engine = create_engine(empty_url)
    with engine.begin() as connection:
        insert_default_config(connection, WHEN)
        # (decision id, claimed at): a task claimed once, and one never claimed.
        for pk, claimed in ((1, CLAIMED), (2, None)):
            insert_decision(connection, pk, WHEN)
            connection.execute(
                text(
                    "INSERT INTO review_tasks (id, decision_id, review_round, route, status, "
                    "priority, measure_name, queue_key, claimed_at, created_at) VALUES (:id, "
                    ":id, 1, 'review_before', 'open', 0.5, '', 0.0, :claimed, :when)"
                ),
                {"id": pk, "claimed": claimed, "when": WHEN},
            )
    engine.dispose()
    migrate.upgrade(empty_url)
    engine = create_engine(empty_url)
    with engine.connect() as connection:
        # Typed, so that SQLite's stored text reads back as a datetime.
        firsts = connection.execute(
            text("SELECT id, first_claimed_at FROM review_tasks ORDER BY id").columns(
                id=Integer(), first_claimed_at=DateTime()
            )
        ).all()
    engine.dispose()
    assert [tuple(row) for row in firsts] == [(1, CLAIMED), (2, None)]
    migrate.downgrade(empty_url, "0010_activation")
    engine = create_engine(empty_url)
    columns = {c["name"] for c in inspect(engine).get_columns("review_tasks")}
    engine.dispose()
    assert "first_claimed_at" not in columns and "claimed_at" in columns
