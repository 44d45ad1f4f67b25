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
