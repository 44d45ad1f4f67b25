"""The console as a stylist uses it, in headless Chromium at 1440x900: what the user sees.

Pictures, the whole slate on one screen, submit-and-next without a reload, skip, undo, drafts,
multi-word search, per-position alternates with the duplicate guard. Screenshots go to
test-artifacts/, or to docs/screenshots/ with HITL_UPDATE_SCREENSHOTS=1.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import Browser, Page, Response, ViewportSize, expect, sync_playwright
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bandit.db.models import CuratorAction, ReviewTask
from bandit.engine.vocabulary import Route, TaskStatus
from bandit.services import decisions
from tests.curation_app.test_browser import CHROMIUM, CHROMIUM_ARGS, WAIT_MS, live_server

pytestmark = pytest.mark.browser
__all__ = ["live_server"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / (
    "docs/screenshots" if os.environ.get("HITL_UPDATE_SCREENSHOTS") == "1" else "test-artifacts"
)
VIEWPORT: ViewportSize = {"width": 1440, "height": 900}
TASK_URL = re.compile(r"/tasks/(\d+)$")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS, timeout=30_000
        )
        yield launched
        launched.close()


@pytest.fixture
def console_errors() -> list[str]:
    """What the page logged as errors (a test expecting a 4xx page removes its own)."""
    return []


@pytest.fixture
def page(browser: Browser, console_errors: list[str], live_server: str) -> Iterator[Page]:
    # Takes the server, so the page closes before the server stops (no refused requests).
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(WAIT_MS)
    context.set_default_navigation_timeout(WAIT_MS)
    opened = context.new_page()
    errors = console_errors
    opened.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    opened.on("pageerror", lambda e: errors.append(str(e)))
    yield opened
    opened.wait_for_load_state("networkidle")  # no request cut off by the server's shutdown
    context.close()
    assert errors == [], errors


@pytest.fixture
def tasks(app: Flask, session_factory: sessionmaker[Session], demo_catalog: Any) -> list[int]:
    """Four review-before tasks for known demo customers."""
    runtime = app.extensions["hitl.runtime"]
    with session_factory() as db:
        for customer in demo_catalog.customers[:4]:
            decision, _ = decisions.rank(db, runtime, decisions.RankRequest(context=customer))
            assert decision.route == Route.REVIEW_BEFORE
        db.commit()
        return list(db.scalars(select(ReviewTask.id).order_by(ReviewTask.id)))


def sign_in(page: Page, server: str, account: tuple[str, str]) -> None:
    page.goto(f"{server}/login")
    page.fill("#username", account[0])
    page.fill("#password", account[1])
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Review queue")).to_be_visible()


def open_first_task(page: Page, server: str, account: tuple[str, str]) -> int:
    sign_in(page, server, account)
    page.get_by_role("button", name="Review next task").click()
    page.wait_for_url(TASK_URL)
    expect(page.locator("fieldset.slate-card")).to_have_count(5)
    return task_id_now(page)


def task_id_now(page: Page) -> int:
    match = TASK_URL.search(page.url)
    assert match, page.url
    return int(match.group(1))


def count_loads(page: Page) -> list[str]:
    """Every full page load from now on (an in-place swap adds none)."""
    loads: list[str] = []
    page.on("load", lambda loaded: loads.append(loaded.url))
    return loads


def asks_for(query: str) -> Callable[[Response], bool]:
    """Matches the search response for exactly this query."""
    words = query.replace(" ", "+")
    return lambda response: f"q={words}" in response.url


def assert_pictures_loaded(page: Page, selector: str) -> int:
    """Every picture under `selector` loaded, with alt text; returns how many."""
    pictures = page.locator(selector)
    count = pictures.count()
    assert count > 0, selector
    for index in range(count):
        picture = pictures.nth(index)
        picture.scroll_into_view_if_needed()
        expect(picture).to_have_attribute("alt", re.compile(r"\S"))
        page.wait_for_function(
            "(img) => img.complete && img.naturalWidth > 0", arg=picture.element_handle()
        )
    return count


def test_whole_slate_with_pictures_fits_at_1440x900(
    page: Page, live_server: str, tasks: list[int], curator_account: tuple[str, str]
) -> None:
    open_first_task(page, live_server, curator_account)
    assert assert_pictures_loaded(page, "fieldset.slate-card img.picture") == 5
    for index in range(5):
        card = page.locator("fieldset.slate-card").nth(index)
        box = card.locator(".verdicts").bounding_box()
        top = card.bounding_box()
        assert box and top and top["y"] >= 0
        # The verdict buttons (the bottom of what a stylist needs) are on screen unscrolled.
        assert box["y"] + box["height"] <= VIEWPORT["height"], f"card {index + 1} below the fold"
        assert box["x"] + box["width"] <= VIEWPORT["width"]
    assert page.evaluate("window.scrollY") == 0
    expect(page.locator("#budget-bar")).to_contain_text("Slate total")
    expect(page.locator("#customer-given")).to_contain_text("From the request")
    expect(page.locator("#customer-stored")).to_contain_text("not given to the engine")
    # Model numbers stay behind the toggle.
    details = page.locator("details.model-details").first
    expect(details.locator("p").first).to_be_hidden()
    page.get_by_role("button", name="Model details").click()
    expect(details.locator("p").first).to_be_visible()
    page.get_by_role("button", name="Model details").click()
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "console-task.png"))


def test_submit_opens_the_next_task_without_a_reload_and_undo_brings_it_back(
    page: Page,
    live_server: str,
    tasks: list[int],
    curator_account: tuple[str, str],
    session_factory: sessionmaker[Session],
) -> None:
    first = open_first_task(page, live_server, curator_account)
    loads = count_loads(page)
    page.keyboard.press("n")
    page.wait_for_url(re.compile(rf"/tasks/(?!{first}$)\d+$"))
    second = task_id_now(page)
    expect(page.locator("#flow-messages")).to_contain_text("Review saved")
    expect(page.locator("#my-count")).to_have_text("1")
    assert loads == []  # no navigation: the next task replaced the page in place
    with session_factory() as db:
        assert db.get(ReviewTask, first).status == TaskStatus.DONE  # type: ignore[union-attr]
    page.get_by_role("button", name="Undo").click()
    page.wait_for_url(re.compile(rf"/tasks/{first}$"))
    expect(page.locator("#flow-messages")).to_contain_text("Undone")
    assert loads == []
    with session_factory() as db:
        again = db.get(ReviewTask, first)
        assert again is not None and again.status == TaskStatus.CLAIMED
        assert db.get(ReviewTask, second).status == TaskStatus.OPEN  # type: ignore[union-attr]
        assert not db.scalars(select(CuratorAction).where(CuratorAction.task_id == first)).all()


def test_a_refused_undo_says_why_and_leaves_the_current_task_submittable(
    page: Page,
    live_server: str,
    tasks: list[int],
    curator_account: tuple[str, str],
    session_factory: sessionmaker[Session],
    console_errors: list[str],
) -> None:
    first = open_first_task(page, live_server, curator_account)
    page.keyboard.press("n")
    page.wait_for_url(re.compile(rf"/tasks/(?!{first}$)\d+$"))
    second = task_id_now(page)
    expect(page.locator("#undo-bar")).to_contain_text("until the learner learns it")
    with session_factory() as db:  # a learner pass, between the page load and the click
        for action in db.scalars(select(CuratorAction).where(CuratorAction.task_id == first)):
            action.learned_at = action.created_at
        db.commit()
    page.get_by_role("button", name="Undo").click()
    expect(page.locator("#flow-messages")).to_contain_text(
        f"Task {first}: cannot undo: the learner has already learned these verdicts"
    )
    expect(page.locator("#undo-bar")).to_be_hidden()
    expect(page.locator("#lease-lost")).to_be_hidden()
    expect(page.locator("#submit-review")).to_be_enabled()
    console_errors[:] = [e for e in console_errors if "status of 409" not in e]
    page.keyboard.press("n")  # the task on screen is still this curator's to submit
    page.wait_for_url(re.compile(rf"/tasks/(?!{second}$)\d+$"))
    expect(page.locator("#flow-messages")).to_contain_text("Review saved")
    with session_factory() as db:
        assert db.get(ReviewTask, first).status == TaskStatus.DONE  # type: ignore[union-attr]
        assert db.get(ReviewTask, second).status == TaskStatus.DONE  # type: ignore[union-attr]


def test_skip_gives_a_different_task_and_next_does_not_return_it(
    page: Page, live_server: str, tasks: list[int], curator_account: tuple[str, str]
) -> None:
    first = open_first_task(page, live_server, curator_account)
    loads = count_loads(page)
    page.get_by_role("button", name="Skip").click()
    page.wait_for_url(re.compile(rf"/tasks/(?!{first}$)\d+$"))
    expect(page.locator("#flow-messages")).to_contain_text(f"Skipped task {first}")
    seen = [first, task_id_now(page)]
    for _ in range(2):  # the other waiting tasks come before the skipped one
        page.keyboard.press("n")
        page.wait_for_url(re.compile(rf"/tasks/(?!{seen[-1]}$)\d+$"))
        seen.append(task_id_now(page))
    assert first not in seen[1:]
    page.keyboard.press("n")
    page.wait_for_url(re.compile(rf"/tasks/{first}$"))  # only now, last of all
    assert loads == []


def test_a_draft_survives_a_reload(
    page: Page, live_server: str, tasks: list[int], curator_account: tuple[str, str]
) -> None:
    open_first_task(page, live_server, curator_account)
    card = page.locator('fieldset[data-position="1"]')
    card.locator("label.verdict-remove").click()
    page.fill('input[name="reason-1"]', "too formal for her")
    page.wait_for_timeout(1500)  # the timer ticks; the draft holds its time too
    page.reload()
    expect(page.locator("#draft-restored")).to_be_visible()
    expect(page.locator('input[name="verdict-1"][value="remove"]')).to_be_checked()
    expect(page.locator('input[name="reason-1"]')).to_have_value("too formal for her")
    assert page.locator("#timer").inner_text() != "0:00"
    # The stale "Swap in:" label never outlives a keep, and shortcuts work after a click.
    card.locator("label.verdict-swap").click()
    card.locator('[data-role="alternate-option"]').first.click()
    expect(card.locator('[data-role="chosen-label"]')).to_be_visible()
    card.locator("label.verdict-keep").click()
    expect(card.locator('[data-role="chosen-label"]')).to_be_hidden()
    page.locator('fieldset[data-position="0"]').click()
    page.keyboard.press("x")
    expect(page.locator('input[name="verdict-0"][value="remove"]')).to_be_checked()


def test_multi_word_search_in_both_orders_with_pictures(
    page: Page, live_server: str, tasks: list[int], curator_account: tuple[str, str]
) -> None:
    open_first_task(page, live_server, curator_account)
    card = page.locator('fieldset[data-position="0"]')
    card.locator("label.verdict-swap").click()
    box = card.locator('[data-role="search"]')
    found = []
    for query in ("grey sporty", "sporty grey"):
        with page.expect_response(asks_for(query)):
            box.fill(query)
        page.wait_for_timeout(100)  # the answer is drawn right after it arrives
        results = card.locator("button.result")
        expect(results.first).to_be_visible()
        titles = [t.lower() for t in card.locator(".result-title").all_inner_texts()]
        metas = card.locator(".result-meta").all_inner_texts()
        for title, meta in zip(titles, metas, strict=True):
            assert "grey" in f"{title} {meta}".lower() and "sporty" in title
        found.append(sorted(titles))
    assert found[0] == found[1]
    assert_pictures_loaded(page, 'fieldset[data-position="0"] button.result img')
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "console-search.png"))


def test_alternates_are_per_position_and_one_item_cannot_be_picked_twice(
    page: Page, live_server: str, tasks: list[int], curator_account: tuple[str, str]
) -> None:
    open_first_task(page, live_server, curator_account)
    first = page.locator('fieldset[data-position="0"]')
    second = page.locator('fieldset[data-position="1"]')
    first.locator("label.verdict-swap").click()
    assert_pictures_loaded(page, 'fieldset[data-position="0"] [data-role="alternate-option"] img')
    category = first.get_attribute("data-category")
    tile = first.locator('[data-role="alternate-option"]').first
    assert category and category in (tile.get_attribute("title") or "")  # same category first
    picked = tile.get_attribute("data-item-id")
    tile.click()
    # The same item offered at position 2 is refused, naming position 1.
    second.locator("label.verdict-swap").click()
    box = second.locator('[data-role="search"]')
    box.fill(picked or "")
    result = second.locator(f'button.result[data-item-id="{picked}"]')
    expect(result).to_be_visible()
    result.click()
    warning = page.locator('[data-role="duplicate-warning"]')
    expect(warning).to_be_visible()
    expect(warning).to_contain_text("already swapped in at position 1")
    expect(second.locator('input[name="chosen-1"]')).to_have_value("")


@pytest.fixture
def admin_account(session_factory: sessionmaker[Session]) -> tuple[str, str]:
    from bandit.services import accounts

    with session_factory() as db:
        accounts.add_curator(db, "lead", "lead-long-password", role="admin")
        db.commit()
    return "lead", "lead-long-password"


def test_queue_rows_are_links_and_filter(
    page: Page, live_server: str, tasks: list[int], curator_account: tuple[str, str]
) -> None:
    sign_in(page, live_server, curator_account)
    rows = page.locator("table.queue tbody tr")
    expect(rows).to_have_count(4)
    expect(rows.first.locator("td.for")).to_contain_text("budget")
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "console-queue.png"))
    page.select_option('select[name="route"]', "review_after")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_text("No waiting task matches these filters.")).to_be_visible()
    page.get_by_role("link", name="clear filters").click()
    page.get_by_role("button", name=f"Task #{tasks[2]}").click()
    page.wait_for_url(re.compile(rf"/tasks/{tasks[2]}$"))
    expect(page.locator("fieldset.slate-card")).to_have_count(5)


def test_settings_show_every_error_at_once_and_only_the_chosen_algorithms_parameters(
    page: Page, live_server: str, admin_account: tuple[str, str], console_errors: list[str]
) -> None:
    sign_in(page, live_server, admin_account)
    page.goto(f"{live_server}/settings")
    expect(page.locator("#setting-epsilon")).to_be_visible()  # epsilon-greedy is the default
    expect(page.locator("#setting-bag_size")).to_be_hidden()
    epsilon_help = page.locator("label[for=setting-epsilon] .field-help")
    expect(epsilon_help.locator("visible=true")).to_have_count(2)  # the floor, and its own line
    expect(page.locator(".help-for-epsilon_greedy")).to_be_visible()
    page.select_option("#setting-algorithm", "bag")
    expect(page.locator("#setting-bag_size")).to_be_visible()
    # Bagging reads epsilon too (VW's --bag N --epsilon e), with a line of help of its own.
    expect(page.locator("#setting-epsilon")).to_be_visible()
    expect(page.locator(".help-for-bag")).to_be_visible()
    expect(page.locator(".help-for-epsilon_greedy")).to_be_hidden()
    page.select_option("#setting-algorithm", "softmax")
    expect(page.locator("#setting-epsilon")).to_be_hidden()
    page.select_option("#setting-algorithm", "epsilon_greedy")
    page.fill("#setting-epsilon", "2")
    page.fill("#setting-vw_bits", "99")
    page.fill("#setting-review_sla_seconds", "")
    page.get_by_role("button", name="Save new version").click()
    summary = page.locator("#settings-errors")
    expect(summary).to_contain_text("3 fields to correct")
    for name in ("epsilon", "vw_bits", "review_sla_seconds"):
        expect(page.locator(f'.field-error[data-field="{name}"]')).to_be_visible()
    # The refused save is a 400 page by design; Chromium logs that status as an error.
    console_errors[:] = [e for e in console_errors if "status of 400" not in e]
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "console-settings-errors.png"))


def test_dashboard_range_switch(
    page: Page, live_server: str, tasks: list[int], admin_account: tuple[str, str]
) -> None:
    sign_in(page, live_server, admin_account)
    page.goto(f"{live_server}/dashboard")
    expect(page.locator("#dashboard-bucket")).to_contain_text("one point per 1 h")
    expect(page.locator("#dash-decided")).to_have_text("4")
    page.get_by_role("link", name="last 7 days").click()
    expect(page.locator("#dashboard-bucket")).to_contain_text("Last 7 days, one point per 6 h")
    expect(page.locator('#dashboard-ranges a[aria-current="page"]')).to_have_text("last 7 days")
    chart = page.locator('img[alt="Decisions by route"]')
    expect(chart).to_have_attribute("src", re.compile(r"range=7d"))
    page.wait_for_function(
        "(img) => img.complete && img.naturalWidth > 0", arg=chart.element_handle()
    )
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "console-dashboard.png"))
