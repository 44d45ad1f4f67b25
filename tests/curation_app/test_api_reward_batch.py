"""POST /api/v1/rewards: many events' rewards in one call, the same answers as one by one."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bandit.db.models import Decision, EventChange, Outcome
from bandit.engine.vocabulary import DecisionStatus, EventChangeKind
from bandit.services import learning
from curation_app.api import MAX_BATCH_REWARDS
from tests.api_support import DELIVER_AT_ONCE, activate_config, ranked, reward_url, snapshot
from tests.conftest import DemoCatalog

BATCH_URL = "/api/v1/rewards"


@pytest.fixture
def events(
    client: FlaskClient,
    auth_headers: dict[str, str],
    session_factory: sessionmaker[Session],
    demo_catalog: DemoCatalog,
) -> list[dict[str, Any]]:
    """Three decisions that went out at once, with slates of three items."""
    activate_config(session_factory, **DELIVER_AT_ONCE)
    return [
        ranked(client, auth_headers, dict(demo_catalog.customers[n]), slate_size=3)
        for n in range(3)
    ]


def _items(event: dict[str, Any]) -> list[str]:
    return [entry["item_id"] for entry in event["slate"]]


def _mixed_batch(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-item rewards for the first two events (interleaved), one event-level for the third."""
    first, second, third = events
    return [
        {"event_id": first["event_id"], "item_id": _items(first)[0], "value": 1.0},
        {"event_id": second["event_id"], "item_id": _items(second)[2], "value": 0.0},
        {"event_id": first["event_id"], "item_id": _items(first)[1], "value": 0.0},
        {"event_id": third["event_id"], "value": 1.0},
    ]


def _stored(sessions: sessionmaker[Session]) -> dict[str, list[tuple[str, float]]]:
    """Each event's outcomes in the order they were stored, and its reward changes counted."""
    with sessions() as session:
        rows = session.execute(
            select(Decision.event_id, Outcome.item_key, Outcome.value)
            .join(Outcome, Outcome.decision_id == Decision.id)
            .order_by(Outcome.id)
        ).all()
    stored: dict[str, list[tuple[str, float]]] = {}
    for event_id, item_key, value in rows:
        stored.setdefault(event_id, []).append((item_key, value))
    return stored


def _reward_changes(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        query = select(EventChange).where(EventChange.kind == EventChangeKind.REWARDED)
        return len(session.scalars(query).all())


def test_a_batch_stores_every_reward_once_and_answers_in_the_order_sent(
    client: FlaskClient,
    auth_headers: dict[str, str],
    session_factory: sessionmaker[Session],
    events: list[dict[str, Any]],
) -> None:
    batch = _mixed_batch(events)

    response = client.post(BATCH_URL, json={"rewards": batch}, headers=auth_headers)

    assert response.status_code == 202, response.get_json()
    answer = response.get_json()
    assert (answer["accepted"], answer["created"], answer["duplicates"]) == (True, 4, 0)
    assert [
        (a["event_id"], a["item_id"], a["value"], a["duplicate"]) for a in answer["rewards"]
    ] == [(b["event_id"], b.get("item_id"), b["value"], False) for b in batch]
    first, second, third = events
    assert _stored(session_factory) == {
        first["event_id"]: [(_items(first)[0], 1.0), (_items(first)[1], 0.0)],
        second["event_id"]: [(_items(second)[2], 0.0)],
        third["event_id"]: [("", 1.0)],
    }
    assert _reward_changes(session_factory) == 4
    with session_factory() as session:
        statuses = session.scalars(select(Decision.status)).all()
    assert set(statuses) == {DecisionStatus.REWARDED}


def test_a_retried_batch_stores_nothing_new_and_is_learned_once(
    client: FlaskClient,
    auth_headers: dict[str, str],
    session_factory: sessionmaker[Session],
    events: list[dict[str, Any]],
) -> None:
    body = {"rewards": _mixed_batch(events)}
    assert client.post(BATCH_URL, json=body, headers=auth_headers).status_code == 202
    with session_factory.begin() as session:
        # Two per-item rounds, one more per-item round, and the event-level reward on each of
        # the third event's three delivered items.
        assert learning.learn_pending(session).rounds_learned == 6
    stored = snapshot(session_factory)

    retry = client.post(BATCH_URL, json=body, headers=auth_headers)

    assert retry.status_code == 202
    assert (retry.get_json()["created"], retry.get_json()["duplicates"]) == (0, 4)
    assert all(a["duplicate"] for a in retry.get_json()["rewards"])
    assert snapshot(session_factory) == stored
    with session_factory.begin() as session:
        assert learning.learn_pending(session).rounds_learned == 0


def test_a_batch_after_single_rewards_creates_only_the_new_ones(
    client: FlaskClient,
    auth_headers: dict[str, str],
    session_factory: sessionmaker[Session],
    events: list[dict[str, Any]],
) -> None:
    first = events[0]
    single = {"value": 1.0, "item_id": _items(first)[0]}
    assert (
        client.post(reward_url(first["event_id"]), json=single, headers=auth_headers).status_code
        == 202
    )

    response = client.post(BATCH_URL, json={"rewards": _mixed_batch(events)}, headers=auth_headers)

    assert response.status_code == 202
    assert [a["duplicate"] for a in response.get_json()["rewards"]] == [True, False, False, False]
    assert _reward_changes(session_factory) == 4


# Each bad batch: its rewards as (event index or a name, item index / None / a name, value),
# the status and the start of the message, which names the refused entry and its field.
BAD_BATCHES = {
    "unknown event": ([(0, 0, 1.0), ("never-ranked", None, 1.0)], 404, "rewards.1.event_id"),
    "item off the slate": ([(0, 0, 1.0), (1, "not-on-the-slate", 1.0)], 400, "rewards.1.item_id"),
    "two values for one item": ([(0, 0, 1.0), (1, 0, 1.0), (0, 0, 0.0)], 409, "rewards.2.value"),
    "event after item rewards": ([(0, 0, 1.0), (0, None, 1.0)], 409, "rewards.1.item_id"),
    "item after an event reward": ([(2, None, 1.0), (2, 1, 1.0)], 409, "rewards.1.item_id"),
}


@pytest.mark.parametrize(("rewards", "status", "names"), BAD_BATCHES.values(), ids=BAD_BATCHES)
def test_a_refused_reward_refuses_the_whole_batch_naming_it(
    client: FlaskClient,
    auth_headers: dict[str, str],
    session_factory: sessionmaker[Session],
    events: list[dict[str, Any]],
    rewards: list[tuple[int | str, int | str | None, float]],
    status: int,
    names: str,
) -> None:
    batch = []
    for event, item, value in rewards:
        target = events[event] if isinstance(event, int) else {"event_id": event, "slate": []}
        entry: dict[str, Any] = {"event_id": target["event_id"], "value": value}
        if item is not None:
            entry["item_id"] = _items(target)[item] if isinstance(item, int) else item
        batch.append(entry)
    stored = snapshot(session_factory)

    response = client.post(BATCH_URL, json={"rewards": batch}, headers=auth_headers)

    assert response.status_code == status
    assert response.get_json()["error"].startswith(names), response.get_json()
    assert snapshot(session_factory) == stored


def test_a_batch_with_an_event_awaiting_review_is_refused(
    client: FlaskClient,
    auth_headers: dict[str, str],
    session_factory: sessionmaker[Session],
    demo_catalog: DemoCatalog,
) -> None:
    activate_config(session_factory, routing_mode="review_before")
    pending = ranked(client, auth_headers, dict(demo_catalog.customers[0]))
    assert pending["status"] == "pending_review"
    stored = snapshot(session_factory)

    batch = [{"event_id": pending["event_id"], "value": 1.0}]
    response = client.post(BATCH_URL, json={"rewards": batch}, headers=auth_headers)

    assert response.status_code == 409
    assert response.get_json()["error"].startswith("rewards.0.event_id: ")
    assert "review" in response.get_json()["error"]
    assert snapshot(session_factory) == stored


def _entry(event_id: str = "e1", **fields: Any) -> dict[str, Any]:
    return {"event_id": event_id, "value": 1.0, **fields}


BAD_BODIES = {
    "no rewards": ({"rewards": []}, "rewards:"),
    "too many": ({"rewards": [_entry(f"e{n}") for n in range(MAX_BATCH_REWARDS + 1)]}, "rewards:"),
    "not a list": ({"rewards": {"event_id": "e1"}}, "rewards:"),
    "missing value": ({"rewards": [_entry(), {"event_id": "e2"}]}, "rewards.1.value"),
    "value as text": ({"rewards": [_entry(value="1")]}, "rewards.0.value"),
    "value too large": ({"rewards": [_entry(value=1e7)]}, "rewards.0.value"),
    "bad event id": ({"rewards": [_entry("a/b")]}, "rewards.0.event_id"),
    "unknown field": ({"rewards": [_entry(weight=2)]}, "rewards.0.weight"),
}


@pytest.mark.parametrize(("body", "names"), BAD_BODIES.values(), ids=BAD_BODIES)
def test_a_malformed_batch_is_a_400_naming_the_field(
    client: FlaskClient,
    auth_headers: dict[str, str],
    session_factory: sessionmaker[Session],
    events: list[dict[str, Any]],
    body: dict[str, Any],
    names: str,
) -> None:
    stored = snapshot(session_factory)

    response = client.post(BATCH_URL, json=body, headers=auth_headers)

    assert response.status_code == 400
    assert names in response.get_json()["error"], response.get_json()
    assert snapshot(session_factory) == stored


def test_a_batch_needs_a_client_token(client: FlaskClient, events: list[dict[str, Any]]) -> None:
    response = client.post(BATCH_URL, json={"rewards": [_entry(events[0]["event_id"])]})

    assert response.status_code == 401
