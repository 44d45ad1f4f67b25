"""GET /api/v1/events/<id>: the status lifecycle, curator actions, final slate and outcomes."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bandit.db.models import CatalogItem
from bandit.services import accounts, review
from bandit.services.review import ItemVerdict
from tests.api_support import DELIVER_AT_ONCE, activate_config, event_url, ranked, reward_url
from tests.conftest import DemoCatalog


@pytest.fixture
def context(demo_catalog: DemoCatalog) -> dict[str, Any]:
    return dict(demo_catalog.customers[1])


@pytest.fixture
def curator_id(session_factory: sessionmaker[Session], curator_account: tuple[str, str]) -> int:
    with session_factory() as session:
        curator = accounts.find_curator(session, curator_account[0])
        assert curator is not None
        return curator.id


def _event(client: FlaskClient, headers: dict[str, str], event_id: str) -> dict[str, Any]:
    response = client.get(event_url(event_id), headers=headers)
    assert response.status_code == 200, response.get_json()
    document: dict[str, Any] = response.get_json()
    return document


def _replacement(sessions: sessionmaker[Session], slate: list[str]) -> str:
    """An in-stock item that is not on the slate."""
    with sessions() as session:
        in_stock = session.scalars(
            select(CatalogItem.item_id).where(CatalogItem.stock > 0).order_by(CatalogItem.id)
        )
        return next(i for i in in_stock if i not in slate)


def test_the_event_shows_each_step_from_review_to_reward(
    client: FlaskClient,
    auth_headers: dict[str, str],
    session_factory: sessionmaker[Session],
    context: dict[str, Any],
    curator_id: int,
) -> None:
    decision = ranked(client, auth_headers, context, slate_size=3)
    event_id = decision["event_id"]
    slate = [item["item_id"] for item in decision["slate"]]

    pending = _event(client, auth_headers, event_id)
    assert pending["status"] == "pending_review"
    assert pending["review"]["status"] == "open"
    assert pending["final_slate"] is None
    assert pending["outcomes"] == []
    assert [p["item_id"] for p in pending["proposed_slate"]] == slate

    with session_factory() as session:
        task = review.claim_next(session, curator_id)
        session.commit()
        assert task is not None
        task_id, lease = task.id, task.lease_token or ""
    assert _event(client, auth_headers, event_id)["status"] == "in_review"

    swap_in = _replacement(session_factory, slate)
    verdicts = [
        ItemVerdict(0, "keep"),
        ItemVerdict(1, "swap", replacement_item_id=swap_in, reason="closer to the brief"),
        ItemVerdict(2, "remove", reason="out of season"),
    ]
    with session_factory() as session:
        assert review.submit_review(session, task_id, curator_id, lease, verdicts, 30.0)

    delivered = _event(client, auth_headers, event_id)
    assert delivered["status"] == "delivered"
    assert delivered["delivered_at"] is not None
    actions = delivered["review"]["actions"]
    assert [(a["item_id"], a["verdict"]) for a in actions] == [
        (slate[0], "kept"),
        (slate[1], "swapped"),
        (slate[2], "removed"),
    ]
    assert actions[1]["replacement_item_id"] == swap_in
    assert actions[1]["reason"] == "closer to the brief"
    assert {a["curator_id"] for a in actions} == {curator_id}
    final = {(f["item_id"], f["tag"], f["delivered"]) for f in delivered["final_slate"]}
    assert final == {
        (slate[0], "kept", True),
        (slate[1], "swapped_out", False),
        (swap_in, "swapped_in", True),
        (slate[2], "removed", False),
    }

    response = client.post(
        reward_url(event_id), json={"value": 1.0, "item_id": swap_in}, headers=auth_headers
    )
    assert response.status_code == 202

    rewarded = _event(client, auth_headers, event_id)
    assert rewarded["status"] == "rewarded"
    assert [(o["item_id"], o["value"], o["is_default"]) for o in rewarded["outcomes"]] == [
        (swap_in, 1.0, False)
    ]


def test_a_decision_delivered_at_once_is_delivered_before_any_review(
    client: FlaskClient,
    auth_headers: dict[str, str],
    session_factory: sessionmaker[Session],
    context: dict[str, Any],
) -> None:
    activate_config(session_factory, **DELIVER_AT_ONCE)

    decision = ranked(client, auth_headers, context)
    view = _event(client, auth_headers, decision["event_id"])

    assert view["route"] == "review_after"
    assert view["status"] == "delivered"
    assert view["review"]["status"] == "open"  # a curator still verifies it afterwards
    assert [f["item_id"] for f in view["final_slate"]] == [s["item_id"] for s in decision["slate"]]
    assert {(f["tag"], f["decided_by"]) for f in view["final_slate"]} == {("kept", "policy")}


def test_the_event_repeats_the_decision_and_its_context(
    client: FlaskClient,
    auth_headers: dict[str, str],
    context: dict[str, Any],
) -> None:
    decision = ranked(client, auth_headers, context, event_id="visit-7")

    view = _event(client, auth_headers, "visit-7")

    for key in ("event_id", "slate", "route", "uncertainty", "policy_version"):
        assert view[key] == decision[key]
    assert view["context"] == context
    for proposed in view["proposed_slate"]:
        assert 0.0 < proposed["probability"] <= proposed["candidate_probability"] <= 1.0
        assert proposed["reason"]
        assert proposed["title"]


def test_an_unknown_event_is_not_found(client: FlaskClient, auth_headers: dict[str, str]) -> None:
    response = client.get(event_url("no-such-event"), headers=auth_headers)

    assert response.status_code == 404
    assert "no-such-event" in response.get_json()["error"]
