"""Rows the migration tests insert with plain SQL, at the schema of an older revision."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, text


def insert_default_config(connection: Connection, when: datetime) -> None:
    """The active policy config (id 1) that decisions refer to."""
    connection.execute(
        text(
            "INSERT INTO policy_configs (id, name, version, document, active, created_by, "
            "created_at) VALUES (1, 'default', 1, '{}', :yes, 'test', :when)"
        ),
        {"yes": True, "when": when},
    )


def insert_decision(
    connection: Connection,
    pk: int,
    when: datetime,
    route: str = "review_before",
    status: str = "pending_review",
    delivered_at: datetime | None = None,
) -> None:
    """A decision of the default config, event id `ev-<pk>`, with no candidates or slate."""
    connection.execute(
        text(
            "INSERT INTO decisions (id, event_id, context, exclude, candidates, position_pmfs, "
            "uncertainty, route, status, policy_config_id, policy_name, policy_version, "
            "model_version, delivered_at, created_at) VALUES (:id, :event_id, '{}', '[]', "
            "'[]', '[]', '{}', :route, :status, 1, 'default', 1, 0, :delivered, :when)"
        ),
        {"id": pk, "event_id": f"ev-{pk}", "route": route, "status": status,
         "delivered": delivered_at, "when": when},
    )  # fmt: skip
