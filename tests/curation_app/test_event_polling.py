"""Cheap polling of GET /api/v1/events/<id>: no candidates by default, ETag/304, long-poll,
review_due_at and Retry-After, and the rank fallback within the policy config's limits."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bandit.db.models import EventChange, ReviewTask, utcnow
from bandit.services import accounts, review
from bandit.services.review import ItemVerdict, overflow
from curation_app.event_schemas import EventDocument
from tests.api_support import activate_config, event_url, rank, ranked, snapshot
from tests.conftest import DemoCatalog

HOLD_FOR_REVIEW: dict[str, Any] = {"routing_mode": "review_before"}


@pytest.fixture
def context(demo_catalog: DemoCatalog) -> dict[str, Any]:
    return dict(demo_catalog.customers[3])


@pytest.fixture
def pending(
    client: FlaskClient,
    auth_headers: dict[str, str],
    session_factory: sessionmaker[Session],
    context: dict[str, Any],
) -> dict[str, Any]:
    """A review-before decision waiting for a curator."""
    activate_config(session_factory, **HOLD_FOR_REVIEW)
    decision = ranked(client, auth_headers, context, slate_size=3)
    assert decision["status"] == "pending_review"
    return decision


def _claim(sessions: sessionmaker[Session]) -> tuple[int, int, str]:
    with sessions() as session:
        curator = accounts.add_curator(session, "poll-curator", "long-enough-pw")
        session.commit()
        task = review.claim_next(session, curator.id)
        session.commit()
        assert task is not None
        return task.id, curator.id, task.lease_token or ""


def _submit_later(sessions: sessionmaker[Session], claim: tuple[int, int, str], delay: float):
    def submit() -> None:
        time.sleep(delay)
        task_id, curator_id, lease = claim
        with sessions() as session:
            task = session.get(ReviewTask, task_id)
            assert task is not None
            positions = [p.position for p in task.decision.proposed]
            verdicts = [ItemVerdict(p, "keep") for p in positions]
            review.submit_review(session, task_id, curator_id, lease, verdicts, 3.0)
            session.commit()

    thread = threading.Thread(target=submit, daemon=True)
    thread.start()
    return thread


def test_the_event_leaves_out_candidates_unless_asked(
    client: FlaskClient, auth_headers: dict[str, str], pending: dict[str, Any]
) -> None:
    lean = client.get(event_url(pending["event_id"]), headers=auth_headers)
    full = client.get(event_url(pending["event_id"]) + "?include=candidates", headers=auth_headers)
    assert lean.status_code == full.status_code == 200
    assert "candidates" not in lean.get_json() and len(full.get_json()["candidates"]) >= 3
    assert len(lean.get_data()) < len(full.get_data()) / 2
    assert lean.headers["ETag"] != full.headers["ETag"]


@pytest.mark.parametrize(
    ("query", "field"),
    [("include=everything", "include"), ("wait=31", "wait"), ("wait=-1", "wait"),
     ("wait=soon", "wait"), ("wait=nan", "wait")],
)  # fmt: skip
def test_bad_polling_parameters_name_the_field(
    client: FlaskClient, auth_headers: dict[str, str], pending: dict[str, Any], query: str,
    field: str,
) -> None:  # fmt: skip
    response = client.get(f"{event_url(pending['event_id'])}?{query}", headers=auth_headers)
    assert response.status_code == 400
    assert response.get_json()["error"].startswith(f"{field}:")


def test_an_unchanged_event_answers_304_and_a_changed_one_a_new_etag(
    client: FlaskClient,
    auth_headers: dict[str, str],
    session_factory: sessionmaker[Session],
    pending: dict[str, Any],
) -> None:
    url = event_url(pending["event_id"])
    first = client.get(url, headers=auth_headers)
    etag = first.headers["ETag"]
    assert first.headers["Cache-Control"] == "private, no-cache"
    again = client.get(url, headers={**auth_headers, "If-None-Match": etag})
    assert again.status_code == 304 and again.get_data() == b""
    assert again.headers["ETag"] == etag

    _submit_later(session_factory, _claim(session_factory), 0.0).join(10)
    changed = client.get(url, headers={**auth_headers, "If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag
    assert changed.get_json()["status"] == "delivered"


def test_a_long_poll_returns_as_soon_as_the_review_delivers_the_slate(
    client: FlaskClient,
    auth_headers: dict[str, str],
    session_factory: sessionmaker[Session],
    pending: dict[str, Any],
) -> None:
    url = event_url(pending["event_id"])
    claim = _claim(session_factory)
    etag = client.get(url, headers=auth_headers).headers["ETag"]  # in review now
    thread = _submit_later(session_factory, claim, 0.8)
    started = time.monotonic()
    response = client.get(f"{url}?wait=20", headers={**auth_headers, "If-None-Match": etag})
    elapsed = time.monotonic() - started
    thread.join(10)
    assert response.status_code == 200
    assert response.get_json()["status"] == "delivered"
    assert 0.5 < elapsed < 15  # it waited for the change, and came back well before 20 s


def test_a_long_poll_without_a_change_ends_with_304_after_the_wait(
    client: FlaskClient, auth_headers: dict[str, str], pending: dict[str, Any]
) -> None:
    url = event_url(pending["event_id"])
    etag = client.get(url, headers=auth_headers).headers["ETag"]
    started = time.monotonic()
    response = client.get(f"{url}?wait=0.6", headers={**auth_headers, "If-None-Match": etag})
    assert response.status_code == 304 and time.monotonic() - started >= 0.6


def test_a_pending_event_says_when_its_review_is_due(
    client: FlaskClient,
    auth_headers: dict[str, str],
    session_factory: sessionmaker[Session],
    pending: dict[str, Any],
) -> None:
    response = client.get(event_url(pending["event_id"]), headers=auth_headers)
    document = response.get_json()
    with session_factory() as session:
        due_at = session.scalars(select(ReviewTask.due_at)).one()
    assert due_at is not None
    assert document["review_due_at"] == due_at.isoformat()
    assert document["delivered_slate"] is None and document["current_slate"] is None
    assert document["lifecycle"] == [{"status": "created", "at": document["created_at"]}]
    assert 1 <= int(response.headers["Retry-After"]) <= 60


def test_a_fallback_delivers_the_policy_slate_unreviewed_when_no_curator_took_it(
    client: FlaskClient,
    auth_headers: dict[str, str],
    session_factory: sessionmaker[Session],
    context: dict[str, Any],
) -> None:
    activate_config(session_factory, **HOLD_FOR_REVIEW, fallback_min_seconds=30)
    fallback = {"deliver_unreviewed_after_seconds": 120}
    decision = ranked(client, auth_headers, context, slate_size=3, fallback=fallback)
    url = event_url(decision["event_id"])
    document = client.get(url, headers=auth_headers).get_json()
    assert document["status"] == "pending_review"
    assert document["review_due_at"] == document["fallback_at"]  # sooner than the 4 h SLA
    with session_factory() as session:
        task = session.scalars(select(ReviewTask)).one()
        assert task.fallback_at is not None
        overflow.upkeep(session, task.fallback_at - timedelta(seconds=1))
        session.commit()
    assert client.get(url, headers=auth_headers).get_json()["status"] == "pending_review"
    with session_factory() as session:
        report = overflow.upkeep(session, utcnow() + timedelta(seconds=121))
        session.commit()
        assert report.fallbacks_delivered == 1
        kinds = session.scalars(select(EventChange.kind)).all()
    after = client.get(url, headers=auth_headers).get_json()
    assert after["status"] == "delivered" and after["review"]["overflow"] == "client_fallback"
    assert [e["item_id"] for e in after["delivered_slate"]["items"]] == [
        s["item_id"] for s in decision["slate"]
    ]
    assert kinds == ["delivered"]


@pytest.mark.parametrize(
    ("settings", "fallback", "message"),
    [
        ({"fallback_min_seconds": 60}, {"deliver_unreviewed_after_seconds": 10}, "between 60"),
        ({"fallback_max_seconds": 600}, {"deliver_unreviewed_after_seconds": 601}, "and 600"),
        ({"fallback_max_seconds": 0}, {"deliver_unreviewed_after_seconds": 60}, "allows no"),
        ({}, {"deliver_unreviewed_after_seconds": "60"}, "valid integer"),
        ({}, {"after": 60}, "unknown field"),
    ],
)
def test_a_fallback_outside_the_config_limits_is_refused_and_stores_nothing(
    client: FlaskClient,
    auth_headers: dict[str, str],
    session_factory: sessionmaker[Session],
    context: dict[str, Any],
    settings: dict[str, Any],
    fallback: dict[str, Any],
    message: str,
) -> None:
    activate_config(session_factory, **HOLD_FOR_REVIEW, **settings)
    before = snapshot(session_factory)
    response = rank(client, auth_headers, context, fallback=fallback)
    assert response.status_code == 400
    assert (
        response.get_json()["error"].startswith("fallback.")
        and message in response.get_json()["error"]
    )
    assert snapshot(session_factory) == before


def test_the_openapi_document_describes_polling_fallback_and_webhooks(
    client: FlaskClient,
    auth_headers: dict[str, str],
    session_factory: sessionmaker[Session],
    pending: dict[str, Any],
) -> None:
    document = client.get("/api/v1/openapi.json").get_json()
    operation = document["paths"]["/api/v1/events/{event_id}"]["get"]
    assert {p["name"] for p in operation["parameters"]} >= {"include", "wait", "If-None-Match"}
    assert {"200", "304", "400"} <= set(operation["responses"])
    assert {"ETag", "Retry-After"} <= set(operation["responses"]["200"]["headers"])
    schemas = document["components"]["schemas"]
    assert "fallback" in schemas["RankBody"]["properties"]
    assert {"delivered_slate", "corrections", "current_slate", "lifecycle", "review_due_at"} <= (
        set(schemas["EventDocument"]["properties"])
    )
    hook = document["webhooks"]["eventChange"]["post"]
    assert {p["name"] for p in hook["parameters"]} == {
        "Hitl-Delivery-Id", "Hitl-Event-Type", "Hitl-Timestamp", "Hitl-Signature",
    }  # fmt: skip
    # Real answers fit the documented shape, pending and delivered.
    url = event_url(pending["event_id"])
    EventDocument.model_validate(client.get(url, headers=auth_headers).get_json())
    _submit_later(session_factory, _claim(session_factory), 0.0).join(10)
    delivered = client.get(url + "?include=candidates", headers=auth_headers).get_json()
    assert EventDocument.model_validate(delivered).delivered_slate is not None
