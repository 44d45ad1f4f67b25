"""Migration 0015: checks of delivered slates stop counting as held; held slates stay held."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import create_engine, text

from bandit.db import migrate
from tests.db.rows import insert_decision, insert_default_config

WHEN = datetime(2026, 11, 1, 12, 0)
DELIVERED = WHEN + timedelta(minutes=1)

# (task id, route, status, overflow, decision delivered_at) -> overflow after the upgrade.
TASKS = [
    (1, "review_after", "open", "held", DELIVERED, None),  # a late check: nothing held
    (2, "review_after", "claimed", "held", DELIVERED, None),
    (3, "review_before", "open", "held", None, "held"),  # its slate still waits
    (4, "review_after", "done", "held", DELIVERED, "held"),  # finished: history kept
    (5, "review_before", "overflowed", "delivered_unreviewed", DELIVERED, "delivered_unreviewed"),
]


def test_open_checks_of_delivered_slates_lose_the_held_label(empty_url: str) -> None:
    migrate.upgrade(empty_url, "0014_withdrawn_time")
    engine = create_engine(empty_url)
    with engine.begin() as connection:
        insert_default_config(connection, WHEN)
        for pk, route, status, overflow, delivered, _ in TASKS:
            insert_decision(connection, pk, WHEN, route, "delivered", delivered_at=delivered)
            connection.execute(
                text(
                    "INSERT INTO review_tasks (id, decision_id, review_round, route, status, "
                    "priority, measure_name, queue_key, due_at, overflow, created_at) VALUES "
                    "(:id, :id, 1, :route, :status, 0.5, 'least_confidence', 0.0, :when, "
                    ":overflow, :when)"
                ),
                {"id": pk, "route": route, "status": status, "overflow": overflow, "when": WHEN},
            )
    engine.dispose()
    migrate.upgrade(empty_url)
    engine = create_engine(empty_url)
    with engine.connect() as connection:
        labels = connection.execute(text("SELECT id, overflow FROM review_tasks ORDER BY id"))
        stored = [tuple(row) for row in labels]
    engine.dispose()
    assert stored == [(pk, expected) for pk, *_, expected in TASKS]
    migrate.downgrade(empty_url, "0014_withdrawn_time")
    migrate.upgrade(empty_url)
