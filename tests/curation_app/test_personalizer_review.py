"""Personalizer events a curator changed before delivery: what the client is told it got, and
which item each reward credits (the delivered one, the customer's judgement of what it saw)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bandit.db.models import CatalogItem, Decision, Outcome
from bandit.services import accounts, learning, review, rounds
from bandit.services.review import ItemVerdict
from tests.api_support import activate_config, snapshot
from tests.conftest import DemoCatalog
from tests.curation_app.test_personalizer import ACTIONS, BASE, CONTEXT, SLOTS

_KEY = "Ocp-Apim-Subscription-Key"
Verdicts = Callable[[Decision, str], list[ItemVerdict]]


def swap_first(decision: Decision, spare: str) -> list[ItemVerdict]:
    return [
        ItemVerdict(p.position, "swap", spare, "better") if p.position == 0 else _keep(p.position)
        for p in decision.proposed
    ]


def keep_all(decision: Decision, spare: str) -> list[ItemVerdict]:
    return [_keep(p.position) for p in decision.proposed]


def swap_first_remove_second(decision: Decision, spare: str) -> list[ItemVerdict]:
    verdicts = swap_first(decision, spare)
    verdicts[1] = ItemVerdict(1, "remove", None, "off-topic")
    return verdicts


def _keep(position: int) -> ItemVerdict:
    return ItemVerdict(position, "keep")


@pytest.fixture
def key(api_token: str) -> dict[str, str]:
    return {"Ocp-Apim-Subscription-Key": api_token}


@pytest.fixture
def review_before(session_factory: sessionmaker[Session]) -> None:
    """Every slate waits for a curator, who has an hour before the SLA overflows it."""
    activate_config(session_factory, routing_mode="review_before", review_sla_seconds=3600)


@pytest.fixture
def spare(
    session_factory: sessionmaker[Session], demo_catalog: DemoCatalog, review_before: None
) -> str:
    """A catalog item a curator may swap in (Personalizer's inline actions are inactive)."""
    with session_factory() as session:
        return (
            session.scalars(
                select(CatalogItem.item_id)
                .where(CatalogItem.active.is_(True), CatalogItem.stock > 0)
                .order_by(CatalogItem.item_id)
            ).first()
            or ""
        )


def _rank(client: FlaskClient, key: dict[str, str], event_id: str, **body: Any) -> Any:
    if body.pop("multi", False):
        url, body = f"{BASE}/multislot/rank", {"slots": SLOTS, **body}
    else:
        url = f"{BASE}/rank"
    response = client.post(
        url,
        json={"contextFeatures": CONTEXT, "actions": ACTIONS, "eventId": event_id, **body},
        headers=key,
    )
    assert response.status_code in (200, 201), response.get_json()
    return response.get_json()


def _review(sessions: sessionmaker[Session], spare: str, verdicts_for: Verdicts) -> list[str]:
    """A curator reviews the one waiting slate; returns the policy's proposed items."""
    with sessions() as session:
        curator = accounts.add_curator(session, "pers-reviewer", "long-enough-pw")
        task = review.claim_next(session, curator.id)
        assert task is not None
        proposed = [p.item_id for p in sorted(task.decision.proposed, key=lambda p: p.position)]
        verdicts = verdicts_for(task.decision, spare)
        review.submit_review(session, task.id, curator.id, task.lease_token or "", verdicts, 3.0)
        session.commit()
    return proposed


def _outcomes(sessions: sessionmaker[Session]) -> dict[str, float]:
    with sessions() as session:
        return {o.item_key: o.value for o in session.scalars(select(Outcome))}


def _rounds(sessions: sessionmaker[Session]) -> list[tuple[int, str, float, str]]:
    with sessions() as session:
        return [
            (r.position, r.chosen_item_id, r.reward, r.reward_source)
            for r in rounds.logged_rounds(session)
        ]


def _slot_reward(client: FlaskClient, key: dict[str, str], event_id: str, **values: float) -> Any:
    names = {"main": "Main Article", "side": "Side Bar"}
    body = {"reward": [{"slotId": names.get(k, k), "value": v} for k, v in values.items()]}
    return client.post(f"{BASE}/multislot/events/{event_id}/reward", json=body, headers=key)


def test_multislot_reward_credits_the_item_delivered_in_each_slot(
    client: FlaskClient, key: dict[str, str], spare: str, session_factory: sessionmaker[Session]
) -> None:
    first = _rank(client, key, "ms-swap", multi=True)
    proposed = _review(session_factory, spare, swap_first)
    assert [s["rewardActionId"] for s in first["slots"]] == proposed
    # Asked again (Personalizer's way to read an event), the answer says what went out.
    again = _rank(client, key, "ms-swap", multi=True)
    assert again["status"] == "delivered"
    assert [s["rewardActionId"] for s in again["slots"]] == [spare, proposed[1]]

    response = _slot_reward(client, key, "ms-swap", main=1.0, side=0.5)
    assert response.status_code == 204, response.get_json()
    assert _outcomes(session_factory) == {spare: 1.0, proposed[1]: 0.5}
    # The policy's swapped-out item never reached the customer: the curator proxy stands for
    # it. The kept item's customer reward is its round. The swap-in's reward is stored, never
    # a bandit round (docs/learning.md: it is no policy draw).
    assert _rounds(session_factory) == [
        (0, proposed[0], 0.0, "curator_proxy"),
        (1, proposed[1], 0.5, "customer"),
    ]
    event = client.get(
        "/api/v1/events/ms-swap", headers={"Authorization": f"Bearer {key[_KEY]}"}
    ).get_json()
    assert {o["item_id"]: o["value"] for o in event["outcomes"]} == {spare: 1.0, proposed[1]: 0.5}


@pytest.mark.parametrize("verdicts_for", [keep_all, swap_first], ids=["kept", "swapped"])
def test_single_slot_reward_credits_the_delivered_item(
    verdicts_for: Verdicts,
    client: FlaskClient,
    key: dict[str, str],
    spare: str,
    session_factory: sessionmaker[Session],
) -> None:
    _rank(client, key, "one")
    (proposed,) = _review(session_factory, spare, verdicts_for)
    delivered = proposed if verdicts_for is keep_all else spare
    again = _rank(client, key, "one")
    assert again["rewardActionId"] == delivered
    # The ranking stays the policy's probabilities over the client's actions.
    assert again["ranking"][0]["id"] == proposed

    response = client.post(f"{BASE}/events/one/reward", json={"value": 1.0}, headers=key)
    assert response.status_code == 204
    assert _outcomes(session_factory) == {"": 1.0}  # the event's reward: its one delivered item
    with session_factory() as session:
        report = learning.learn_pending(session)
        session.commit()
    if verdicts_for is keep_all:
        assert _rounds(session_factory) == [(0, proposed, 1.0, "customer")]
        assert report.rounds_learned == 1
    else:
        # The customer's 1.0 was for the curator's item: stored, not a bandit round.
        assert _rounds(session_factory) == [(0, proposed, 0.0, "curator_proxy")]


@pytest.mark.parametrize("multi", [False, True], ids=["single", "multislot"])
def test_a_reward_before_delivery_is_refused_and_stores_nothing(
    multi: bool,
    client: FlaskClient,
    key: dict[str, str],
    spare: str,
    session_factory: sessionmaker[Session],
) -> None:
    _rank(client, key, "early", multi=multi)

    def send() -> Any:
        if multi:
            return _slot_reward(client, key, "early", main=1.0)
        return client.post(f"{BASE}/events/early/reward", json={"value": 1.0}, headers=key)

    before = snapshot(session_factory)
    early = send()
    assert early.status_code == 409
    assert early.get_json()["error"]["code"] == "Conflict"
    assert "not delivered" in early.get_json()["error"]["message"]
    assert snapshot(session_factory) == before
    _review(session_factory, spare, swap_first)
    assert send().status_code == 204
    credited = spare if multi else ""
    assert _outcomes(session_factory) == {credited: 1.0}


@pytest.mark.parametrize(
    ("values", "status", "fragment"),
    [
        ({"main": 1.0, "nope": 1.0}, 400, "unknown slot"),
        ({"main": 1.0, "side": 1.0}, 400, "Side Bar"),
        ({"side": 1.0}, 400, "empty"),
    ],
)
def test_a_refused_slot_reward_stores_nothing(
    values: dict[str, float],
    status: int,
    fragment: str,
    client: FlaskClient,
    key: dict[str, str],
    spare: str,
    session_factory: sessionmaker[Session],
) -> None:
    _rank(client, key, "refused", multi=True)
    _review(session_factory, spare, swap_first_remove_second)
    again = _rank(client, key, "refused", multi=True)
    assert [s["rewardActionId"] for s in again["slots"]] == [spare, None]
    before = snapshot(session_factory)
    response = _slot_reward(client, key, "refused", **values)
    assert response.status_code == status
    assert fragment in response.get_json()["error"]["message"]
    assert snapshot(session_factory) == before


def test_slot_rewards_are_idempotent_on_the_delivered_item(
    client: FlaskClient, key: dict[str, str], spare: str, session_factory: sessionmaker[Session]
) -> None:
    _rank(client, key, "retry", multi=True)
    _review(session_factory, spare, swap_first)
    assert _slot_reward(client, key, "retry", main=0.25).status_code == 204
    after_first = snapshot(session_factory)
    assert _slot_reward(client, key, "retry", main=0.25).status_code == 204
    assert snapshot(session_factory) == after_first
    conflict = _slot_reward(client, key, "retry", main=0.75)
    assert conflict.status_code == 409
    assert snapshot(session_factory) == after_first
    assert _outcomes(session_factory) == {spare: 0.25}


def test_a_deferred_event_changed_by_a_curator_is_rewarded_on_its_delivered_item(
    client: FlaskClient, key: dict[str, str], spare: str, session_factory: sessionmaker[Session]
) -> None:
    _rank(client, key, "deferred", multi=True, deferActivation=True)
    proposed = _review(session_factory, spare, swap_first)
    again = _rank(client, key, "deferred", multi=True)
    assert [s["rewardActionId"] for s in again["slots"]] == [spare, proposed[1]]
    before = snapshot(session_factory)
    early = _slot_reward(client, key, "deferred", main=1.0)
    assert early.status_code == 409 and "activate" in early.get_json()["error"]["message"]
    assert snapshot(session_factory) == before
    assert client.post(f"{BASE}/multislot/events/deferred/activate", headers=key).status_code == 204
    assert _slot_reward(client, key, "deferred", main=1.0).status_code == 204
    assert _outcomes(session_factory) == {spare: 1.0}
