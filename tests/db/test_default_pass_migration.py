"""Migration 0016: decisions remember the default pass; those with a default get its time."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import create_engine, inspect, text

from bandit.db import migrate
from tests.db.rows import insert_decision, insert_default_config

WHEN = datetime(2026, 11, 1, 12, 0)
DEFAULTED = WHEN + timedelta(hours=1)

# (decision id, its outcomes as (item key, is default, created at)) -> default_pass_at after.
DECISIONS = [
    (1, [("*default*", True, DEFAULTED)], DEFAULTED),  # the old pass gave it a default
    (2, [("a", False, WHEN), ("*default*", True, DEFAULTED)], DEFAULTED),
    (3, [("", False, WHEN)], None),  # an event-level reward: the pass never touches it
    (4, [("a", False, WHEN)], None),  # not passed yet: the next pass decides
    (5, [], None),
]


def test_events_with_a_default_are_marked_passed_and_the_column_goes_back(
    empty_url: str,
) -> None:
    migrate.upgrade(empty_url, "0015_held_checks")
    engine = create_engine(empty_url)
    with engine.begin() as connection:
        insert_default_config(connection, WHEN)
        for pk, outcomes, _ in DECISIONS:
            insert_decision(connection, pk, WHEN, "auto", "rewarded", delivered_at=WHEN)
            for key, is_default, created in outcomes:
                connection.execute(
                    text(
                        "INSERT INTO outcomes (decision_id, item_key, value, is_default, "
                        "after_default, source, created_at) VALUES (:decision, :key, 0.5, "
                        ":is_default, :no, 'test', :created)"
                    ),
                    {"decision": pk, "key": key, "is_default": is_default, "no": False,
                     "created": created},
                )  # fmt: skip
    engine.dispose()
    migrate.upgrade(empty_url)
    engine = create_engine(empty_url)
    with engine.connect() as connection:
        stored = connection.execute(
            text("SELECT id, default_pass_at FROM decisions ORDER BY id")
        ).all()
    engine.dispose()
    # SQLite hands back the stored text, PostgreSQL a datetime: compare them as text.
    as_text = [(pk, None if at is None else str(at)[:19]) for pk, at in stored]
    assert as_text == [(pk, passed and str(passed)) for pk, _, passed in DECISIONS]
    migrate.downgrade(empty_url, "0015_held_checks")
    engine = create_engine(empty_url)
    columns = {c["name"] for c in inspect(engine).get_columns("decisions")}
    with engine.connect() as connection:
        kept = connection.execute(text("SELECT count(*) FROM outcomes")).scalar()
    engine.dispose()
    assert "default_pass_at" not in columns and kept == 5
    migrate.upgrade(empty_url)
