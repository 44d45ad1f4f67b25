"""Migration 0017: deliveries count their backoff from the last replay; the column goes back."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import create_engine, inspect, text

from bandit.db import migrate
from tests.db.rows import insert_decision, insert_default_config

WHEN = datetime(2026, 11, 1, 12, 0)


def test_existing_deliveries_count_from_their_first_attempt_and_the_column_goes_back(
    empty_url: str,
) -> None:
    migrate.upgrade(empty_url, "0016_default_pass")
    engine = create_engine(empty_url)
    with engine.begin() as connection:
        insert_default_config(connection, WHEN)
        insert_decision(connection, 1, WHEN, "auto", "delivered")
        connection.execute(
            text(
                "INSERT INTO event_changes (id, decision_id, event_id, kind, payload, "
                "created_at) VALUES (1, 1, 'ev-1', 'delivered', '{}', :when)"
            ),
            {"when": WHEN},
        )
        connection.execute(
            text(
                "INSERT INTO webhook_endpoints (id, url, events, secret, description, active, "
                "created_by, created_at) VALUES (1, 'http://127.0.0.1:9/h', '[\"delivered\"]', "
                "'whsec_x', '', :yes, 'test', :when)"
            ),
            {"yes": True, "when": WHEN},
        )
        connection.execute(
            text(
                "INSERT INTO webhook_deliveries (id, delivery_id, endpoint_id, change_id, "
                "status, attempts, give_up_at, last_error, created_at) VALUES (1, 'd1', 1, 1, "
                "'failed', 9, :when, 'HTTP 503', :when)"
            ),
            {"when": WHEN},
        )
    engine.dispose()
    migrate.upgrade(empty_url)
    engine = create_engine(empty_url)
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT id, attempts, attempts_before_replay FROM webhook_deliveries")
        ).all()
    engine.dispose()
    assert [tuple(row) for row in rows] == [(1, 9, 0)]
    migrate.downgrade(empty_url, "0016_default_pass")
    engine = create_engine(empty_url)
    columns = {c["name"] for c in inspect(engine).get_columns("webhook_deliveries")}
    with engine.connect() as connection:
        kept = connection.execute(text("SELECT id, attempts FROM webhook_deliveries")).all()
    engine.dispose()
    assert "attempts_before_replay" not in columns and [tuple(row) for row in kept] == [(1, 9)]
    migrate.upgrade(empty_url)
