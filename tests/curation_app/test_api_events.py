"""GET /api/v1/events/<id>: the status lifecycle, curator actions, final slate and outcomes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bandit.db.models import CatalogItem
from bandit.services import accounts, review
from bandit.services.review import ItemVerdict, overflow
from bandit.services.review.undo import undo_submit
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
        session.commit()

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


@dataclass
class _Desk:
    """Two curators working one event's review task, each step at a chosen time."""

    sessions: sessionmaker[Session]
    curators: dict[str, int]
    positions: int
    start: datetime
    leases: dict[str, str] = field(default_factory=dict)
    task_id: int = 0

    def at(self, seconds: float) -> datetime:
        return self.start + timedelta(seconds=seconds)

    def claim(self, who: str, seconds: float) -> None:
        with self.sessions() as session:
            task = review.claim_next(session, self.curators[who], self.at(seconds))
            session.commit()
            assert task is not None
            self.task_id, self.leases[who] = task.id, task.lease_token or ""

    def release(self, who: str, seconds: float) -> None:
        with self.sessions() as session:
            review.release(session, self.task_id, self.curators[who], self.at(seconds))
            session.commit()

    def submit(self, who: str, seconds: float) -> None:
        keep = [ItemVerdict(p, "keep") for p in range(self.positions)]
        with self.sessions() as session:
            lease = self.leases[who]
            when = self.at(seconds)
            assert review.submit_review(
                session, self.task_id, self.curators[who], lease, keep, 20.0, when
            )
            session.commit()

    def undo(self, who: str, seconds: float) -> None:
        with self.sessions() as session:
            task = undo_submit(session, self.task_id, self.curators[who], self.at(seconds))
            session.commit()
            self.leases[who] = task.lease_token or ""

    def upkeep(self, who: str, seconds: float) -> None:
        with self.sessions() as session:
            overflow.upkeep(session, self.at(seconds))
            session.commit()


# The review SLA (4 h) has passed by then, and every lease has run out.
PAST_SLA = 5 * 3600.0

# What the curators (and the queue's upkeep) do, in seconds after the first claim, and the
# life-cycle the client is then shown: each step with its time in seconds after the first
# claim, or None for a time the rank set (the creation; a review-after slate's delivery).
LIFECYCLE_PATHS: dict[str, tuple[list[tuple[str, str, float]], list[tuple[str, float | None]]]] = {
    "claim_and_submit": (
        [("claim", "a", 0), ("submit", "a", 30)],
        [("created", None), ("in_review", 0), ("delivered", 30)],
    ),
    "release_and_reclaim": (
        [("claim", "a", 0), ("release", "a", 10), ("claim", "b", 20), ("submit", "b", 50)],
        [("created", None), ("in_review", 0), ("delivered", 50)],
    ),
    "undo_and_resubmit": (
        [("claim", "a", 0), ("submit", "a", 30), ("undo", "a", 60), ("submit", "a", 90)],
        [("created", None), ("in_review", 0), ("delivered", 30), ("reinstated", 90)],
    ),
    "lease_expiry_and_requeue": (
        [("claim", "a", 0), ("upkeep", "a", 700), ("claim", "b", 710), ("submit", "b", 740)],
        [("created", None), ("in_review", 0), ("delivered", 740)],
    ),
    "overflow_delivery": (
        [("claim", "a", 0), ("upkeep", "a", PAST_SLA)],
        [("created", None), ("in_review", 0), ("delivered", PAST_SLA)],
    ),
    "undo_then_overflow": (
        [("claim", "a", 0), ("submit", "a", 30), ("undo", "a", 60), ("upkeep", "a", PAST_SLA)],
        [("created", None), ("in_review", 0), ("delivered", 30)],
    ),
}


@pytest.mark.parametrize("path", list(LIFECYCLE_PATHS))
def test_the_lifecycle_shows_when_the_review_first_started_in_time_order(
    path: str,
    client: FlaskClient,
    auth_headers: dict[str, str],
    session_factory: sessionmaker[Session],
    context: dict[str, Any],
    curator_id: int,
) -> None:
    activate_config(session_factory, routing_mode="review_before")
    decision = ranked(client, auth_headers, context, slate_size=3)
    with session_factory() as session:
        colleague = accounts.add_curator(session, "colleague", "long-enough-pw").id
        session.commit()
    created = datetime.fromisoformat(
        _event(client, auth_headers, decision["event_id"])["created_at"]
    )
    desk = _Desk(
        session_factory, {"a": curator_id, "b": colleague}, 3, created + timedelta(seconds=1)
    )
    actions, expected = LIFECYCLE_PATHS[path]
    for action, who, seconds in actions:
        getattr(desk, action)(who, seconds)

    lifecycle = _event(client, auth_headers, decision["event_id"])["lifecycle"]

    assert [step["status"] for step in lifecycle] == [status for status, _ in expected]
    times = [datetime.fromisoformat(step["at"]) for step in lifecycle]
    assert times == sorted(times)
    assert times[0] == created
    assert [times[i] for i, (_, at) in enumerate(expected) if at is not None] == [
        desk.at(at) for _, at in expected if at is not None
    ]


def test_a_review_after_check_is_no_in_review_step_of_a_slate_already_delivered(
    client: FlaskClient,
    auth_headers: dict[str, str],
    session_factory: sessionmaker[Session],
    context: dict[str, Any],
    curator_id: int,
) -> None:
    activate_config(session_factory, **DELIVER_AT_ONCE)
    decision = ranked(client, auth_headers, context, slate_size=3)
    delivered = _event(client, auth_headers, decision["event_id"])
    start = datetime.fromisoformat(delivered["delivered_at"]) + timedelta(seconds=1)
    desk = _Desk(session_factory, {"a": curator_id}, 3, start)
    desk.claim("a", 0)
    desk.submit("a", 30)

    lifecycle = _event(client, auth_headers, decision["event_id"])["lifecycle"]

    # The customer had the slate before the curator opened it: the check is its own step.
    assert lifecycle == [
        {"status": "created", "at": delivered["created_at"]},
        {"status": "delivered", "at": delivered["delivered_at"]},
        {"status": "reinstated", "at": desk.at(30).isoformat()},
    ]


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
