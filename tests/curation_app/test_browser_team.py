"""A team in headless Chromium: two curators at once, keyboard-only review, overturn, settings.

One browser serves the whole module; each test opens its own contexts (separate cookie jars).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bandit.db.models import CuratorAction, ReviewTask
from bandit.services import accounts, decisions
from tests.api_support import activate_config, ranked
from tests.curation_app.test_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    TASK_URL,
    WAIT_MS,
    live_server,
    task_id_of,
)

pytestmark = pytest.mark.browser
__all__ = ["live_server"]
# The committed screenshots are refreshed on request only, so a test run leaves the tree clean.
SCREENSHOTS = Path(__file__).resolve().parents[1] / (
    "docs/screenshots" if os.environ.get("HITL_UPDATE_SCREENSHOTS") == "1" else "test-artifacts"
)
PASSWORD = "team-long-password"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS, timeout=30_000
        )
        yield launched
        launched.close()


@pytest.fixture
def contexts(browser: Browser) -> Iterator[list[BrowserContext]]:
    """Fresh browser contexts (closed after the test), each with bounded waits."""
    opened: list[BrowserContext] = []
    yield opened
    for context in opened:
        context.close()


def new_page(browser: Browser, opened: list[BrowserContext]) -> tuple[Page, list[str]]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(WAIT_MS)
    context.set_default_navigation_timeout(WAIT_MS)
    opened.append(context)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return page, errors


@pytest.fixture
def people(session_factory: sessionmaker[Session]) -> list[str]:
    with session_factory() as session:
        for name, role in (("ana", "curator"), ("ben", "curator"), ("lead", "admin")):
            accounts.add_curator(session, name, PASSWORD, role)
        session.commit()
    return ["ana", "ben", "lead"]


def sign_in(page: Page, server: str, username: str) -> None:
    page.goto(f"{server}/login")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Review queue")).to_be_visible()


def queue_up(app: Flask, factory: sessionmaker[Session], contexts: list[dict[str, Any]]) -> None:
    runtime = app.extensions["hitl.runtime"]
    with factory() as session:
        for context in contexts:
            decisions.rank(session, runtime, decisions.RankRequest(context=context))
            session.commit()


def test_two_curators_on_one_queue_never_see_the_same_task(
    app: Flask, live_server: str, browser: Browser, contexts: list[BrowserContext],
    session_factory: sessionmaker[Session], demo_catalog: Any, people: list[str],
) -> None:  # fmt: skip
    activate_config(session_factory, routing_mode="review_before")
    queue_up(app, session_factory, demo_catalog.customers[:4])
    pages = [new_page(browser, contexts) for _ in range(2)]
    for (page, _), name in zip(pages, people[:2], strict=False):
        sign_in(page, live_server, name)
    expect(pages[0][0].locator("#count-open")).to_have_text("4")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    pages[0][0].screenshot(path=str(SCREENSHOTS / "queue.png"), full_page=True)

    seen: dict[str, list[int]] = {"ana": [], "ben": []}
    for page, _ in pages:
        page.get_by_role("button", name="Review next task").click()
        page.wait_for_url(TASK_URL)
    for _round in range(2):
        held = {name: task_id_of(page) for (page, _), name in zip(pages, seen, strict=True)}
        assert held["ana"] != held["ben"]
        for (page, _), name in zip(pages, seen, strict=True):
            seen[name].append(held[name])
            page.get_by_role("button", name="Submit review").click()
        for (page, _), name in zip(pages, seen, strict=True):
            # The next task, or the queue once it is empty.
            page.wait_for_url(re.compile(rf"/tasks/(?!{held[name]}$)\d+$|/$"))
    for page, errors in pages:
        page.goto(f"{live_server}/")
        expect(page.locator("#count-done")).to_have_text("4")
        assert errors == []
    assert not set(seen["ana"]) & set(seen["ben"])
    with session_factory() as session:
        holders = {t.id: t.curator_id for t in session.scalars(select(ReviewTask))}
    assert len(set(holders.values())) == 2 and len(holders) == 4


def test_keyboard_only_review_of_a_task(
    app: Flask, live_server: str, browser: Browser, contexts: list[BrowserContext],
    session_factory: sessionmaker[Session], demo_catalog: Any, people: list[str],
) -> None:  # fmt: skip
    activate_config(session_factory, routing_mode="review_before")
    queue_up(app, session_factory, demo_catalog.customers[:2])
    page, errors = new_page(browser, contexts)
    sign_in(page, live_server, "ana")
    page.get_by_role("button", name="Review next task").focus()
    page.keyboard.press("Enter")
    page.wait_for_url(TASK_URL)
    task_id = task_id_of(page)
    # Each card numbers its own alternates; key 1 on position 2 takes that card's first one.
    first_alternate = page.locator(
        'fieldset[data-position="1"] [data-role="alternate-option"]'
    ).first.get_attribute("data-item-id")
    expect(page.locator(".keys-hint")).to_contain_text("alternate")
    page.keyboard.press("x")  # position 1: remove, and move to position 2
    page.keyboard.press("1")  # position 2: swap for best alternate 1
    expect(page.locator('input[name="verdict-1"][value="swap"]')).to_be_checked()
    page.keyboard.press("j")
    page.keyboard.press("c")  # position 3: keep
    page.screenshot(path=str(SCREENSHOTS / "review.png"), full_page=True)
    page.keyboard.press("n")  # submit and open the next task
    page.wait_for_url(re.compile(rf"/tasks/(?!{task_id}$)\d+$"))
    expect(page.get_by_text("Review saved")).to_be_visible()
    assert errors == []
    with session_factory() as session:
        actions = session.scalars(
            select(CuratorAction)
            .where(CuratorAction.task_id == task_id)
            .order_by(CuratorAction.position)
        ).all()
    assert [a.verdict for a in actions[:3]] == ["removed", "swapped", "kept"]
    assert actions[1].replacement_item_id == first_alternate
    assert all(a.seconds_spent > 0 for a in actions)


def test_an_overturn_in_verify_after_mode(
    app: Flask, live_server: str, browser: Browser, contexts: list[BrowserContext],
    session_factory: sessionmaker[Session], demo_catalog: Any, people: list[str],
    client: FlaskClient, auth_headers: dict[str, str],
) -> None:  # fmt: skip
    activate_config(session_factory, routing_mode="review_after")
    event_id = ranked(client, auth_headers, demo_catalog.customers[0])["event_id"]
    page, errors = new_page(browser, contexts)
    sign_in(page, live_server, "ben")
    page.get_by_role("button", name="Review next task").click()
    page.wait_for_url(TASK_URL)
    expect(page.locator("#delivered-notice")).to_contain_text("already went out")
    page.keyboard.press("1")
    page.get_by_role("button", name="Submit review").click()
    page.wait_for_url(re.compile(r"/$"))
    expect(page.get_by_text("the delivered slate was overturned")).to_be_visible()
    assert errors == []
    event = client.get(f"/api/v1/events/{event_id}", headers=auth_headers).get_json()
    assert [v["outcome"] for v in event["verifications"]] == ["corrected"]
    assert event["final_slate"][0]["tag"] == "swapped_out"


def test_an_admin_threshold_change_routes_the_next_decisions(
    live_server: str, browser: Browser, contexts: list[BrowserContext],
    session_factory: sessionmaker[Session], demo_catalog: Any, people: list[str],
    client: FlaskClient, auth_headers: dict[str, str],
) -> None:  # fmt: skip
    # An untrained model is unsure of everything: under the default thresholds it asks first.
    assert ranked(client, auth_headers, demo_catalog.customers[0])["route"] == "review_before"
    page, errors = new_page(browser, contexts)
    sign_in(page, live_server, "lead")
    page.get_by_role("link", name="Settings").click()
    page.fill("#setting-review_threshold", "0")
    page.fill("#setting-auto_threshold", "0")
    page.get_by_role("button", name="Save new version").click()
    expect(page.get_by_text("and activated")).to_be_visible()
    expect(page.locator("#active-config")).to_have_text("default version 2")
    expect(page.locator("#config-history")).to_contain_text("auto_threshold: 0.9 → 0")
    assert errors == []
    routes = {ranked(client, auth_headers, c)["route"] for c in demo_catalog.customers[1:4]}
    assert routes == {"auto"}


def test_a_curator_is_refused_from_the_settings_page(
    live_server: str, browser: Browser, contexts: list[BrowserContext], people: list[str],
    session_factory: sessionmaker[Session],
) -> None:  # fmt: skip
    page, _ = new_page(browser, contexts)
    sign_in(page, live_server, "ana")
    expect(page.get_by_role("link", name="Settings")).to_have_count(0)
    response = page.goto(f"{live_server}/settings")
    assert response is not None and response.status == 403
    expect(page.get_by_text("This page is for admins only.")).to_be_visible()


def test_dashboard_draws_its_charts(
    app: Flask, live_server: str, browser: Browser, contexts: list[BrowserContext],
    session_factory: sessionmaker[Session], demo_catalog: Any, people: list[str],
    client: FlaskClient, auth_headers: dict[str, str],
) -> None:  # fmt: skip
    activate_config(session_factory, auto_threshold=0.0, review_threshold=0.0)
    for customer in demo_catalog.customers[:6]:
        ranked(client, auth_headers, customer)
    activate_config(session_factory, routing_mode="review_before")
    queue_up(app, session_factory, demo_catalog.customers[6:10])
    page, errors = new_page(browser, contexts)
    sign_in(page, live_server, "lead")
    page.get_by_role("link", name="Dashboard").click()
    charts = page.locator(".charts img")
    expect(charts).to_have_count(8)
    expect(page.locator("#dash-open")).to_have_text("4")
    page.wait_for_function(
        "() => [...document.querySelectorAll('.charts img')].every(i => i.naturalWidth > 0)"
    )
    page.screenshot(path=str(SCREENSHOTS / "dashboard.png"), full_page=True)
    assert errors == []


def _seed_promise(session_factory: sessionmaker[Session]) -> None:
    """A learn pass's result as the learner stores it: approval model, threshold, evidence."""
    from bandit.engine.approval import ApprovalModel
    from bandit.engine.policy import VWPolicy
    from bandit.services import configs, model_store, trust

    state = {
        "status": "ready",
        "calibration": {"edges": [1.0], "values": [0.97]},
        "threshold": 0.8,
        "projected_automation": 0.62,
        "audits": {"n": 130, "overrides": 4, "rate": 4 / 130, "low": 0.011, "high": 0.07},
        "metrics": {"ece": 0.021, "brier": 0.12, "verdicts": 600, "reliability": [
            {"low": 0.8, "high": 0.9, "count": 300, "predicted": 0.85, "observed": 0.84},
            {"low": 0.9, "high": 1.0, "count": 300, "predicted": 0.95, "observed": 0.96},
        ]},
        "risk": {"threshold": 0.8, "target": 0.05, "confidence_level": 0.9, "evidence": 900,
                 "chosen": {"n": 400, "overrides": 5, "rate": 0.0125, "bound": 0.021}},
        "promise": {"target": 0.05, "confidence_level": 0.9},
    }  # fmt: skip
    report = trust.TrustReport("ready", 500, 300, 0.8, 900, 0.021, 0.021, 0.12, 0.62)
    with session_factory() as session:
        row, config = configs.active_config(session)
        saved = model_store.save_model(session, VWPolicy.fresh(config), row, 0, None, "test")
        approval = ApprovalModel.fresh()
        saved.approval_bytes, saved.approval_state = approval.to_bytes(), state
        approval.close()
        from bandit.db.models import utcnow

        trust.record_threshold(session, saved.version, report, state, utcnow())
        session.commit()


def test_the_admin_sets_the_promise_and_sees_its_automation_bound_and_curve(
    live_server: str, browser: Browser, contexts: list[BrowserContext],
    session_factory: sessionmaker[Session], demo_catalog: Any, people: list[str],
) -> None:  # fmt: skip
    from bandit.db.models import PolicyConfigRow

    _seed_promise(session_factory)
    page, errors = new_page(browser, contexts)
    sign_in(page, live_server, "lead")
    page.get_by_role("link", name="Settings").click()
    page.select_option("#setting-routing_mode", "risk_controlled")
    page.fill("#setting-max_override_rate", "0.7")
    page.get_by_role("button", name="Save new version").click()
    expect(page.locator('[data-field="max_override_rate"]')).to_contain_text("(0.0, 0.5]")
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(PolicyConfigRow)) == 1
    # The refused form answers 400, which Chromium reports as a failed resource load.
    assert all("400" in e for e in errors)
    errors.clear()

    page.select_option("#setting-routing_mode", "risk_controlled")
    page.fill("#setting-max_override_rate", "0.05")
    page.fill("#setting-confidence_level", "0.9")
    page.fill("#setting-audit_share", "0.05")
    page.get_by_role("button", name="Save new version").click()
    expect(page.get_by_text("and activated")).to_be_visible()
    expect(page.locator("#promise-target")).to_contain_text(
        "At most 5.0% of automatically delivered slates would have been changed by a curator, "
        "with 90% confidence"
    )
    today = page.locator("#promise-today")
    expect(today).to_contain_text("62.0% of recent decisions would be delivered automatically")
    expect(today).to_contain_text("upper bound on their override rate 2.1%")
    expect(today).to_contain_text("Measured override rate of audited auto deliveries 3.1%")
    page.screenshot(path=str(SCREENSHOTS / "settings-promise.png"), full_page=True)

    page.get_by_role("link", name="Dashboard").click()
    promise_chart = page.locator('img[alt^="The promise"]')
    expect(promise_chart).to_have_count(1)
    expect(page.locator("#reliability img")).to_have_count(1)
    # Charts render one at a time on SQLite; allow for a loaded machine.
    page.wait_for_function(
        "() => [document.querySelector('img[alt^=\"The promise\"]'),"
        " document.querySelector('#reliability img')].every(i => i.naturalWidth > 0)",
        timeout=90_000,
    )
    assert errors == []
