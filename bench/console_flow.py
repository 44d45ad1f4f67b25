"""Time per review task in the console, driven by headless Chromium like a curator would.

Run by hand (not part of `make test`):

    .venv/bin/python bench/console_flow.py [--tasks 15] [--server-url postgresql+psycopg://...]

It creates a scratch database (SQLite by default), loads demo data, queues review-before
decisions, serves the app on 127.0.0.1 from a thread, logs in and reviews tasks in three ways:

- keep-all: submit the proposal unchanged;
- one-swap: swap position 1 for its best alternate, then submit;
- search-swap: type a two-word query into position 1's search, pick the first result, submit.

A task's time runs from "the task is on screen and ready" to "the next task is on screen and
ready": the page work a curator waits for, with no human think time. It prints the median and
the 10th/90th percentiles per flow, and whether the page navigated (a full reload) per task.
The same script drives the page before and after the no-reload console: it only uses what
both have (verdict radios, a per-position alternate control, the search box, the submit
button, the lease token that changes with every task).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from playwright.sync_api import Page, sync_playwright  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

from bandit.db import migrate  # noqa: E402
from bandit.db.session import make_engine, make_session_factory  # noqa: E402
from bandit.engine.config import PolicyConfig  # noqa: E402
from bandit.services import accounts, catalog_store, configs, decisions  # noqa: E402
from bandit.services.runtime import EngineRuntime  # noqa: E402
from curation_app import create_app  # noqa: E402
from sim.demo_data import generate  # noqa: E402
from sim.runs import scratch_database  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
PASSWORD = "bench-password-1"
FLOWS = ("keep-all", "one-swap", "search-swap")


def _seed(url: str, tasks: int) -> None:
    migrate.upgrade(url)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    world = generate(items=2000, customers=300, seed=5)
    with sessions() as session:
        catalog_store.upsert_items(session, catalog_store.rows_from_frame(world.catalog))
        capacity = {"curator_capacity_per_hour": 100_000, "review_sla_seconds": 86_400}
        configs.save_config(
            session, PolicyConfig(routing_mode="review_before", **capacity), "bench", True
        )
        accounts.add_curator(session, "bench", PASSWORD)
        session.commit()
        runtime = EngineRuntime(np.random.default_rng(5))
        for index in range(tasks):
            context = dict(world.customers[index % len(world.customers)])
            decisions.rank(session, runtime, decisions.RankRequest(context=context))
        session.commit()
    engine.dispose()


@contextmanager
def _served(url: str) -> Iterator[str]:
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "bench", "SESSION_COOKIE_SECURE": False})
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


def _lease(page: Page) -> str:
    return page.locator('input[name="lease_token"]').first.input_value()


def _wait_for_next(page: Page, previous: str) -> None:
    """Until a different task (a new lease token) is on screen, or the queue page is."""
    page.wait_for_function(
        """(previous) => {
            const lease = document.querySelector('input[name="lease_token"]');
            const form = document.getElementById('review-form');
            if (!lease) { return !!document.querySelector('table.queue, p.empty'); }
            return lease.value !== previous && (!form || !form.hasAttribute('aria-busy'));
        }""",
        arg=previous,
    )


def _pick_alternate(page: Page) -> None:
    position = page.locator('fieldset[data-position="0"]')
    select = position.locator('select[name="alternate-0"]')
    if select.count():
        value = select.locator("option").nth(1).get_attribute("value") or ""
        select.select_option(value)
    else:
        page.keyboard.press("1")  # the card's first alternate, as a curator would pick it


def _search_swap(page: Page) -> None:
    position = page.locator('fieldset[data-position="0"]')
    box = position.locator('[data-role="search"]')
    if not box.is_visible():
        page.keyboard.press("s")  # "swap": opens the card's alternates and search
    box.click()
    box.fill("black wool")  # title word order, so the old substring search finds it too
    result = position.locator("button.result:not([disabled])").first
    result.wait_for()
    result.click()


ACTIONS: dict[str, Callable[[Page], None]] = {
    "keep-all": lambda page: None,
    "one-swap": _pick_alternate,
    "search-swap": _search_swap,
}


def _review(page: Page, flow: str) -> tuple[float, bool]:
    """One task under `flow`: seconds until the next task is ready, and whether it reloaded."""
    navigated = []
    page.once("load", lambda: navigated.append(True))
    previous = _lease(page)
    started = time.perf_counter()
    ACTIONS[flow](page)
    page.get_by_role("button", name="Submit review").click()
    _wait_for_next(page, previous)
    return time.perf_counter() - started, bool(navigated)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=15, help="tasks per flow")
    parser.add_argument("--server-url", default=None, help="PostgreSQL server (default SQLite)")
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    with scratch_database(args.server_url) as url:
        _seed(url, args.tasks * len(FLOWS) + 2)
        with _served(url) as base, sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
            )
            page = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
            page.set_default_timeout(20_000)
            page.goto(f"{base}/login")
            page.fill("#username", "bench")
            page.fill("#password", PASSWORD)
            page.get_by_role("button", name="Log in").click()
            page.get_by_role("button", name="Review next task").click()
            page.wait_for_selector('input[name="lease_token"]', state="attached")
            print(f"{'flow':<12} {'tasks':>5} {'median s':>9} {'p10 s':>7} {'p90 s':>7} reloads")
            for flow in FLOWS:
                times, reloads = [], 0
                for _ in range(args.tasks):
                    seconds, navigated = _review(page, flow)
                    times.append(seconds)
                    reloads += navigated
                deciles = statistics.quantiles(times, n=10)
                print(
                    f"{flow:<12} {len(times):>5} {statistics.median(times):>9.3f} "
                    f"{deciles[0]:>7.3f} {deciles[-1]:>7.3f} {reloads}/{len(times)}"
                )
            browser.close()


if __name__ == "__main__":
    main()
