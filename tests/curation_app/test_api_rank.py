"""POST /api/v1/rank: the slate, its probabilities and uncertainty, exclusions, idempotency."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bandit.db.models import CatalogItem
from tests.api_support import RANK_URL, rank, ranked, row_count, snapshot
from tests.conftest import DemoCatalog

MEASURES = ("least_confidence", "margin", "ratio", "entropy")


@pytest.fixture
def context(demo_catalog: DemoCatalog) -> dict[str, Any]:
    return dict(demo_catalog.customers[0])


def test_rank_returns_a_slate_with_probabilities_uncertainty_and_version(
    client: FlaskClient, auth_headers: dict[str, str], context: dict[str, Any]
) -> None:
    response = rank(client, auth_headers, context)

    assert response.status_code == 201
    body = response.get_json()
    assert body["event_id"]
    assert len(body["slate"]) == 5  # the default config's slate size
    for item in body["slate"]:
        assert set(item) == {"item_id", "probability", "score", "why"}
        assert 0.0 < item["probability"] <= 1.0
        assert isinstance(item["score"], float)
    assert len({item["item_id"] for item in body["slate"]}) == len(body["slate"])
    assert body["route"] in ("auto", "review_before", "review_after")
    for measure in MEASURES:
        assert 0.0 <= body["uncertainty"][measure] <= 1.0
    assert body["policy_version"] == "default@1"


def test_an_untrained_policy_sends_the_decision_to_review_first(
    client: FlaskClient, auth_headers: dict[str, str], context: dict[str, Any]
) -> None:
    body = ranked(client, auth_headers, context)

    assert body["route"] == "review_before"
    assert body["status"] == "pending_review"


@pytest.mark.parametrize("slate_size", [1, 3, 8])
def test_slate_size_is_respected(
    client: FlaskClient, auth_headers: dict[str, str], context: dict[str, Any], slate_size: int
) -> None:
    body = ranked(client, auth_headers, context, slate_size=slate_size)

    assert len(body["slate"]) == slate_size


def test_excluded_items_are_never_proposed(
    client: FlaskClient,
    auth_headers: dict[str, str],
    session_factory: sessionmaker[Session],
    demo_catalog: DemoCatalog,
    context: dict[str, Any],
) -> None:
    # Excluding all in-stock items but five forces the slate onto exactly those five.
    with session_factory() as session:
        in_stock = list(session.scalars(select(CatalogItem.item_id).where(CatalogItem.stock > 0)))
    allowed = set(in_stock[:5])
    exclude = sorted(set(demo_catalog.item_ids) - allowed)

    for _ in range(3):
        body = ranked(client, auth_headers, context, exclude=exclude, slate_size=5)
        assert {item["item_id"] for item in body["slate"]} == allowed


def test_exclusions_steer_a_repeat_request_away_from_the_first_slate(
    client: FlaskClient, auth_headers: dict[str, str], context: dict[str, Any]
) -> None:
    first = {item["item_id"] for item in ranked(client, auth_headers, context)["slate"]}

    second = ranked(client, auth_headers, context, exclude=sorted(first))

    assert first.isdisjoint(item["item_id"] for item in second["slate"])


def test_a_repeated_event_id_returns_the_stored_decision_without_a_second_row(
    client: FlaskClient,
    auth_headers: dict[str, str],
    session_factory: sessionmaker[Session],
    context: dict[str, Any],
) -> None:
    first = rank(client, auth_headers, context, event_id="order-42")
    stored = snapshot(session_factory)

    # The retry even asks for something else: the stored decision still answers.
    again = rank(client, auth_headers, {"segment": "other"}, event_id="order-42", slate_size=2)

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.get_json() == first.get_json()
    assert row_count(session_factory, "decisions") == 1
    assert snapshot(session_factory) == stored


REFUSED_RETRIES = {
    # Each would be refused as a new request; as a retry of a logged event id it is answered
    # with the stored decision.
    "unknown exclusion": ({"exclude": ["no-such-item"]}, 400),
    "fallback out of range": ({"fallback": {"deliver_unreviewed_after_seconds": 1}}, 400),
    "no eligible items": ({"context": {"categories": ["no-such-category"]}}, 422),
}


@pytest.mark.parametrize(("change", "refused"), REFUSED_RETRIES.values(), ids=REFUSED_RETRIES)
def test_a_retry_gets_the_stored_decision_even_if_it_would_now_be_refused(
    client: FlaskClient,
    auth_headers: dict[str, str],
    session_factory: sessionmaker[Session],
    context: dict[str, Any],
    change: dict[str, Any],
    refused: int,
) -> None:
    body = {"context": context, **change}
    assert client.post(RANK_URL, json=body, headers=auth_headers).status_code == refused
    first = rank(client, auth_headers, context, event_id="order-43")
    stored = snapshot(session_factory)

    again = client.post(RANK_URL, json={**body, "event_id": "order-43"}, headers=auth_headers)

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.get_json() == first.get_json()
    assert snapshot(session_factory) == stored


def test_each_request_without_an_event_id_gets_its_own_event(
    client: FlaskClient,
    auth_headers: dict[str, str],
    session_factory: sessionmaker[Session],
    context: dict[str, Any],
) -> None:
    ids = {ranked(client, auth_headers, context)["event_id"] for _ in range(3)}

    assert len(ids) == 3
    assert row_count(session_factory, "decisions") == 3


def test_rank_with_an_empty_catalog_is_a_clear_error(
    client: FlaskClient, auth_headers: dict[str, str]
) -> None:
    response = client.post(RANK_URL, json={"context": {}}, headers=auth_headers)

    assert response.status_code == 422
    assert "eligible" in response.get_json()["error"]


def test_rank_answers_json_with_safe_headers(
    client: FlaskClient, auth_headers: dict[str, str], context: dict[str, Any]
) -> None:
    response = rank(client, auth_headers, context)

    assert response.mimetype == "application/json"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_explanations_are_stored_only_when_asked_for(
    client: FlaskClient,
    auth_headers: dict[str, str],
    context: dict[str, Any],
    session_factory: sessionmaker[Session],
) -> None:
    from bandit.services import decisions

    plain = ranked(client, auth_headers, context)
    asked = ranked(client, auth_headers, context, explain=True)

    assert all(item["why"] == [] for item in plain["slate"])
    with session_factory() as session:
        stored = decisions.find_decision(session, plain["event_id"])
        assert stored is not None
        # None, not []: "not computed yet", so the task page computes it on first view.
        assert all(p.why is None for p in stored.proposed)
        explained = decisions.find_decision(session, asked["event_id"])
        assert explained is not None
        assert all(isinstance(p.why, list) for p in explained.proposed)
    assert [item["why"] for item in asked["slate"]] == [p.why for p in explained.proposed]
