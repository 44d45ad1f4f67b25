"""The Personalizer-compatible API: the quickstart's calls, their shapes, and learning them."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bandit.db.models import CatalogItem, Decision, Outcome, ReviewTask, utcnow
from bandit.services import accounts, learning, model_store, review, rewards
from bandit.services.review import ItemVerdict
from bandit.services.review.overflow import upkeep
from tests.api_support import DELIVER_AT_ONCE, activate_config, snapshot

BASE = "/personalizer/v1.0"
# The actions and context of Personalizer's quickstart (food for the time of day and taste).
ACTIONS: list[dict[str, Any]] = [
    {
        "id": "pasta",
        "features": [{"taste": "salty", "spiceLevel": "medium"}, {"nutritionLevel": 5}],
    },
    {"id": "ice cream", "features": [{"taste": "sweet", "spiceLevel": "none"}]},
    {"id": "juice", "features": [{"taste": "sweet", "spiceLevel": "none"}, {"drink": True}]},
    {"id": "salad", "features": [{"taste": "salty", "spiceLevel": "low"}, {"nutritionLevel": 8}]},
]
CONTEXT = [{"timeOfDay": "Morning"}, {"user": {"profileType": "AnonymousUser", "taste": "sweet"}}]
SLOTS = [
    {"id": "Main Article", "baselineAction": "pasta", "positionFeatures": [{"size": "large"}]},
    {"id": "Side Bar", "baselineAction": "salad", "positionFeatures": [{"size": "small"}]},
]


@pytest.fixture
def key(api_token: str) -> dict[str, str]:
    return {"Ocp-Apim-Subscription-Key": api_token}


@pytest.fixture
def at_once(session_factory: sessionmaker[Session]) -> None:
    activate_config(session_factory, **DELIVER_AT_ONCE)


def _rank(client: FlaskClient, key: dict[str, str], **body: Any) -> Any:
    response = client.post(
        f"{BASE}/rank", json={"contextFeatures": CONTEXT, "actions": ACTIONS, **body}, headers=key
    )
    assert response.status_code in (200, 201), response.get_json()
    return response.get_json()


def test_rank_answers_personalizer_shape_over_inline_actions(
    client: FlaskClient, key: dict[str, str], at_once: None
) -> None:
    document = _rank(client, key, excludedActions=["juice"], eventId="quickstart-1")
    assert document["eventId"] == "quickstart-1"
    ranking = document["ranking"]
    assert [r["id"] for r in ranking][-1] == "juice"  # excluded: last, probability 0
    assert ranking[-1]["probability"] == 0.0
    assert sorted(r["id"] for r in ranking) == sorted(a["id"] for a in ACTIONS)
    assert document["rewardActionId"] == ranking[0]["id"]
    assert sum(r["probability"] for r in ranking) == pytest.approx(1.0)
    assert all(0.0 <= r["probability"] <= 1.0 for r in ranking)
    # The human route is reported too (an extension Personalizer clients ignore).
    assert document["route"] == "review_after"


def test_inline_actions_are_logged_with_the_same_probabilities_and_stay_out_of_the_catalog(
    client: FlaskClient,
    key: dict[str, str],
    at_once: None,
    session_factory: sessionmaker[Session],
) -> None:
    document = _rank(client, key, eventId="logged-1")
    with session_factory() as session:
        decision = session.scalars(select(Decision).where(Decision.event_id == "logged-1")).one()
        stored = {c["item_id"]: c["pmf"] for c in decision.candidates}
        assert {r["id"]: r["probability"] for r in document["ranking"]} == pytest.approx(stored)
        (chosen,) = decision.proposed
        assert chosen.item_id == document["rewardActionId"]
        assert chosen.candidate_probability == 1.0
        assert chosen.probability == pytest.approx(stored[chosen.item_id])
        items = {i.item_id: i for i in session.scalars(select(CatalogItem))}
        assert items["pasta"].active is False
        assert items["pasta"].attributes == {
            "taste": "salty",
            "spiceLevel": "medium",
            "nutritionLevel": 5,
        }


def test_reward_is_learned_like_any_reward(
    client: FlaskClient,
    key: dict[str, str],
    at_once: None,
    session_factory: sessionmaker[Session],
) -> None:
    document = _rank(client, key, eventId="reward-1")
    response = client.post(f"{BASE}/events/reward-1/reward", json={"value": 1.0}, headers=key)
    assert response.status_code == 204
    with session_factory() as session:
        before = model_store.latest_version_number(session)
        report = learning.learn_pending(session)
        session.commit()
        assert report.rewards == 1 and report.rounds_learned == 1
        assert model_store.latest_version_number(session) == before + 1
        outcome = session.scalars(select(Outcome)).one()
        assert outcome.fed_to_policy is True
    assert document["rewardActionId"] in {a["id"] for a in ACTIONS}


def test_deferred_event_is_rewarded_only_after_activation(
    client: FlaskClient,
    key: dict[str, str],
    at_once: None,
    session_factory: sessionmaker[Session],
) -> None:
    _rank(client, key, eventId="deferred-1", deferActivation=True)
    with session_factory() as session:
        decision = session.scalars(select(Decision).where(Decision.event_id == "deferred-1")).one()
        assert decision.reward_due_at is None  # no default reward for a slate never shown
    early = client.post(f"{BASE}/events/deferred-1/reward", json={"value": 1.0}, headers=key)
    assert early.status_code == 409
    assert early.get_json()["error"]["code"] == "Conflict"
    assert "activate" in early.get_json()["error"]["message"]
    assert client.post(f"{BASE}/events/deferred-1/activate", headers=key).status_code == 204
    assert client.post(f"{BASE}/events/deferred-1/activate", headers=key).status_code == 204
    with session_factory() as session:
        decision = session.scalars(select(Decision).where(Decision.event_id == "deferred-1")).one()
        assert decision.reward_due_at is not None
    late = client.post(f"{BASE}/events/deferred-1/reward", json={"value": 0.5}, headers=key)
    assert late.status_code == 204
    with session_factory() as session:
        report = learning.learn_pending(session)
        session.commit()
    assert report.rewards == 1 and report.rounds_learned == 1


def test_multislot_rank_and_reward(
    client: FlaskClient,
    key: dict[str, str],
    at_once: None,
    session_factory: sessionmaker[Session],
) -> None:
    response = client.post(
        f"{BASE}/multislot/rank",
        json={
            "contextFeatures": CONTEXT,
            "actions": ACTIONS,
            "slots": SLOTS,
            "eventId": "multi-1",
            "deferActivation": False,
        },
        headers=key,
    )
    assert response.status_code == 201, response.get_json()
    document = response.get_json()
    assert document["eventId"] == "multi-1"
    assert [s["id"] for s in document["slots"]] == ["Main Article", "Side Bar"]
    chosen = [s["rewardActionId"] for s in document["slots"]]
    assert len(set(chosen)) == 2 and set(chosen) <= {a["id"] for a in ACTIONS}
    reward = client.post(
        f"{BASE}/multislot/events/multi-1/reward",
        json={
            "reward": [{"slotId": "Main Article", "value": 1.0}, {"slotId": "Side Bar", "value": 0}]
        },
        headers=key,
    )
    assert reward.status_code == 204, reward.get_json()
    with session_factory() as session:
        keys = sorted(o.item_key for o in session.scalars(select(Outcome)))
        assert keys == sorted(chosen)  # one reward per slot's action
        report = learning.learn_pending(session)
        session.commit()
    assert report.rewards == 2 and report.rounds_learned == 2


def test_human_route_applies_to_inline_actions(
    client: FlaskClient, key: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    activate_config(session_factory, routing_mode="review_before")
    document = _rank(client, key, eventId="reviewed-1")
    assert document["route"] == "review_before" and document["status"] == "pending_review"
    with session_factory() as session:
        tasks = session.scalar(select(func.count()).select_from(ReviewTask))
    assert tasks == 1
    # Not delivered yet: its reward waits for the curator.
    early = client.post(f"{BASE}/events/reviewed-1/reward", json={"value": 1.0}, headers=key)
    assert early.status_code == 409


def test_repeated_event_id_returns_the_stored_ranking(
    client: FlaskClient, key: dict[str, str], at_once: None
) -> None:
    first = _rank(client, key, eventId="again-1")
    second = client.post(
        f"{BASE}/rank",
        json={"contextFeatures": CONTEXT, "actions": ACTIONS, "eventId": "again-1"},
        headers=key,
    )
    assert second.status_code == 200
    assert second.get_json()["ranking"] == first["ranking"]


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"actions": []}, 400, "actions"),
        ({"actions": [{"id": "a"}, {"id": "a"}]}, 400, "given twice"),
        ({"actions": ACTIONS, "excludedActions": ["nope"]}, 400, "excludedActions"),
        ({"actions": ACTIONS, "contextFeatures": [{"bad key!": 1}]}, 400, "contextFeatures"),
        ({"actions": [{"id": "a", "features": [{"x": {"y": [{"z": 1}]}}]}]}, 400, "actions[0]"),
        ({"actions": ACTIONS, "excludedActions": [a["id"] for a in ACTIONS]}, 400, "actions"),
        ({"actions": ACTIONS, "eventId": "a/b"}, 400, "eventId"),
        ({"actions": ACTIONS, "surprise": 1}, 400, "surprise"),
    ],
)
def test_bad_rank_requests_are_refused_with_personalizer_errors(
    client: FlaskClient,
    key: dict[str, str],
    at_once: None,
    session_factory: sessionmaker[Session],
    body: dict[str, Any],
    status: int,
    fragment: str,
) -> None:
    before = snapshot(session_factory)
    response = client.post(f"{BASE}/rank", json=body, headers=key)
    assert response.status_code == status
    error = response.get_json()["error"]
    assert error["code"] == "BadArgument" and fragment in error["message"]
    assert snapshot(session_factory) == before


@pytest.mark.parametrize(
    ("method", "path", "body", "content_type", "status", "code", "fragment"),
    [
        ("POST", f"{BASE}/rank", b"{}", "text/plain", 415, "BadArgument", "Content-Type"),
        ("POST", f"{BASE}/rank", b"x" * 300 * 1024, "application/json", 413, "BadArgument", "KiB"),
        ("GET", f"{BASE}/rank", None, None, 405, "BadArgument", "use OPTIONS, POST"),
        ("POST", f"{BASE}/events/e-1", b"{}", "application/json", 404, "ResourceNotFound", ""),
        ("POST", "/personalizer/v2.0/rank", b"{}", "application/json", 404, "ResourceNotFound", ""),
    ],
)
def test_errors_raised_outside_the_views_keep_personalizer_shape(
    client: FlaskClient,
    key: dict[str, str],
    method: str,
    path: str,
    body: bytes | None,
    content_type: str | None,
    status: int,
    code: str,
    fragment: str,
) -> None:
    response = client.open(path, method=method, data=body, content_type=content_type, headers=key)
    assert response.status_code == status
    error = response.get_json()["error"]
    assert set(error) == {"code", "message"}
    assert error["code"] == code and fragment in error["message"]
    if status == 405:
        assert set(response.headers["Allow"].split(", ")) == {"OPTIONS", "POST"}


def test_an_unexpected_failure_keeps_personalizer_shape(
    client: FlaskClient, key: dict[str, str], at_once: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the disk is on fire")

    monkeypatch.setattr("bandit.services.personalizer.rank_inline", broken)
    response = client.post(f"{BASE}/rank", json={"actions": ACTIONS}, headers=key)
    assert response.status_code == 500
    assert response.get_json() == {
        "error": {"code": "InternalServerError", "message": "internal error"}
    }


def test_errors_elsewhere_keep_the_plain_shape(client: FlaskClient) -> None:
    response = client.get("/api/v1/rank")
    assert response.status_code == 405 and isinstance(response.get_json()["error"], str)


def test_key_is_required(client: FlaskClient) -> None:
    response = client.post(f"{BASE}/rank", json={"actions": ACTIONS})
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "Unauthorized"
    wrong = client.post(
        f"{BASE}/rank", json={"actions": ACTIONS}, headers={"Ocp-Apim-Subscription-Key": "nope"}
    )
    assert wrong.status_code == 401


def test_unknown_event_and_foreign_event(
    client: FlaskClient,
    key: dict[str, str],
    auth_headers: dict[str, str],
    at_once: None,
    demo_catalog: Any,
) -> None:
    missing = client.post(f"{BASE}/events/none/reward", json={"value": 1}, headers=key)
    assert missing.status_code == 404
    assert missing.get_json()["error"]["code"] == "ResourceNotFound"
    v1 = client.post(
        "/api/v1/rank",
        json={"context": dict(demo_catalog.customers[0]), "event_id": "v1-event"},
        headers=auth_headers,
    )
    assert v1.status_code == 201
    foreign = client.post(f"{BASE}/events/v1-event/reward", json={"value": 1}, headers=key)
    assert foreign.status_code == 409


@pytest.mark.parametrize("delivered_by", ["curator", "sla_overflow"])
def test_a_deferred_event_delivered_by_a_review_waits_for_activation(
    delivered_by: str,
    client: FlaskClient,
    key: dict[str, str],
    api_token: str,
    session_factory: sessionmaker[Session],
) -> None:
    activate_config(session_factory, routing_mode="review_before", review_sla_seconds=3600)
    _rank(client, key, eventId="deferred-2", deferActivation=True)
    now = utcnow()
    with session_factory() as session:
        if delivered_by == "curator":
            curator = accounts.add_curator(session, "pers-curator", "long-enough-pw")
            task = review.claim_next(session, curator.id)
            assert task is not None
            verdicts = [ItemVerdict(p.position, "keep") for p in task.decision.proposed]
            review.submit_review(
                session, task.id, curator.id, task.lease_token or "", verdicts, 3.0
            )
        else:
            upkeep(session, now + timedelta(hours=2))
        session.commit()
        # The slate went out, but the client has not shown it: no wait runs, no default is due.
        rewards.assign_default_rewards(session, now + timedelta(days=5))
        session.commit()
        decision = session.scalars(select(Decision).where(Decision.event_id == "deferred-2")).one()
        assert decision.status == "delivered" and decision.reward_due_at is None
        assert session.scalar(select(func.count()).select_from(Outcome)) == 0
    bearer = {"Authorization": f"Bearer {api_token}"}
    early = client.post("/api/v1/events/deferred-2/reward", json={"value": 1.0}, headers=bearer)
    assert early.status_code == 409 and "activate" in early.get_json()["error"]
    assert client.post(f"{BASE}/events/deferred-2/activate", headers=key).status_code == 204
    with session_factory() as session:
        decision = session.scalars(select(Decision).where(Decision.event_id == "deferred-2")).one()
        assert decision.reward_due_at is not None and not decision.awaiting_activation
    late = client.post("/api/v1/events/deferred-2/reward", json={"value": 1.0}, headers=bearer)
    assert late.status_code == 202 and late.get_json()["accepted"]
