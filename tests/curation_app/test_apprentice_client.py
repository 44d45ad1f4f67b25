"""Apprentice mode through the API: a client service delivers its own slate, reports it, and
the policy imitates it, apart from the propensity-weighted log."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bandit.db.models import ImitationExample
from bandit.services import accounts, apprentice, learning, review
from tests.api_support import activate_config, event_url, ranked, snapshot
from tests.conftest import DemoCatalog


def choice_url(event_id: str) -> str:
    return f"/api/v1/events/{event_id}/choice"


@pytest.fixture
def apprentice_event(
    client: FlaskClient,
    auth_headers: dict[str, str],
    session_factory: sessionmaker[Session],
    demo_catalog: DemoCatalog,
) -> dict[str, Any]:
    """An apprentice-mode decision of three items, waiting for a human choice."""
    activate_config(session_factory, routing_mode="apprentice")
    decision = ranked(client, auth_headers, dict(demo_catalog.customers[4]), slate_size=3)
    assert decision["route"] == "review_before"
    return decision


def _own_choice(client: FlaskClient, headers: dict[str, str], decision: dict[str, Any]) -> list:
    url = event_url(decision["event_id"]) + "?include=candidates"
    event = client.get(url, headers=headers).get_json()
    on_slate = [item["item_id"] for item in decision["slate"]]
    outsider = next(c["item_id"] for c in event["candidates"] if c["item_id"] not in on_slate)
    return [outsider, on_slate[1]]  # its own first pick, the policy's second, nothing third


def test_a_client_choice_is_delivered_imitated_and_closes_the_review(
    client: FlaskClient,
    auth_headers: dict[str, str],
    session_factory: sessionmaker[Session],
    apprentice_event: dict[str, Any],
    curator_account: tuple[str, str],
) -> None:
    event_id = apprentice_event["event_id"]
    items = _own_choice(client, auth_headers, apprentice_event)

    response = client.post(choice_url(event_id), json={"items": items}, headers=auth_headers)

    assert response.status_code == 202 and response.get_json()["duplicate"] is False
    view = client.get(event_url(event_id), headers=auth_headers).get_json()
    assert view["status"] == "delivered"
    final = {(f["position"], f["tag"], f["decided_by"]) for f in view["final_slate"]}
    assert {(0, "swapped_in", "client"), (1, "kept", "client"), (2, "removed", "client")} <= final
    with session_factory() as session:
        curator = accounts.find_curator(session, curator_account[0])
        assert curator is not None
        assert review.claim_next(session, curator.id) is None  # no curator needed any more
        session.commit()
        examples = session.scalars(select(ImitationExample).order_by(ImitationExample.position))
        assert [(e.source, e.chosen_item_id, e.matched) for e in examples] == [
            ("client", items[0], False),
            ("client", items[1], True),
        ]
        report = learning.learn_pending(session)
        session.commit()
        assert report.imitation_rounds == 2
        assert apprentice.match_report(session).positions == 2


def test_the_same_choice_again_is_accepted_once_and_a_different_one_conflicts(
    client: FlaskClient,
    auth_headers: dict[str, str],
    session_factory: sessionmaker[Session],
    apprentice_event: dict[str, Any],
) -> None:
    event_id = apprentice_event["event_id"]
    items = _own_choice(client, auth_headers, apprentice_event)
    assert (
        client.post(choice_url(event_id), json={"items": items}, headers=auth_headers).status_code
        == 202
    )
    before = snapshot(session_factory)

    again = client.post(choice_url(event_id), json={"items": items}, headers=auth_headers)
    other = client.post(choice_url(event_id), json={"items": items[:1]}, headers=auth_headers)

    assert again.status_code == 202 and again.get_json()["duplicate"] is True
    assert other.status_code == 409 and "already recorded" in other.get_json()["error"]
    assert snapshot(session_factory) == before


BAD_CHOICES = {
    "empty": ({"items": []}, 400, "items"),
    "unknown-item": ({"items": ["no-such-sku"]}, 400, "unknown item"),
    "item-twice": ({"items": ["@0", "@0"]}, 400, "twice"),
    "too-many": ({"items": ["@0", "@1", "@2", "@3"]}, 400, "1 to 3"),
    "not-a-list": ({"items": "@0"}, 400, "items"),
    "unknown-field": ({"items": ["@0"], "why": "x"}, 400, "why"),
}


@pytest.mark.parametrize(("body", "status", "message"), BAD_CHOICES.values(), ids=list(BAD_CHOICES))
def test_bad_choices_are_refused_and_change_nothing(
    client: FlaskClient,
    auth_headers: dict[str, str],
    session_factory: sessionmaker[Session],
    apprentice_event: dict[str, Any],
    demo_catalog: DemoCatalog,
    body: dict[str, Any],
    status: int,
    message: str,
) -> None:
    ids = demo_catalog.item_ids

    def resolve(value: Any) -> Any:
        if isinstance(value, str) and value.startswith("@"):
            return ids[int(value[1:])]
        return [resolve(v) for v in value] if isinstance(value, list) else value

    before = snapshot(session_factory)
    body = {key: resolve(value) for key, value in body.items()}

    response = client.post(
        choice_url(apprentice_event["event_id"]), json=body, headers=auth_headers
    )

    assert response.status_code == status
    assert message in response.get_json()["error"]
    assert snapshot(session_factory) == before


def test_a_choice_is_refused_outside_apprentice_mode_or_once_a_curator_has_the_task(
    client: FlaskClient,
    auth_headers: dict[str, str],
    session_factory: sessionmaker[Session],
    apprentice_event: dict[str, Any],
    demo_catalog: DemoCatalog,
    curator_account: tuple[str, str],
) -> None:
    items = _own_choice(client, auth_headers, apprentice_event)
    with session_factory() as session:
        curator = accounts.find_curator(session, curator_account[0])
        assert curator is not None and review.claim_next(session, curator.id) is not None
        session.commit()
    activate_config(session_factory, routing_mode="review_before")
    plain = ranked(client, auth_headers, dict(demo_catalog.customers[5]), slate_size=3)
    before = snapshot(session_factory)

    held = client.post(
        choice_url(apprentice_event["event_id"]), json={"items": items}, headers=auth_headers
    )
    wrong_mode = client.post(
        choice_url(plain["event_id"]), json={"items": items[:1]}, headers=auth_headers
    )
    unknown = client.post(choice_url("no-such-event"), json={"items": items}, headers=auth_headers)

    assert held.status_code == 409 and "curator is reviewing" in held.get_json()["error"]
    assert wrong_mode.status_code == 409 and "apprentice" in wrong_mode.get_json()["error"]
    assert unknown.status_code == 404
    assert snapshot(session_factory) == before


def test_a_choice_once_a_curator_chose_is_refused_while_the_second_opinion_waits(
    client: FlaskClient,
    auth_headers: dict[str, str],
    session_factory: sessionmaker[Session],
    demo_catalog: DemoCatalog,
    curator_account: tuple[str, str],
) -> None:
    activate_config(session_factory, routing_mode="apprentice", double_review_share=1.0)
    decision = ranked(client, auth_headers, dict(demo_catalog.customers[4]), slate_size=3)
    with session_factory() as session:
        curator = accounts.find_curator(session, curator_account[0])
        assert curator is not None
        task = review.claim_next(session, curator.id)
        assert task is not None
        keep = [review.ItemVerdict(p.position, "keep") for p in task.decision.proposed]
        review.submit_review(session, task.id, curator.id, task.lease_token or "", keep, 5.0)
        session.commit()
    url = event_url(decision["event_id"])
    assert client.get(url, headers=auth_headers).get_json()["second_review"]["status"] == "open"
    before = snapshot(session_factory)

    response = client.post(
        choice_url(decision["event_id"]),
        json={"items": [item["item_id"] for item in decision["slate"]]},
        headers=auth_headers,
    )

    assert response.status_code == 409
    assert "curator already chose" in response.get_json()["error"]
    assert snapshot(session_factory) == before  # the second opinion still waits for a colleague
