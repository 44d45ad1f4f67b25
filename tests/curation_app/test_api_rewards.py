"""POST /api/v1/events/<id>/reward: accepted once, never double-learned, defaults after a wait."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bandit.db.models import Outcome, utcnow
from bandit.services import learning, rewards
from tests.api_support import (
    DELIVER_AT_ONCE,
    activate_config,
    event_url,
    ranked,
    reward_url,
    row_count,
    snapshot,
)
from tests.conftest import DemoCatalog


@pytest.fixture
def context(demo_catalog: DemoCatalog) -> dict[str, Any]:
    return dict(demo_catalog.customers[2])


@pytest.fixture
def delivered(
    client: FlaskClient,
    auth_headers: dict[str, str],
    session_factory: sessionmaker[Session],
    context: dict[str, Any],
) -> dict[str, Any]:
    """A decision that went out at once (a curator verifies it later)."""
    activate_config(session_factory, **DELIVER_AT_ONCE)
    return ranked(client, auth_headers, context, slate_size=3)


def _outcomes(sessions: sessionmaker[Session]) -> list[tuple[str, float, bool, bool]]:
    with sessions() as session:
        return [
            (o.item_key, o.value, o.is_default, o.after_default)
            for o in session.scalars(select(Outcome).order_by(Outcome.id))
        ]


def _learn(sessions: sessionmaker[Session], seconds_later: float = 0.0) -> learning.LearnReport:
    with sessions() as session:
        return learning.learn_pending(session, now=utcnow() + timedelta(seconds=seconds_later))


def test_a_reward_for_a_delivered_item_is_accepted(
    client: FlaskClient,
    auth_headers: dict[str, str],
    session_factory: sessionmaker[Session],
    delivered: dict[str, Any],
) -> None:
    item_id = delivered["slate"][0]["item_id"]

    response = client.post(
        reward_url(delivered["event_id"]),
        json={"value": 1, "item_id": item_id},
        headers=auth_headers,
    )

    assert response.status_code == 202
    assert response.get_json() == {
        "event_id": delivered["event_id"],
        "item_id": item_id,
        "value": 1.0,
        "accepted": True,
        "duplicate": False,
    }
    assert _outcomes(session_factory) == [(item_id, 1.0, False, False)]


def test_a_repeated_reward_is_stored_once_and_learned_once(
    client: FlaskClient,
    auth_headers: dict[str, str],
    session_factory: sessionmaker[Session],
    delivered: dict[str, Any],
) -> None:
    url = reward_url(delivered["event_id"])
    body = {"value": 0.5, "item_id": delivered["slate"][1]["item_id"]}

    first = client.post(url, json=body, headers=auth_headers)
    retry = client.post(url, json=body, headers=auth_headers)

    assert (first.status_code, retry.status_code) == (202, 202)
    assert retry.get_json()["duplicate"] is True
    assert row_count(session_factory, "outcomes") == 1
    assert _learn(session_factory).rounds_learned == 1
    assert client.post(url, json=body, headers=auth_headers).status_code == 202
    assert _learn(session_factory).rounds_learned == 0


def test_an_event_level_reward_is_learned_once_per_delivered_item(
    client: FlaskClient,
    auth_headers: dict[str, str],
    session_factory: sessionmaker[Session],
    delivered: dict[str, Any],
) -> None:
    url = reward_url(delivered["event_id"])

    assert client.post(url, json={"value": 1.0}, headers=auth_headers).status_code == 202
    assert client.post(url, json={"value": 1.0}, headers=auth_headers).status_code == 202

    assert _learn(session_factory).rounds_learned == len(delivered["slate"])
    assert _learn(session_factory).rounds_learned == 0


@pytest.mark.parametrize(
    "first_per_item", [True, False], ids=["item-then-event", "event-then-item"]
)
def test_mixing_event_and_item_rewards_is_refused(
    client: FlaskClient,
    auth_headers: dict[str, str],
    session_factory: sessionmaker[Session],
    delivered: dict[str, Any],
    first_per_item: bool,
) -> None:
    url = reward_url(delivered["event_id"])
    per_item = {"value": 1.0, "item_id": delivered["slate"][0]["item_id"]}
    bodies = [per_item, {"value": 1.0}] if first_per_item else [{"value": 1.0}, per_item]

    assert client.post(url, json=bodies[0], headers=auth_headers).status_code == 202
    stored = snapshot(session_factory)
    response = client.post(url, json=bodies[1], headers=auth_headers)

    assert response.status_code == 409
    assert "item_id" in response.get_json()["error"]
    assert snapshot(session_factory) == stored


def test_a_different_value_for_the_same_item_conflicts_and_keeps_the_first(
    client: FlaskClient,
    auth_headers: dict[str, str],
    session_factory: sessionmaker[Session],
    delivered: dict[str, Any],
) -> None:
    url = reward_url(delivered["event_id"])
    item_id = delivered["slate"][0]["item_id"]
    client.post(url, json={"value": 1.0, "item_id": item_id}, headers=auth_headers)

    response = client.post(url, json={"value": 0.0, "item_id": item_id}, headers=auth_headers)

    assert response.status_code == 409
    assert "value" in response.get_json()["error"]
    assert _outcomes(session_factory) == [(item_id, 1.0, False, False)]


def test_a_reward_for_an_unknown_event_is_not_found(
    client: FlaskClient, auth_headers: dict[str, str], delivered: dict[str, Any]
) -> None:
    response = client.post(reward_url("never-ranked"), json={"value": 1.0}, headers=auth_headers)

    assert response.status_code == 404
    assert "never-ranked" in response.get_json()["error"]


def test_a_reward_for_an_item_outside_the_delivered_slate_is_refused(
    client: FlaskClient,
    auth_headers: dict[str, str],
    session_factory: sessionmaker[Session],
    demo_catalog: DemoCatalog,
    delivered: dict[str, Any],
) -> None:
    slate = {item["item_id"] for item in delivered["slate"]}
    outsider = next(i for i in demo_catalog.item_ids if i not in slate)

    response = client.post(
        reward_url(delivered["event_id"]),
        json={"value": 1.0, "item_id": outsider},
        headers=auth_headers,
    )

    assert response.status_code == 400
    assert "item_id" in response.get_json()["error"]
    assert row_count(session_factory, "outcomes") == 0


def test_a_reward_before_delivery_conflicts(
    client: FlaskClient,
    auth_headers: dict[str, str],
    session_factory: sessionmaker[Session],
    context: dict[str, Any],
) -> None:
    pending = ranked(client, auth_headers, context)  # untrained: a curator must review first
    assert pending["status"] == "pending_review"

    response = client.post(
        reward_url(pending["event_id"]),
        json={"value": 1.0, "item_id": pending["slate"][0]["item_id"]},
        headers=auth_headers,
    )

    assert response.status_code == 409
    assert "review" in response.get_json()["error"]
    assert row_count(session_factory, "outcomes") == 0


def test_the_default_reward_arrives_after_the_wait_and_a_late_reward_is_not_learned(
    client: FlaskClient,
    auth_headers: dict[str, str],
    session_factory: sessionmaker[Session],
    context: dict[str, Any],
) -> None:
    activate_config(session_factory, **DELIVER_AT_ONCE, reward_wait_seconds=0, default_reward=0.25)
    decision = ranked(client, auth_headers, context, slate_size=2)
    event_id = decision["event_id"]

    report = _learn(session_factory, seconds_later=1)

    assert report.defaults_assigned == 1
    assert report.rounds_learned == 2  # the default is learned on each delivered item
    view = client.get(event_url(event_id), headers=auth_headers).get_json()
    assert view["status"] == "rewarded"
    assert [(o["item_id"], o["value"], o["is_default"]) for o in view["outcomes"]] == [
        (None, 0.25, True)
    ]

    late = client.post(
        reward_url(event_id),
        json={"value": 1.0, "item_id": decision["slate"][0]["item_id"]},
        headers=auth_headers,
    )
    assert late.status_code == 202

    report = _learn(session_factory, seconds_later=2)
    assert (report.rewards, report.rewards_not_fed, report.rounds_learned) == (1, 1, 0)
    outcomes = client.get(event_url(event_id), headers=auth_headers).get_json()["outcomes"]
    assert [(o["is_default"], o["after_default"], o["learned"]) for o in outcomes] == [
        (True, False, True),
        (False, True, True),
    ]


def test_no_default_reward_before_the_wait_runs_out(
    client: FlaskClient,
    auth_headers: dict[str, str],
    session_factory: sessionmaker[Session],
    delivered: dict[str, Any],
) -> None:
    report = _learn(session_factory)

    assert report.defaults_assigned == 0
    assert row_count(session_factory, "outcomes") == 0


def test_a_reward_racing_the_default_pass_is_counted_once(
    client: FlaskClient,
    auth_headers: dict[str, str],
    session_factory: sessionmaker[Session],
    context: dict[str, Any],
) -> None:
    activate_config(session_factory, **DELIVER_AT_ONCE, reward_wait_seconds=0, default_reward=0.25)
    event_id = ranked(client, auth_headers, context, slate_size=2)["event_id"]
    learner = session_factory()
    assert rewards.assign_default_rewards(learner, utcnow() + timedelta(seconds=1)) == 1

    def client_reward() -> None:
        with session_factory() as session:
            rewards.record_reward(session, event_id, 1.0, None, "client:test")
            session.commit()

    racer = threading.Thread(target=client_reward)
    racer.start()
    # The client's reward arrives while the default pass has not committed yet.
    time.sleep(0.5)
    learner.commit()
    learner.close()
    racer.join(timeout=30)

    assert _outcomes(session_factory) == [("*default*", 0.25, True, False), ("", 1.0, False, True)]
    report = _learn(session_factory, seconds_later=2)
    assert (report.rewards_not_fed, report.rounds_learned) == (1, 2)  # the default, per item
