"""The review flow in headless Chromium: log in, confirm one task, swap items on the next."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import Page, expect, sync_playwright
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.serving import make_server

from bandit.db.models import CuratorAction, FinalSlateItem, ReviewTask
from bandit.engine.vocabulary import Route
from bandit.services import decisions

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WAIT_MS = 15_000
TASK_URL = re.compile(r"/tasks/(\d+)$")


@pytest.fixture
def live_server(app: Flask) -> Iterator[str]:
    """The app served over HTTP from a daemon thread, shut down after the test."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


@pytest.fixture
def browser_page() -> Iterator[tuple[Page, list[str]]]:
    """A Chromium page with bounded waits, and the console errors it reports (CSP included)."""
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS, timeout=30_000
        )
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.set_default_timeout(WAIT_MS)
            context.set_default_navigation_timeout(WAIT_MS)
            page = context.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            yield page, errors
            context.close()
        finally:
            browser.close()


def task_id_of(page: Page) -> int:
    match = TASK_URL.search(page.url)
    assert match, page.url
    return int(match.group(1))


def test_curator_confirms_one_task_and_swaps_on_the_next(
    app: Flask,
    live_server: str,
    browser_page: tuple[Page, list[str]],
    session_factory: sessionmaker[Session],
    demo_catalog: Any,
    curator_account: tuple[str, str],
    auth_headers: dict[str, str],
    artifacts_dir: Path,
) -> None:
    page, console_errors = browser_page
    runtime = app.extensions["hitl.runtime"]
    sizes = set()
    with session_factory() as db:
        for customer in demo_catalog.customers[:2]:
            decision, _ = decisions.rank(db, runtime, decisions.RankRequest(context=customer))
            db.commit()
            assert decision.route == Route.REVIEW_BEFORE
            sizes.add(len(decision.proposed))
    (size,) = sizes
    assert size >= 2

    page.goto(f"{live_server}/")
    expect(page).to_have_url(re.compile(r"/login"))
    page.fill("#username", curator_account[0])
    page.fill("#password", curator_account[1])
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Review queue")).to_be_visible()
    expect(page.locator("#count-open")).to_have_text("2")
    page.screenshot(path=str(artifacts_dir / "queue-page.png"), full_page=True)

    page.get_by_role("button", name="Review next task").click()
    page.wait_for_url(TASK_URL)
    first_id = task_id_of(page)
    expect(page.locator("fieldset.position")).to_have_count(size)
    expect(page.locator('input[name="verdict-0"][value="keep"]')).to_be_checked()
    page.get_by_role("button", name="Submit review").click()

    page.wait_for_url(re.compile(rf"/tasks/(?!{first_id}$)\d+$"))
    second_id = task_id_of(page)
    expect(page.get_by_text("Review saved")).to_be_visible()
    # Position 0: the best alternate from the select; review.js ticks "swap" by itself.
    alternate = page.locator('select[name="alternate-0"] option').nth(1).get_attribute("value")
    assert alternate
    page.select_option('select[name="alternate-0"]', alternate)
    expect(page.locator('input[name="verdict-0"][value="swap"]')).to_be_checked()
    # Position 1: a catalog search as you type; clicking a result makes it the swap target.
    position_1 = page.locator('fieldset[data-position="1"]')
    position_1.locator('[data-role="search"]').press_sequentially("sku", delay=20)
    result = position_1.locator("button.result:not([disabled])").first
    expect(result).to_be_visible()
    searched = result.get_attribute("data-item-id")
    assert searched and searched != alternate
    result.click()
    expect(position_1.locator('[data-role="chosen-label"]')).to_be_visible()
    expect(position_1.locator('input[name="verdict-1"][value="swap"]')).to_be_checked()
    expect(position_1.locator('input[name="chosen-1"]')).to_have_value(searched)
    page.fill('input[name="reason-0"]', "closer to the customer's style")
    page.screenshot(path=str(artifacts_dir / "review-page.png"), full_page=True)
    page.get_by_role("button", name="Submit review").click()

    page.wait_for_url(re.compile(r"/$"))
    expect(page.get_by_text("Review saved")).to_be_visible()
    expect(page.locator("#count-done")).to_have_text("2")
    assert console_errors == []

    with session_factory() as db:
        events = {}
        for task_id in (first_id, second_id):
            task = db.get(ReviewTask, task_id)
            assert task is not None and task.status == "done"
            events[task_id] = task.decision.event_id
            actions = db.scalars(
                select(CuratorAction)
                .where(CuratorAction.task_id == task_id)
                .order_by(CuratorAction.position)
            ).all()
            tags = db.scalars(
                select(FinalSlateItem.tag)
                .where(FinalSlateItem.decision_id == task.decision_id)
                .order_by(FinalSlateItem.id)
            ).all()
            if task_id == first_id:
                assert [a.verdict for a in actions] == ["kept"] * size
                assert list(tags) == ["kept"] * size
            else:
                kept = ["kept"] * (size - 2)
                assert [a.verdict for a in actions] == ["swapped", "swapped", *kept]
                assert [a.replacement_item_id for a in actions[:2]] == [alternate, searched]
                assert actions[0].reason == "closer to the customer's style"
                assert sorted(tags) == sorted(["swapped_out", "swapped_in"] * 2 + kept)

    client = app.test_client()
    first = client.get(f"/api/v1/events/{events[first_id]}", headers=auth_headers).get_json()
    second = client.get(f"/api/v1/events/{events[second_id]}", headers=auth_headers).get_json()
    assert first["status"] == second["status"] == "delivered"
    assert [a["verdict"] for a in first["review"]["actions"]] == ["kept"] * size
    assert [a["verdict"] for a in second["review"]["actions"]][:2] == ["swapped", "swapped"]
    assert {f["tag"] for f in first["final_slate"]} == {"kept"}
    swapped_in = [f["item_id"] for f in second["final_slate"] if f["tag"] == "swapped_in"]
    assert swapped_in == [alternate, searched]
