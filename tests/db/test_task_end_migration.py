"""Migration 0013: tasks that overflowed before it get the time they stopped waiting."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import create_engine, text

from bandit.db import migrate
from tests.db.rows import insert_decision, insert_default_config

WHEN = datetime(2026, 11, 1, 12, 0)
DUE = WHEN + timedelta(hours=4)
FALLBACK = WHEN + timedelta(hours=1)
DELIVERED = WHEN + timedelta(hours=5)
SUBMITTED = WHEN + timedelta(minutes=30)

# (task id, status, overflow, fallback_at, completed_at, decision delivered_at) -> expected end.
TASKS = [
    (1, "overflowed", "delivered_unreviewed", None, None, DELIVERED, DELIVERED),
    (2, "overflowed", "client_fallback", FALLBACK, None, DELIVERED, DELIVERED),
    # Created overflowed: the queue was full, the slate went out at intake.
    (3, "overflowed", "delivered_unreviewed", None, None, WHEN, WHEN),
    # Slate already out: the first moment upkeep could close it.
    (4, "overflowed", "closed_unreviewed", None, None, WHEN, DUE),
    (5, "overflowed", "closed_unreviewed", FALLBACK, None, WHEN, FALLBACK),
    (6, "open", "held", None, None, None, None),
    (7, "done", None, None, SUBMITTED, SUBMITTED, SUBMITTED),
]


def test_overflowed_tasks_get_their_end_and_other_tasks_keep_theirs(empty_url: str) -> None:
    migrate.upgrade(empty_url, "0012_unmeasured_bound")
    engine = create_engine(empty_url)
    with engine.begin() as connection:
        insert_default_config(connection, WHEN)
        for pk, status, overflow, fallback, completed, delivered, _ in TASKS:
            insert_decision(connection, pk, WHEN, status="delivered", delivered_at=delivered)
            connection.execute(
                text(
                    "INSERT INTO review_tasks (id, decision_id, review_round, route, status, "
                    "priority, measure_name, queue_key, due_at, fallback_at, overflow, "
                    "completed_at, created_at) VALUES (:id, :id, 1, 'review_before', :status, "
                    "0.5, 'least_confidence', 0.0, :due, :fallback, :overflow, :completed, :when)"
                ),
                {
                    "id": pk,
                    "status": status,
                    "due": DUE,
                    "fallback": fallback,
                    "overflow": overflow,
                    "completed": completed,
                    "when": WHEN,
                },  # fmt: skip
            )
    engine.dispose()
    migrate.upgrade(empty_url)
    engine = create_engine(empty_url)
    with engine.connect() as connection:
        ends = connection.execute(text("SELECT id, completed_at FROM review_tasks ORDER BY id"))
        stored = [(pk, _naive(end)) for pk, end in ends]
    engine.dispose()
    assert stored == [(pk, expected) for pk, *_, expected in TASKS]
    migrate.downgrade(empty_url, "0012_unmeasured_bound")
    migrate.upgrade(empty_url)


def _naive(value: datetime | str | None) -> datetime | None:
    """SQLite hands back text, PostgreSQL a datetime."""
    return datetime.fromisoformat(value) if isinstance(value, str) else value
