"""Helpers shared by the API tests: ranking through the client, configs, table snapshots."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.test import TestResponse

from bandit.db.models import Base
from bandit.engine.config import PolicyConfig
from bandit.services import configs

RANK_URL = "/api/v1/rank"
# Every decision goes out at once and a curator verifies it afterwards.
DELIVER_AT_ONCE: dict[str, Any] = {"routing_mode": "review_after"}


def event_url(event_id: str) -> str:
    return f"/api/v1/events/{event_id}"


def reward_url(event_id: str) -> str:
    return f"/api/v1/events/{event_id}/reward"


def activate_config(sessions: sessionmaker[Session], **settings: Any) -> None:
    """Store and activate a policy config with these settings."""
    with sessions() as session:
        configs.save_config(session, PolicyConfig(**settings), created_by="test", activate=True)
        session.commit()


def rank(
    client: FlaskClient, headers: dict[str, str], context: dict[str, Any], **body: Any
) -> TestResponse:
    """POST /rank with a context and any other body fields."""
    return client.post(RANK_URL, json={"context": context, **body}, headers=headers)


def ranked(
    client: FlaskClient, headers: dict[str, str], context: dict[str, Any], **body: Any
) -> dict[str, Any]:
    """The JSON of a rank request that must succeed."""
    response = rank(client, headers, context, **body)
    assert response.status_code in (200, 201), response.get_json()
    document: dict[str, Any] = response.get_json()
    return document


def snapshot(sessions: sessionmaker[Session]) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in primary-key order: counts and stored values at once."""
    with sessions() as session:
        return {
            table.name: [
                tuple(row)
                for row in session.execute(select(table).order_by(*table.primary_key.columns)).all()
            ]
            for table in Base.metadata.sorted_tables
        }


def row_count(sessions: sessionmaker[Session], table_name: str) -> int:
    """How many rows a table holds."""
    return len(snapshot(sessions)[table_name])
