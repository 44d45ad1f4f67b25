"""The console's review modes, lease heartbeat, blinded review, queue columns and security."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bandit.db.models import AuditEntry, ReviewTask
from bandit.services import accounts, decisions
from tests.api_support import activate_config, snapshot
from tests.curation_app.test_console import csrf_token, event_of, keep_all, login, open_next


def rank_contexts(
    app: Flask, factory: sessionmaker[Session], contexts: list[dict[str, Any]]
) -> None:
    runtime = app.extensions["hitl.runtime"]
    with factory() as session:
        for context in contexts:
            decisions.rank(session, runtime, decisions.RankRequest(context=context))
            session.commit()


@pytest.fixture
def curator(client: FlaskClient, curator_account: tuple[str, str]) -> FlaskClient:
    assert login(client, *curator_account).status_code == 302
    return client


def test_verify_after_overturn_is_logged_and_visible_in_the_event(
    app: Flask, curator: FlaskClient, session_factory: sessionmaker[Session],
    demo_catalog: Any, auth_headers: dict[str, str],
) -> None:  # fmt: skip
    activate_config(session_factory, routing_mode="review_after")
    rank_contexts(app, session_factory, demo_catalog.customers[:2])
    task_id, html, form = open_next(curator)
    assert "this slate already went out to the customer" in html
    data = keep_all(form)
    data.update({"verdict-0": "swap", "alternate-0": form.options["alternate-0"][0]})
    response = curator.post(f"/tasks/{task_id}", data=data)
    assert response.status_code == 302
    page = curator.get(response.headers["Location"]).get_data(as_text=True)
    assert "the delivered slate was overturned and the correction logged" in page

    event = curator.get(
        f"/api/v1/events/{event_of(session_factory, task_id)}", headers=auth_headers
    ).get_json()
    (verification,) = event["verifications"]
    assert verification["outcome"] == "corrected"
    assert verification["delivered_before"] == [p["item_id"] for p in event["proposed_slate"]]
    assert verification["delivered_after"][0] == form.options["alternate-0"][0]
    assert event["status"] == "delivered"

    second_id, _, second_form = open_next(curator)
    assert curator.post(f"/tasks/{second_id}", data=keep_all(second_form)).status_code == 302
    assert "reinstated as it went out" in curator.get("/").get_data(as_text=True)
    second = curator.get(
        f"/api/v1/events/{event_of(session_factory, second_id)}", headers=auth_headers
    ).get_json()
    assert [v["outcome"] for v in second["verifications"]] == ["reinstated"]


def test_heartbeat_renews_and_then_reports_a_lost_lease(
    app: Flask, curator: FlaskClient, session_factory: sessionmaker[Session], demo_catalog: Any
) -> None:
    activate_config(session_factory, routing_mode="review_before", review_lease_seconds=90)
    rank_contexts(app, session_factory, demo_catalog.customers[:1])
    task_id, html, form = open_next(curator)
    assert 'data-heartbeat-ms="30000"' in html
    headers = {"X-CSRFToken": form.values["csrf_token"]}
    beat = curator.post(
        f"/tasks/{task_id}/heartbeat", json={"lease_token": form.values["lease_token"]},
        headers=headers,
    )  # fmt: skip
    assert beat.status_code == 200 and beat.get_json()["leased_until"]
    no_csrf = curator.post(
        f"/tasks/{task_id}/heartbeat", json={"lease_token": form.values["lease_token"]}
    )
    assert no_csrf.status_code == 400
    curator.post(f"/tasks/{task_id}/release", data={"csrf_token": form.values["csrf_token"]})
    lost = curator.post(
        f"/tasks/{task_id}/heartbeat", json={"lease_token": form.values["lease_token"]},
        headers=headers,
    )  # fmt: skip
    assert lost.status_code == 409 and "no longer leased to you" in lost.get_json()["error"]


def test_queue_shows_priority_measure_age_and_sla(
    app: Flask, curator: FlaskClient, session_factory: sessionmaker[Session], demo_catalog: Any
) -> None:
    activate_config(session_factory, routing_mode="review_before", uncertainty_measure="margin")
    rank_contexts(app, session_factory, demo_catalog.customers[:3])
    page = curator.get("/").get_data(as_text=True)
    assert "uncertainty (margin) + wait ÷ review SLA (4 h)" in page
    with session_factory() as session:
        tasks = list(session.scalars(select(ReviewTask).order_by(ReviewTask.queue_key)))
    positions = [page.index(f'data-task-id="{t.id}"') for t in tasks]
    assert positions == sorted(positions)  # listed in the order curators will get them
    for task in tasks:
        assert f'title="margin {task.priority:.3f}"' in page  # the measure behind the priority
    assert (
        len(re.findall(r">in [34] h</td>", page)) == 3 and page.count('class="num age">0 s<') == 3
    )


def test_blinded_review_hides_exploration_but_the_log_keeps_it(
    app: Flask, curator: FlaskClient, session_factory: sessionmaker[Session], demo_catalog: Any,
    auth_headers: dict[str, str],
) -> None:  # fmt: skip
    # Every candidate enters through an exploration slot, so every pick is exploratory.
    activate_config(
        session_factory,
        routing_mode="review_before",
        blinded_review=True,
        epsilon=1.0,
        exploration_slot_share=1.0,
    )
    rank_contexts(app, session_factory, demo_catalog.customers[:1])
    task_id, html, _ = open_next(curator)
    assert "badge-explored" not in html and "best guess" not in html
    assert "exploration pick" not in html and "probability <strong>" not in html
    event = curator.get(
        f"/api/v1/events/{event_of(session_factory, task_id)}", headers=auth_headers
    ).get_json()
    assert all(p["explored"] for p in event["proposed_slate"])


def test_review_page_lists_shortcuts_and_numbered_alternates(
    app: Flask, curator: FlaskClient, session_factory: sessionmaker[Session], demo_catalog: Any
) -> None:
    activate_config(session_factory, routing_mode="review_before")
    rank_contexts(app, session_factory, demo_catalog.customers[:1])
    _, html, form = open_next(curator)
    for hint in ("<kbd>c</kbd> keep", "<kbd>x</kbd> remove", "<kbd>s</kbd> search",
                 "alternate", "<kbd>n</kbd> submit"):  # fmt: skip
        assert hint in html
    # Each card numbers its own alternates for the 1-6 keys.
    first_card = html[html.index('data-position="0"') : html.index('data-position="1"')]
    tiles = first_card.count('data-role="alternate-option"')
    assert tiles == len(form.options["alternate-0"]) and 0 < tiles <= 6
    assert all(f"<kbd>{n}</kbd>" in first_card for n in range(1, tiles + 1))


def test_console_actions_are_audited(
    app: Flask, curator: FlaskClient, session_factory: sessionmaker[Session], demo_catalog: Any
) -> None:
    activate_config(session_factory, routing_mode="review_before")
    rank_contexts(app, session_factory, demo_catalog.customers[:2])
    task_id, _, form = open_next(curator)
    curator.post(f"/tasks/{task_id}", data=keep_all(form))
    with session_factory() as session:
        entries = list(session.scalars(select(AuditEntry).order_by(AuditEntry.id)))
    assert [e.action for e in entries] == ["login", "task.claim", "task.submit", "task.claim"]
    assert {e.actor for e in entries} == {"stylist"}
    assert entries[2].details["verdicts"]["keep"] == len(form.positions())


def test_login_attempts_are_rate_limited(
    client: FlaskClient, curator_account: tuple[str, str], session_factory: sessionmaker[Session]
) -> None:
    for _ in range(10):
        assert login(client, curator_account[0], "wrong-password").status_code == 200
    blocked = login(client, *curator_account)
    assert blocked.status_code == 429
    assert "Too many failed log-in attempts" in blocked.get_data(as_text=True)
    assert "Traceback" not in blocked.get_data(as_text=True)


def test_one_curators_failed_logins_do_not_lock_out_colleagues_on_the_same_address(
    app: Flask, curator_account: tuple[str, str], session_factory: sessionmaker[Session]
) -> None:
    with session_factory() as session:
        accounts.add_curator(session, "colleague", "another-long-password")
        session.commit()
    typist, colleague = app.test_client(), app.test_client()
    for _ in range(10):
        assert login(typist, curator_account[0], "wrong-password").status_code == 200
    assert login(typist, curator_account[0], "wrong-password").status_code == 429
    # Same address (the test client's), other account: signs in.
    assert login(colleague, "colleague", "another-long-password").status_code == 302


def test_many_accounts_failing_from_one_address_hit_the_address_limit(
    app: Flask, curator_account: tuple[str, str]
) -> None:
    app.config["LOGIN_IP_RATE_LIMIT"] = "5 per minute"
    client = app.test_client()
    for index in range(5):
        assert login(client, f"guess-{index}", "wrong-password").status_code == 200
    blocked = login(client, *curator_account)
    assert blocked.status_code == 429
    assert "from this address" in blocked.get_data(as_text=True)


def test_session_cookie_and_headers_are_locked_down(
    client: FlaskClient, curator_account: tuple[str, str]
) -> None:
    response = login(client, *curator_account)
    cookie = response.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    page = client.get("/")
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["X-Content-Type-Options"] == "nosniff"


def test_a_forged_csrf_token_on_a_review_stores_nothing(
    app: Flask, curator: FlaskClient, session_factory: sessionmaker[Session], demo_catalog: Any
) -> None:
    activate_config(session_factory, routing_mode="review_before")
    rank_contexts(app, session_factory, demo_catalog.customers[:1])
    task_id, _, form = open_next(curator)
    before = snapshot(session_factory)
    data = keep_all(form)
    data["csrf_token"] = csrf_token(curator.get("/").get_data(as_text=True))[::-1]
    assert curator.post(f"/tasks/{task_id}", data=data).status_code == 400
    assert snapshot(session_factory) == before
