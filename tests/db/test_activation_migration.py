"""Migration 0010: events deferred and not yet activated keep waiting for their activation."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import create_engine, inspect, text

from bandit.db import migrate

WHEN = datetime(2026, 11, 1, 12, 0)


def test_events_still_awaiting_activation_are_marked_and_the_column_goes_back(
    empty_url: str,
) -> None:
    migrate.upgrade(empty_url, "0006_console_search")
    engine = create_engine(empty_url)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO policy_configs (id, name, version, document, active, created_by, "
                "created_at) VALUES (1, 'default', 1, '{}', :yes, 'test', :when)"
            ),
            {"yes": True, "when": WHEN},
        )
        # (decision id, deferred, activated): waiting, activated since, never deferred.
        for pk, deferred, activated in ((1, True, None), (2, True, WHEN), (3, False, None)):
            connection.execute(
                text(
                    "INSERT INTO decisions (id, event_id, context, exclude, candidates, "
                    "position_pmfs, uncertainty, route, status, policy_config_id, policy_name, "
                    "policy_version, model_version, created_at) VALUES (:id, :event_id, '{}', "
                    "'[]', '[]', '[]', '{}', 'auto', 'delivered', 1, 'default', 1, 0, :when)"
                ),
                {"id": pk, "event_id": f"ev-{pk}", "when": WHEN},
            )
            connection.execute(
                text(
                    "INSERT INTO personalizer_events (decision_id, deferred, activated_at) "
                    "VALUES (:id, :deferred, :activated)"
                ),
                {"id": pk, "deferred": deferred, "activated": activated},
            )
    engine.dispose()
    migrate.upgrade(empty_url)
    engine = create_engine(empty_url)
    with engine.connect() as connection:
        marked = connection.execute(
            text("SELECT id, awaiting_activation FROM decisions ORDER BY id")
        ).all()
    engine.dispose()
    assert [(pk, bool(flag)) for pk, flag in marked] == [(1, True), (2, False), (3, False)]
    migrate.downgrade(empty_url, "0006_console_search")
    engine = create_engine(empty_url)
    columns = {c["name"] for c in inspect(engine).get_columns("decisions")}
    engine.dispose()
    assert "awaiting_activation" not in columns
