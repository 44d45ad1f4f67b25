"""The console through Flask's test client: login, queue, claiming, reviewing, search, CSRF."""

from __future__ import annotations

import re
from collections.abc import Sequence
from html.parser import HTMLParser
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bandit.db.models import CuratorAction, FinalSlateItem, ReviewTask
from bandit.engine.vocabulary import Route
from bandit.services import accounts, catalog_store, decisions
from curation_app.reasons import reason_text
from sim.demo_data import generate

EVIL = "<script>alert(1)</script>"


class PageForm(HTMLParser):
    """The named inputs, checked radios and select options of a rendered page."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.values: dict[str, str] = {}
        self.radios: dict[str, list[str]] = {}
        self.options: dict[str, list[str]] = {}
        self._select: str | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {key: value or "" for key, value in attrs}
        name = found.get("name")
        if tag == "input" and name:
            if found.get("type") == "radio" and name.startswith("alternate-"):
                # Per-position alternates are picture tiles, one radio per item.
                self.options.setdefault(name, []).append(found.get("value", ""))
                if "checked" in found:
                    self.values[name] = found.get("value", "")
            elif found.get("type") == "radio":
                self.radios.setdefault(name, []).append(found.get("value", ""))
                if "checked" in found:
                    self.values[name] = found.get("value", "")
            else:
                self.values[name] = found.get("value", "")
        elif tag == "select" and name:
            self._select = name
            self.options[name] = []
        elif tag == "option" and self._select and found.get("value"):
            self.options[self._select].append(found["value"])

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None

    def positions(self) -> list[int]:
        return sorted(int(name.split("-")[1]) for name in self.radios)


def csrf_token(html: str) -> str:
    """The CSRF token of a rendered form."""
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def login(client: FlaskClient, username: str, password: str) -> Any:
    """Sign in through the login form."""
    page = client.get("/login").get_data(as_text=True)
    return client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": csrf_token(page)},
    )


def make_tasks(
    app: Flask, factory: sessionmaker[Session], contexts: Sequence[dict[str, Any]]
) -> list[str]:
    """Rank once per context; with an untrained model every decision waits for review."""
    runtime = app.extensions["hitl.runtime"]
    event_ids = []
    with factory() as db:
        for context in contexts:
            request = decisions.RankRequest(context=context)
            decision, _ = decisions.rank(db, runtime, request)
            db.commit()
            assert decision.route == Route.REVIEW_BEFORE
            event_ids.append(decision.event_id)
    return event_ids


def open_next(client: FlaskClient) -> tuple[int, str, PageForm]:
    """Press "Review next task" and open the claimed task's page."""
    queue = client.get("/").get_data(as_text=True)
    response = client.post("/tasks/next", data={"csrf_token": csrf_token(queue)})
    assert response.status_code == 302
    match = re.fullmatch(r"/tasks/(\d+)", response.headers["Location"])
    assert match, response.headers["Location"]
    page = client.get(response.headers["Location"])
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    return int(match.group(1)), html, PageForm(html)


def keep_all(form: PageForm) -> dict[str, str]:
    """The review form with "keep" on every position."""
    data = {name: form.values[name] for name in ("csrf_token", "lease_token", "rendered_at")}
    data.update({f"verdict-{p}": "keep" for p in form.positions()})
    return data


def event_of(factory: sessionmaker[Session], task_id: int) -> str:
    with factory() as db:
        task = db.get(ReviewTask, task_id)
        assert task is not None
        return task.decision.event_id


def stored_actions(factory: sessionmaker[Session]) -> int:
    with factory() as db:
        return int(db.scalar(select(func.count()).select_from(CuratorAction)) or 0)


@pytest.fixture
def curator(client: FlaskClient, curator_account: tuple[str, str]) -> FlaskClient:
    """The test client, signed in as the stored curator."""
    assert login(client, *curator_account).status_code == 302
    return client


@pytest.fixture
def two_tasks(app: Flask, session_factory: sessionmaker[Session], demo_catalog: Any) -> list[str]:
    return make_tasks(app, session_factory, demo_catalog.customers[:2])


@pytest.mark.parametrize("path", ["/", "/tasks/1", "/catalog/search?q=dress"])
def test_pages_require_login(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


def test_wrong_password_is_refused(client: FlaskClient, curator_account: tuple[str, str]) -> None:
    response = login(client, curator_account[0], "not-the-password")
    assert response.status_code == 200
    assert "Unknown username or wrong password." in response.get_data(as_text=True)
    assert client.get("/").status_code == 302


def test_login_opens_the_queue(client: FlaskClient, curator_account: tuple[str, str]) -> None:
    response = login(client, *curator_account)
    assert response.status_code == 302
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Review queue" in page
    assert curator_account[0] in page


def test_queue_lists_waiting_tasks(
    curator: FlaskClient, app: Flask, session_factory: sessionmaker[Session], demo_catalog: Any
) -> None:
    make_tasks(app, session_factory, demo_catalog.customers[:3])
    with session_factory() as db:
        task_ids = list(db.scalars(select(ReviewTask.id)))
    page = curator.get("/").get_data(as_text=True)
    assert len(task_ids) == 3
    for task_id in task_ids:
        assert f"#{task_id}<" in page
    assert '<dd id="count-open">3</dd>' in page
    assert "Review next task" in page


def test_empty_queue_says_so(curator: FlaskClient) -> None:
    queue = curator.get("/").get_data(as_text=True)
    response = curator.post("/tasks/next", data={"csrf_token": csrf_token(queue)})
    assert response.headers["Location"] == "/"
    assert "queue is empty" in curator.get("/").get_data(as_text=True)


def test_two_curators_get_different_tasks(
    app: Flask,
    curator: FlaskClient,
    session_factory: sessionmaker[Session],
    two_tasks: list[str],
) -> None:
    with session_factory() as db:
        accounts.add_curator(db, "second", "another-long-password")
        db.commit()
    other = app.test_client()
    assert login(other, "second", "another-long-password").status_code == 302

    first_id, _, _ = open_next(curator)
    second_id, _, _ = open_next(other)
    assert first_id != second_id
    # Asking again resumes the held task instead of taking another one.
    assert open_next(curator)[0] == first_id
    assert other.get(f"/tasks/{first_id}").status_code == 403
    with session_factory() as db:
        holders = {t.id: t.curator_id for t in db.scalars(select(ReviewTask))}
        assert holders[first_id] != holders[second_id]
        assert all(t.status == "claimed" for t in db.scalars(select(ReviewTask)))
    queue = curator.get("/").get_data(as_text=True)
    assert "second" in queue and '<dd id="count-claimed">2</dd>' in queue


def test_task_page_shows_context_slate_and_alternates(
    curator: FlaskClient, session_factory: sessionmaker[Session], two_tasks: list[str]
) -> None:
    task_id, html, form = open_next(curator)
    with session_factory() as db:
        task = db.get(ReviewTask, task_id)
        assert task is not None
        decision = task.decision
        slate = [p.item_id for p in decision.proposed]
        titles = catalog_store.items_by_id(db, slate)
        context = decision.context
        reasons = [reason_text(p.reasons, context) for p in decision.proposed]
    for label in ("Segment", "Age band", "Preferred style", "Favourite categories", "Budget"):
        assert label in html
    assert str(context["segment"]) in html and str(context["customer_id"]) in html
    for item_id in slate:
        assert titles[item_id].title in html
    for reason in reasons:
        assert reason.replace("'", "&#39;").replace('"', "&#34;") in html
    assert form.positions() == list(range(len(slate)))
    for position in form.positions():
        assert form.values[f"verdict-{position}"] == "keep"
        options = form.options[f"alternate-{position}"]
        assert options and not set(options) & set(slate)
    assert form.values["lease_token"] and float(form.values["rendered_at"]) > 0
    assert "Submit review" in html and "review.js" in html


def test_keep_all_is_stored_and_opens_the_next_task(
    curator: FlaskClient,
    session_factory: sessionmaker[Session],
    two_tasks: list[str],
    auth_headers: dict[str, str],
) -> None:
    task_id, _, form = open_next(curator)
    response = curator.post(f"/tasks/{task_id}", data=keep_all(form))
    assert response.status_code == 302
    next_page = curator.get(response.headers["Location"])
    assert next_page.status_code == 200
    assert "Review saved" in next_page.get_data(as_text=True)
    assert response.headers["Location"] != f"/tasks/{task_id}"

    event_id = event_of(session_factory, task_id)
    event = curator.get(f"/api/v1/events/{event_id}", headers=auth_headers)
    body = event.get_json()
    assert event.status_code == 200 and body["status"] == "delivered"
    assert body["review"]["status"] == "done"
    assert [a["verdict"] for a in body["review"]["actions"]] == ["kept"] * len(form.positions())
    assert all(0 <= a["seconds_spent"] < 86_400 for a in body["review"]["actions"])
    assert {f["tag"] for f in body["final_slate"]} == {"kept"}
    # The second task is next; after it the queue is empty.
    second_id = int(response.headers["Location"].rsplit("/", 1)[1])
    second_form = PageForm(next_page.get_data(as_text=True))
    last = curator.post(f"/tasks/{second_id}", data=keep_all(second_form))
    assert last.headers["Location"] == "/"


def test_swap_via_select_and_search(
    curator: FlaskClient,
    session_factory: sessionmaker[Session],
    two_tasks: list[str],
    auth_headers: dict[str, str],
) -> None:
    task_id, _, form = open_next(curator)
    alternate_0, alternate_1 = form.options["alternate-0"][:2]
    with session_factory() as db:
        task = db.get(ReviewTask, task_id)
        assert task is not None
        slate = [p.item_id for p in task.decision.proposed]
    found = curator.get("/catalog/search?q=sku").get_json()["items"]
    searched = next(i["item_id"] for i in found if i["item_id"] not in {*slate, alternate_0})
    data = keep_all(form)
    data.update({"verdict-0": "swap", "alternate-0": alternate_0, "reason-0": "too formal"})
    # A search-chosen item wins over the select.
    data.update({"verdict-1": "swap", "alternate-1": alternate_1, "chosen-1": searched})
    data.update({"verdict-2": "remove"})
    assert curator.post(f"/tasks/{task_id}", data=data).status_code == 302

    with session_factory() as db:
        actions = {
            a.position: a
            for a in db.scalars(select(CuratorAction).where(CuratorAction.task_id == task_id))
        }
        final = list(db.scalars(select(FinalSlateItem).order_by(FinalSlateItem.id)))
    assert actions[0].verdict == "swapped" and actions[0].replacement_item_id == alternate_0
    assert actions[0].reason == "too formal"
    assert actions[1].replacement_item_id == searched
    assert actions[2].verdict == "removed" and actions[3].verdict == "kept"
    tags = {(f.position, f.tag): f.item_id for f in final}
    assert tags[(0, "swapped_out")] == slate[0] and tags[(0, "swapped_in")] == alternate_0
    assert tags[(1, "swapped_in")] == searched

    body = curator.get(
        f"/api/v1/events/{event_of(session_factory, task_id)}", headers=auth_headers
    ).get_json()
    assert [a["verdict"] for a in body["review"]["actions"]][:3] == ["swapped"] * 2 + ["removed"]
    assert {"swapped_out", "swapped_in", "removed"} <= {f["tag"] for f in body["final_slate"]}


def test_swap_to_unknown_item_stores_nothing(
    curator: FlaskClient, session_factory: sessionmaker[Session], two_tasks: list[str]
) -> None:
    task_id, _, form = open_next(curator)
    data = keep_all(form)
    data.update({"verdict-0": "swap", "chosen-0": "no-such-<item>", "reason-0": "try"})
    response = curator.post(f"/tasks/{task_id}", data=data)
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "unknown item" in html and "no-such-&lt;item&gt;" in html
    again = PageForm(html)
    assert again.values["verdict-0"] == "swap" and again.values["reason-0"] == "try"
    assert again.values["rendered_at"] == form.values["rendered_at"]
    assert stored_actions(session_factory) == 0
    with session_factory() as db:
        task = db.get(ReviewTask, task_id)
        assert task is not None and task.status == "claimed"
    # The curator still holds the task and can submit a valid review.
    assert curator.post(f"/tasks/{task_id}", data=keep_all(again)).status_code == 302
    assert stored_actions(session_factory) == len(form.positions())


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        # Positions are counted from 1, as the page shows them.
        ({"verdict-0": "maybe"}, "Position 1: verdict must be one of keep, remove, swap"),
        ({"verdict-1": ""}, "Position 2: verdict must be one of"),
        ({"verdict-0": "swap"}, "Position 1: a swap needs a replacement item"),
        ({"verdict-0": "swap", "alternate-0": "@slate-1"}, "is already on the slate"),
        (
            {"verdict-0": "swap", "verdict-1": "swap", "alternate-0": "@alt", "chosen-1": "@alt"},
            "Positions 1 and 2 would swap in the same item",
        ),
        ({"reason-2": "x" * 501}, "Position 3: reason: at most 500 characters"),
        ({"reason-1": "warm\x00"}, "contains a NUL character"),
        ({"rendered_at": "nan"}, "the form lost its render time"),
        ({"rendered_at": ""}, "the form lost its render time"),
    ],
)
def test_bad_review_forms_are_rerendered_and_store_nothing(
    curator: FlaskClient,
    session_factory: sessionmaker[Session],
    two_tasks: list[str],
    changes: dict[str, str],
    message: str,
) -> None:
    task_id, _, form = open_next(curator)
    with session_factory() as db:
        task = db.get(ReviewTask, task_id)
        assert task is not None
        slate = [p.item_id for p in task.decision.proposed]
    names = {"@slate-1": slate[1], "@alt": form.options["alternate-0"][0]}
    data = keep_all(form)
    data.update({key: names.get(value, value) for key, value in changes.items()})
    response = curator.post(f"/tasks/{task_id}", data=data)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True).replace("&#39;", "'")
    assert stored_actions(session_factory) == 0


def test_catalog_text_is_escaped(
    curator: FlaskClient,
    app: Flask,
    session_factory: sessionmaker[Session],
    demo_catalog: Any,
) -> None:
    context = {**demo_catalog.customers[0], "segment": "<img src=x onerror=alert(2)>"}
    make_tasks(app, session_factory, [context])
    with session_factory() as db:
        task = db.scalars(select(ReviewTask)).one()
        first = task.decision.proposed[0].item_id
    frame = generate(items=200, customers=1, seed=11).catalog
    frame = frame[frame["item_id"] == first].copy()
    frame["title"] = f"{EVIL} dress"
    with session_factory() as db:
        catalog_store.upsert_items(db, catalog_store.rows_from_frame(frame))
        db.commit()
    _, html, _ = open_next(curator)
    assert EVIL not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; dress" in html
    assert "&lt;img src=x onerror=alert(2)&gt;" in html
    found = curator.get("/catalog/search?q=alert").get_json()["items"]
    assert [i["title"] for i in found] == [f"{EVIL} dress"]


def test_posts_without_csrf_token_are_refused(
    curator: FlaskClient, session_factory: sessionmaker[Session], two_tasks: list[str]
) -> None:
    task_id, _, form = open_next(curator)
    data = keep_all(form)
    del data["csrf_token"]
    response = curator.post(f"/tasks/{task_id}", data=data)
    assert response.status_code == 400
    assert "reload the page" in response.get_data(as_text=True)
    assert stored_actions(session_factory) == 0
    assert curator.post("/tasks/next").status_code == 400
    assert curator.post(f"/tasks/{task_id}/release").status_code == 400
    with session_factory() as db:
        statuses = sorted(t.status for t in db.scalars(select(ReviewTask)))
    assert statuses == ["claimed", "open"]


def test_release_gives_the_task_back(
    curator: FlaskClient, session_factory: sessionmaker[Session], two_tasks: list[str]
) -> None:
    task_id, _, form = open_next(curator)
    response = curator.post(
        f"/tasks/{task_id}/release", data={"csrf_token": form.values["csrf_token"]}
    )
    assert response.status_code == 302 and response.headers["Location"] == "/"
    with session_factory() as db:
        task = db.get(ReviewTask, task_id)
        assert task is not None and task.status == "open" and task.curator_id is None
    refused = curator.get(f"/tasks/{task_id}")
    assert refused.status_code == 409
    assert "You do not hold task" in refused.get_data(as_text=True)
    stale = curator.post(f"/tasks/{task_id}", data=keep_all(form))
    assert stale.status_code == 409 and stored_actions(session_factory) == 0
    assert curator.get("/tasks/999999").status_code == 404


def test_catalog_search(curator: FlaskClient, demo_catalog: Any) -> None:
    body = curator.get("/catalog/search?q=DRESS").get_json()
    items = body["items"]
    assert 0 < len(items) <= 12 and body["page"] == 1
    fields = {"item_id", "title", "category", "price", "style", "color", "brand", "material"}
    for item in items:
        assert set(item) == fields | {"picture", "within_budget"}
        assert "dress" in f"{item['title']} {item['category']} {item['item_id']}".lower()
        assert item["picture"] == f"/pictures/{item['item_id']}.svg"
    assert curator.get("/catalog/search?q=d").get_json()["items"] == []
    assert curator.get("/catalog/search").get_json()["items"] == []
    coats = curator.get("/catalog/search?q=wool&category=coat").get_json()["items"]
    assert coats and {i["category"] for i in coats} == {"coat"}


def test_catalog_search_is_multi_word_in_any_order_and_paged(
    curator: FlaskClient, demo_catalog: Any
) -> None:
    def ids(query: str, page: int = 1) -> tuple[list[str], bool]:
        body = curator.get(f"/catalog/search?q={query}&page={page}").get_json()
        return [i["item_id"] for i in body["items"]], body["has_more"]

    forward, _ = ids("grey+sporty")
    backward, _ = ids("sporty+grey")
    assert forward and sorted(forward) == sorted(backward)
    everything: list[str] = []
    page, more = 1, True
    while more:
        found, more = ids("black", page)
        everything += found
        page += 1
    assert len(everything) == len(set(everything)) > 12  # pages never repeat an item
    assert curator.get("/catalog/search?q=black&page=0").status_code == 400
    assert "page" in curator.get("/catalog/search?q=black&page=x").get_json()["error"]


UNSTORABLE_REQUESTS = {
    "task-id-beyond-64-bit": ("get", "/tasks/99999999999999999999999", None, 404),
    "submit-id-beyond-64-bit": ("post", "/tasks/99999999999999999999999", {}, 404),
    "search-with-nul": ("get", "/catalog/search?q=dr%00ess", None, 400),
    "category-with-nul": ("get", "/catalog/search?q=dress&category=a%00", None, 400),
    "review-field-with-nul": ("post", "/tasks/@task", {"reason-0": "bad\x00reason"}, 400),
}


@pytest.mark.parametrize(
    ("method", "path", "changes", "status"),
    UNSTORABLE_REQUESTS.values(),
    ids=list(UNSTORABLE_REQUESTS),
)
def test_input_no_database_can_store_gets_a_clear_error_and_stores_nothing(
    curator: FlaskClient,
    session_factory: sessionmaker[Session],
    two_tasks: list[str],
    method: str,
    path: str,
    changes: dict[str, str] | None,
    status: int,
) -> None:
    task_id, _, form = open_next(curator)
    path = path.replace("@task", str(task_id))
    if method == "get":
        response = curator.get(path)
    else:
        response = curator.post(path, data={**keep_all(form), **(changes or {})})

    assert response.status_code == status
    assert "Traceback" not in response.get_data(as_text=True)
    assert stored_actions(session_factory) == 0
    # The task is still held and a clean submit still works.
    assert curator.post(f"/tasks/{task_id}", data=keep_all(form)).status_code == 302


def test_a_login_name_with_nul_is_refused(
    client: FlaskClient, curator_account: tuple[str, str]
) -> None:
    page = client.get("/login").get_data(as_text=True)
    data = {"username": "cur\x00ator", "password": "x", "csrf_token": csrf_token(page)}

    response = client.post("/login", data=data)

    assert response.status_code == 400
    assert "NUL" in response.get_data(as_text=True)
