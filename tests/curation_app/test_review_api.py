"""The review API for external tools: curator-bound tokens, claim/submit/release, bad input."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from bandit.db.models import ApiClient, AuditEntry, CatalogItem, Curator, ReviewTask
from bandit.services import accounts
from curation_app.cli import main
from tests.api_support import activate_config, ranked, snapshot
from tests.conftest import DemoCatalog

CLAIM = "/api/v1/review/claim"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def reviewer(session_factory: sessionmaker[Session]) -> dict[str, str]:
    """Headers of a token bound to the curator "api-stylist"."""
    with session_factory() as session:
        accounts.add_curator(session, "api-stylist", "long-enough-pw")
        token = accounts.create_token(session, "labeler", curator_username="api-stylist")
        session.commit()
    return bearer(token)


@pytest.fixture
def queued(
    client: FlaskClient, auth_headers: dict[str, str], session_factory: sessionmaker[Session],
    demo_catalog: DemoCatalog,
) -> list[str]:  # fmt: skip
    activate_config(session_factory, routing_mode="review_before")
    return [ranked(client, auth_headers, c)["event_id"] for c in demo_catalog.customers[:2]]


def claim(client: FlaskClient, headers: dict[str, str]) -> dict[str, Any]:
    response = client.post(CLAIM, headers=headers)
    assert response.status_code == 200, response.get_json()
    task: dict[str, Any] = response.get_json()["task"]
    return task


def keep_all(task: dict[str, Any], **changes: Any) -> dict[str, Any]:
    verdicts = [{"position": item["position"], "verdict": "keep"} for item in task["slate"]]
    return {
        "lease_token": task["lease_token"],
        "verdicts": verdicts,
        "seconds_spent": 7.5,
        **changes,
    }


def test_claim_submit_and_read_back_the_event(
    client: FlaskClient, reviewer: dict[str, str], auth_headers: dict[str, str], queued: list[str]
) -> None:
    task = claim(client, reviewer)
    assert task["event_id"] in queued and task["lease_token"] and task["alternates"]
    assert {"measure_name", "measure", "priority", "leased_until", "context"} <= set(task)
    assert all("explored" in item for item in task["slate"])
    assert claim(client, reviewer)["task_id"] == task["task_id"]  # resumes the held task

    body = keep_all(task)
    body["verdicts"][0] = {
        "position": 0, "verdict": "swap", "replacement_item_id": task["alternates"][0]["item_id"],
        "reason": "closer to the brief",
    }  # fmt: skip
    answer = client.post(f"/api/v1/review/{task['task_id']}", json=body, headers=reviewer)
    assert answer.status_code == 200 and answer.get_json()["recorded"] is True
    again = client.post(f"/api/v1/review/{task['task_id']}", json=body, headers=reviewer)
    assert again.status_code == 200 and again.get_json()["duplicate"] is True

    event = client.get(f"/api/v1/events/{task['event_id']}", headers=auth_headers).get_json()
    assert event["review"]["status"] == "done"
    assert [a["verdict"] for a in event["review"]["actions"]].count("swapped") == 1


def test_release_puts_the_task_back_for_a_colleague(
    client: FlaskClient, session_factory: sessionmaker[Session], reviewer: dict[str, str],
    queued: list[str],
) -> None:  # fmt: skip
    task = claim(client, reviewer)
    wrong = client.post(
        f"/api/v1/review/{task['task_id']}/release", json={"lease_token": "x"}, headers=reviewer
    )
    assert wrong.status_code == 409
    url = f"/api/v1/review/{task['task_id']}/release"
    released = client.post(url, json={"lease_token": task["lease_token"]}, headers=reviewer)
    assert released.status_code == 200
    with session_factory() as session:
        row = session.get(ReviewTask, task["task_id"])
        assert row is not None and row.status == "open"
        actions = list(session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))
    assert actions == ["task.claim", "task.release"]


def test_heartbeat_renews_the_lease(
    client: FlaskClient, reviewer: dict[str, str], queued: list[str]
) -> None:
    task = claim(client, reviewer)
    url = f"/api/v1/review/{task['task_id']}/heartbeat"
    answer = client.post(url, json={"lease_token": task["lease_token"]}, headers=reviewer)
    assert answer.status_code == 200
    assert answer.get_json()["leased_until"] >= task["leased_until"]


@pytest.mark.parametrize("action", ["heartbeat", "release"])
def test_a_lease_token_with_a_nul_is_refused_by_name(
    client: FlaskClient, reviewer: dict[str, str], queued: list[str],
    session_factory: sessionmaker[Session], action: str,
) -> None:  # fmt: skip
    task = claim(client, reviewer)
    before = snapshot(session_factory)
    url = f"/api/v1/review/{task['task_id']}/{action}"
    answer = client.post(url, json={"lease_token": "\x00"}, headers=reviewer)
    assert answer.status_code == 400, answer.get_json()
    assert answer.get_json()["error"].startswith("lease_token")
    assert snapshot(session_factory) == before


@pytest.mark.parametrize(
    ("headers", "status", "message"),
    [
        ({}, 401, "missing bearer token"),
        (bearer("hitl_not-a-token"), 401, "invalid or revoked"),
        ("client", 403, "not bound to an active curator"),
    ],
    ids=["no-token", "bad-token", "client-token"],
)
def test_only_curator_tokens_may_review(
    client: FlaskClient, auth_headers: dict[str, str], queued: list[str],
    session_factory: sessionmaker[Session], headers: Any, status: int, message: str,
) -> None:  # fmt: skip
    before = snapshot(session_factory)
    response = client.post(CLAIM, headers=auth_headers if headers == "client" else headers)
    assert response.status_code == status and message in response.get_json()["error"]
    assert snapshot(session_factory) == before


@pytest.mark.parametrize(
    ("switched_off", "status", "message"),
    [
        (Curator, 403, "not bound to an active curator"),
        (ApiClient, 401, "invalid or revoked"),
    ],
    ids=["curator-deactivated", "token-revoked"],
)
def test_a_curator_token_stops_working_when_its_curator_or_itself_is_switched_off(
    client: FlaskClient, reviewer: dict[str, str], queued: list[str],
    session_factory: sessionmaker[Session], switched_off: type[Curator | ApiClient],
    status: int, message: str,
) -> None:  # fmt: skip
    assert client.post(CLAIM, headers=reviewer).status_code == 200
    with session_factory.begin() as session:
        session.execute(update(switched_off).values(active=False))
    before = snapshot(session_factory)
    response = client.post(CLAIM, headers=reviewer)
    assert response.status_code == status and message in response.get_json()["error"]
    assert snapshot(session_factory) == before


BAD_SUBMITS = {
    "verdict-for-a-position-not-in-the-slate": (
        lambda task, items: keep_all(task, verdicts=[
            *keep_all(task)["verdicts"], {"position": 99, "verdict": "keep"}
        ]),
        400, "exactly one verdict for each slate position",
    ),
    "swap-for-an-unknown-item": (
        lambda task, items: _swap(task, "no-such-item"), 400, "unknown item 'no-such-item'"
    ),
    "swap-for-an-out-of-stock-item": (
        lambda task, items: _swap(task, items["out_of_stock"]), 400, "is not eligible"
    ),
    "swap-for-an-item-already-on-the-slate": (
        lambda task, items: _swap(task, task["slate"][1]["item_id"]), 400, "already on the slate"
    ),
    "unknown-verdict": (
        lambda task, items: keep_all(task, verdicts=[{"position": 0, "verdict": "maybe"}]),
        400, "verdicts.0.verdict",
    ),
    "wrong-lease-token": (
        lambda task, items: keep_all(task, lease_token="stale"), 409, "no longer"
    ),
    "negative-seconds": (
        lambda task, items: keep_all(task, seconds_spent=-1), 400, "seconds_spent"
    ),
    "extra-field": (lambda task, items: keep_all(task, note="x"), 400, "note: unknown field"),
    # PostgreSQL refuses NUL in text: it was a 500 there, not a refusal by name.
    "nul-in-the-lease-token": (
        lambda task, items: keep_all(task, lease_token="\x00"), 400, "lease_token"
    ),
    "nul-in-a-reason": (
        lambda task, items: keep_all(task, verdicts=[
            {**verdict, "reason": "too warm\x00"} for verdict in keep_all(task)["verdicts"]
        ]),
        400, "verdicts.0.reason",
    ),
}  # fmt: skip


def _swap(task: dict[str, Any], item_id: str) -> dict[str, Any]:
    body = keep_all(task)
    body["verdicts"][0] = {"position": 0, "verdict": "swap", "replacement_item_id": item_id}
    return body


@pytest.mark.parametrize(
    ("build", "status", "message"), BAD_SUBMITS.values(), ids=list(BAD_SUBMITS)
)
def test_bad_submits_are_refused_and_change_nothing(
    client: FlaskClient, reviewer: dict[str, str], queued: list[str],
    session_factory: sessionmaker[Session], build: Any, status: int, message: str,
) -> None:  # fmt: skip
    task = claim(client, reviewer)
    with session_factory() as session:
        on_slate = {item["item_id"] for item in task["slate"]}
        item = session.scalars(
            select(CatalogItem).where(CatalogItem.item_id.not_in(on_slate)).limit(1)
        ).one()
        item.stock = 0
        session.commit()
        items = {"out_of_stock": item.item_id}
    before = snapshot(session_factory)
    response = client.post(
        f"/api/v1/review/{task['task_id']}", json=build(task, items), headers=reviewer
    )
    assert response.status_code == status, response.get_json()
    assert message in response.get_json()["error"]
    assert snapshot(session_factory) == before


def test_a_submit_after_the_lease_expired_is_refused_and_changes_nothing(
    client: FlaskClient, reviewer: dict[str, str], queued: list[str],
    session_factory: sessionmaker[Session],
) -> None:  # fmt: skip
    task = claim(client, reviewer)
    with session_factory() as session:
        row = session.get(ReviewTask, task["task_id"])
        assert row is not None and row.leased_until is not None
        row.leased_until = row.leased_until - timedelta(days=1)
        session.commit()
    before = snapshot(session_factory)
    response = client.post(
        f"/api/v1/review/{task['task_id']}", json=keep_all(task), headers=reviewer
    )
    assert response.status_code == 409
    assert "lease ran out" in response.get_json()["error"]
    assert snapshot(session_factory) == before


def test_openapi_describes_every_api_route(app: Flask, client: FlaskClient) -> None:
    document = client.get("/api/v1/openapi.json").get_json()
    assert document["openapi"].startswith("3.")
    routes = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/"):
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:  # type: ignore[operator]
            routes.add((path, method.lower()))
    documented = {(path, method) for path, ops in document["paths"].items() for method in ops}
    assert routes == documented
    assert {"RankBody", "SubmitBody", "LeaseBody"} <= set(document["components"]["schemas"])


def test_cli_adds_a_curator_and_a_token_bound_to_it(
    database_url: str, session_factory: sessionmaker[Session]
) -> None:
    runner = CliRunner()
    url = ["--database-url", database_url]
    added = runner.invoke(
        main, ["curator", "add", "lead", "--role", "admin", *url], input="a-long-password\n"
    )
    assert added.exit_code == 0, added.output
    assert "curator lead (admin) created" in added.output
    made = runner.invoke(main, ["token", "create", "tool", "--curator", "lead", *url])
    assert made.exit_code == 0 and made.output.strip().startswith("hitl_")
    unknown = runner.invoke(main, ["token", "create", "tool2", "--curator", "nobody", *url])
    assert unknown.exit_code != 0 and "no curator named 'nobody'" in unknown.output
    with session_factory() as session:
        client = session.scalars(select(ApiClient).where(ApiClient.name == "tool")).one()
        curator = accounts.find_curator(session, "lead")
        assert curator is not None and curator.role == "admin"
        assert client.curator_id == curator.id
        assert accounts.authenticate(session, "lead", "a-long-password") is not None
