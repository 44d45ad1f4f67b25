"""Moving through tasks over HTTP: JSON submit, second tabs, skip, undo, queue links, the
customer panel, my counts, drawn pictures and the heartbeat's JSON errors."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bandit.db.models import (
    AuditEntry,
    CuratorAction,
    Customer,
    EventChange,
    Outcome,
    ReviewTask,
    SlateVerification,
)
from bandit.engine.vocabulary import DecisionStatus, TaskStatus
from bandit.services import catalog_store
from bandit.services.review.undo import UNDO_SECONDS, UndoRefused, undo_submit
from curation_app import event_views
from tests.curation_app.test_console import (
    PageForm,
    csrf_token,
    curator,
    keep_all,
    make_tasks,
    open_next,
    two_tasks,
)

__all__ = ["curator", "two_tasks"]
JSON = {"Accept": "application/json"}


@pytest.fixture
def three_tasks(app: Flask, session_factory: sessionmaker[Session], demo_catalog: Any) -> list[str]:
    return make_tasks(app, session_factory, demo_catalog.customers[:3])


def test_json_submit_names_the_next_task_and_the_undo(
    curator: FlaskClient, two_tasks: list[str]
) -> None:
    task_id, _, form = open_next(curator)
    response = curator.post(f"/tasks/{task_id}", data=keep_all(form), headers=JSON)
    assert response.status_code == 200
    body = response.get_json()
    assert body["message"] == "Review saved." and body["category"] == "success"
    assert re.fullmatch(r"/tasks/\d+", body["next_url"]) and body["next_url"] != f"/tasks/{task_id}"
    page = curator.get(body["next_url"]).get_data(as_text=True)
    assert f'action="/tasks/{task_id}/undo"' in page and 'id="my-count">1<' in page


def test_a_second_tabs_changes_are_refused_naming_the_verdicts_kept(
    curator: FlaskClient, two_tasks: list[str]
) -> None:
    task_id, _, form = open_next(curator)
    first = keep_all(form)
    first.update({"verdict-1": "remove"})
    assert curator.post(f"/tasks/{task_id}", data=first).status_code == 302
    other_tab = keep_all(form)  # the same lease, different verdicts
    response = curator.post(f"/tasks/{task_id}", data=other_tab, headers=JSON)
    body = response.get_json()
    assert "already saved from another tab; those verdicts were kept" in body["message"]
    assert "position 2 removed" in body["message"] and "position 1 kept" in body["message"]
    assert body["kept"][1] == "position 2 removed"


def test_a_rejected_json_submit_names_the_position_counted_from_one(
    curator: FlaskClient, two_tasks: list[str]
) -> None:
    task_id, _, form = open_next(curator)
    data = {**keep_all(form), "verdict-2": "swap"}
    response = curator.post(f"/tasks/{task_id}", data=data, headers=JSON)
    assert response.status_code == 400
    assert response.get_json() == {
        "error": "Position 3: a swap needs a replacement item",
        "position": 3,
    }


def test_heartbeat_without_csrf_header_answers_json(
    curator: FlaskClient, two_tasks: list[str]
) -> None:
    task_id, _, form = open_next(curator)
    response = curator.post(
        f"/tasks/{task_id}/heartbeat", json={"lease_token": form.values["lease_token"]}
    )
    assert response.status_code == 400 and response.is_json
    assert response.get_json()["error"].startswith("csrf:")


def test_skip_puts_the_task_last_in_my_queue_only(
    curator: FlaskClient,
    app: Flask,
    three_tasks: list[str],
    session_factory: sessionmaker[Session],
) -> None:
    task_id, html, form = open_next(curator)
    data = {"csrf_token": csrf_token(html), "lease_token": form.values["lease_token"]}
    body = curator.post(f"/tasks/{task_id}/skip", data=data, headers=JSON).get_json()
    assert body["message"].startswith(f"Skipped task {task_id}")
    served = [int(body["next_url"].rsplit("/", 1)[1])]
    for _ in range(2):
        page = curator.get(f"/tasks/{served[-1]}").get_data(as_text=True)
        response = curator.post(f"/tasks/{served[-1]}", data=keep_all(PageForm(page)), headers=JSON)
        served.append(int(response.get_json()["next_url"].rsplit("/", 1)[1]))
    assert served[:2] != [task_id, task_id] and task_id not in served[:2]
    assert served[2] == task_id  # after everything else
    with session_factory() as db:
        actions = [e.action for e in db.scalars(select(AuditEntry).order_by(AuditEntry.id))]
    assert "task.skip" in actions


def test_skipping_the_only_task_leaves_it_in_the_queue(
    curator: FlaskClient, app: Flask, session_factory: sessionmaker[Session], demo_catalog: Any
) -> None:
    make_tasks(app, session_factory, demo_catalog.customers[:1])
    task_id, html, form = open_next(curator)
    data = {"csrf_token": csrf_token(html), "lease_token": form.values["lease_token"]}
    body = curator.post(f"/tasks/{task_id}/skip", data=data, headers=JSON).get_json()
    assert body["next_url"] == "/" and "nothing else waits" in body["message"]
    with session_factory() as db:
        assert db.get(ReviewTask, task_id).status == TaskStatus.OPEN  # type: ignore[union-attr]


def _undo_after_submit(
    curator: FlaskClient, first: dict[str, str] | None = None
) -> tuple[int, str, PageForm]:
    """Submit the next task (`first`'s verdicts, else keep all), open the one after, undo."""
    task_id, _, form = open_next(curator)
    data = keep_all(form) | (first or {})
    next_url = curator.post(f"/tasks/{task_id}", data=data, headers=JSON).get_json()["next_url"]
    page = curator.get(next_url).get_data(as_text=True)
    response = curator.post(
        f"/tasks/{task_id}/undo", data={"csrf_token": csrf_token(page)}, headers=JSON
    )
    assert response.get_json()["next_url"] == f"/tasks/{task_id}"
    reopened = PageForm(curator.get(f"/tasks/{task_id}").get_data(as_text=True))
    return task_id, next_url, reopened


def test_undo_reopens_the_task_and_releases_the_next_one(
    curator: FlaskClient, two_tasks: list[str], session_factory: sessionmaker[Session]
) -> None:
    task_id, next_url, reopened = _undo_after_submit(curator)
    with session_factory() as db:
        task = db.get(ReviewTask, task_id)
        assert task is not None and task.status == TaskStatus.CLAIMED
        assert task.decision.final_slate == []
        assert not db.scalars(select(CuratorAction).where(CuratorAction.task_id == task_id)).all()
        other = db.get(ReviewTask, int(next_url.rsplit("/", 1)[1]))
        assert other is not None and other.status == TaskStatus.OPEN
    # Reviewed again under the new lease, it saves as any review does.
    again = curator.post(f"/tasks/{task_id}", data=keep_all(reopened), headers=JSON)
    assert again.get_json()["message"] == "Review saved."


def test_the_next_task_an_undo_releases_waits_for_review_again(
    curator: FlaskClient, two_tasks: list[str], session_factory: sessionmaker[Session]
) -> None:
    _, next_url, _ = _undo_after_submit(curator)
    with session_factory() as db:
        released = db.get(ReviewTask, int(next_url.rsplit("/", 1)[1]))
        assert released is not None and released.curator_id is None
        # Nobody holds it any more, so its client is told it waits, as after a lease runs out.
        assert released.decision.status == DecisionStatus.PENDING_REVIEW
        assert event_views.event_view(db, released.decision)["status"] == "pending_review"


def test_the_slate_sent_out_at_the_submit_stays_delivered_through_an_undo(
    curator: FlaskClient, two_tasks: list[str], session_factory: sessionmaker[Session]
) -> None:
    task_id, _, form = open_next(curator)
    curator.post(f"/tasks/{task_id}", data=keep_all(form), headers=JSON)
    with session_factory() as db:
        sent = db.get(ReviewTask, task_id).decision  # type: ignore[union-attr]
        delivered = (sent.delivered_slate, sent.delivered_at, sent.reward_due_at)
    page = curator.get("/").get_data(as_text=True)
    curator.post(f"/tasks/{task_id}/undo", data={"csrf_token": csrf_token(page)}, headers=JSON)
    with session_factory() as db:
        # The client was told: the slate is still the delivered one, and its reward wait runs.
        decision = db.get(ReviewTask, task_id).decision  # type: ignore[union-attr]
        assert decision.status == DecisionStatus.DELIVERED
        assert (
            decision.delivered_slate,
            decision.delivered_at,
            decision.reward_due_at,
        ) == delivered


@pytest.mark.parametrize("second", ["keep", "remove"])
def test_the_review_after_an_undo_checks_the_delivered_slate(
    second: str,
    curator: FlaskClient,
    two_tasks: list[str],
    session_factory: sessionmaker[Session],
) -> None:
    task_id, _, reopened = _undo_after_submit(curator)
    again = keep_all(reopened) | {"verdict-1": second}
    assert curator.post(f"/tasks/{task_id}", data=again, headers=JSON).status_code == 200
    with session_factory() as db:
        decision = db.get(ReviewTask, task_id).decision  # type: ignore[union-attr]
        assert decision.status == DecisionStatus.DELIVERED and decision.reward_due_at
        verdicts = {a.position: a.verdict for a in db.scalars(
            select(CuratorAction).where(CuratorAction.task_id == task_id)
        )}  # fmt: skip
        assert verdicts[1] == ("kept" if second == "keep" else "removed") and len(verdicts) == 5
        kinds = [c.kind for c in db.scalars(
            select(EventChange).where(EventChange.decision_id == decision.id)
            .order_by(EventChange.id)
        )]  # fmt: skip
        # Sent once; the second look reinstates it, or corrects it for the client.
        assert kinds == ["delivered", "reinstated" if second == "keep" else "corrected"]
        checks = db.scalars(
            select(SlateVerification).where(SlateVerification.decision_id == decision.id)
        ).all()
        assert len(checks) == 1


def test_undo_is_refused_after_the_window_or_an_outcome(
    curator: FlaskClient, two_tasks: list[str], session_factory: sessionmaker[Session]
) -> None:
    task_id, _, form = open_next(curator)
    curator.post(f"/tasks/{task_id}", data=keep_all(form))
    with session_factory() as db:
        task = db.get(ReviewTask, task_id)
        assert task is not None and task.completed_at is not None and task.curator_id
        late = task.completed_at + timedelta(seconds=UNDO_SECONDS + 1)
        with pytest.raises(UndoRefused, match="window has passed"):
            undo_submit(db, task_id, task.curator_id, late)
        db.rollback()
        db.add(Outcome(decision_id=task.decision_id, item_key="", value=1.0, source="client"))
        db.commit()
        with pytest.raises(UndoRefused, match="customer outcome"):
            undo_submit(db, task_id, task.curator_id)
        db.rollback()
        assert db.get(ReviewTask, task_id).status == TaskStatus.DONE  # type: ignore[union-attr]


def test_once_the_learner_has_the_verdicts_no_undo_is_offered(
    curator: FlaskClient, three_tasks: list[str], session_factory: sessionmaker[Session]
) -> None:
    task_id, _, form = open_next(curator)
    next_url = curator.post(f"/tasks/{task_id}", data=keep_all(form), headers=JSON).get_json()[
        "next_url"
    ]
    assert f'action="/tasks/{task_id}/undo"' in curator.get(next_url).get_data(as_text=True)
    with session_factory() as db:
        for action in db.scalars(select(CuratorAction).where(CuratorAction.task_id == task_id)):
            action.learned_at = action.created_at  # what a learner pass does
        db.commit()
    page = curator.get(next_url).get_data(as_text=True)
    assert "/undo" not in page and 'id="undo-bar"' not in page
    response = curator.post(
        f"/tasks/{task_id}/undo", data={"csrf_token": csrf_token(page)}, headers=JSON
    )
    assert response.status_code == 409
    error = response.get_json()["error"]
    assert error == f"Task {task_id}: cannot undo: the learner has already learned these verdicts"


def test_queue_rows_link_to_their_task_and_filter_by_route_and_category(
    curator: FlaskClient, two_tasks: list[str], session_factory: sessionmaker[Session]
) -> None:
    html = curator.get("/").get_data(as_text=True)
    with session_factory() as db:
        tasks = list(db.scalars(select(ReviewTask).order_by(ReviewTask.id)))
        segment = tasks[0].decision.context["segment"]
    for task in tasks:
        assert f'action="/tasks/{task.id}/claim"' in html
    assert segment in html and "budget" in html
    assert "review before" in curator.get("/?route=review_before").get_data(as_text=True)
    empty = curator.get("/?route=review_after").get_data(as_text=True)
    assert "No waiting task matches these filters." in empty
    response = curator.post(f"/tasks/{tasks[1].id}/claim", data={"csrf_token": csrf_token(html)})
    assert response.headers["Location"] == f"/tasks/{tasks[1].id}"
    with session_factory() as db:
        assert db.get(ReviewTask, tasks[1].id).status == TaskStatus.CLAIMED  # type: ignore[union-attr]


def test_a_rank_with_only_a_customer_id_shows_no_profile_as_given(
    curator: FlaskClient, app: Flask, session_factory: sessionmaker[Session], demo_catalog: Any
) -> None:
    profile = dict(demo_catalog.customers[0])
    with session_factory() as db:
        db.add(Customer(customer_id=profile["customer_id"], profile={**profile, "notes": "petite"}))
        db.commit()
    make_tasks(app, session_factory, [{"customer_id": profile["customer_id"]}])
    _, html, _ = open_next(curator)
    given = html[html.index('id="customer-given"') : html.index('id="customer-stored"')]
    stored = html[html.index('id="customer-stored"') :]
    assert "only the customer id" in given and "Budget" not in given
    assert "not given to the engine" in stored and "Preferred style" in stored
    assert profile["preferred_style"] in stored and "petite" in stored
    assert "stored profile, not given to the engine" in html  # the budget bar says so too


def test_drawn_pictures_are_svg_cached_and_escaped(
    curator: FlaskClient, two_tasks: list[str], demo_catalog: Any
) -> None:
    item_id = demo_catalog.item_ids[0]
    response = curator.get(f"/pictures/{item_id}.svg")
    assert response.status_code == 200 and response.mimetype == "image/svg+xml"
    assert response.get_data(as_text=True).startswith("<svg") and response.headers["ETag"]
    cached = curator.get(
        f"/pictures/{item_id}.svg", headers={"If-None-Match": response.headers["ETag"]}
    )
    assert cached.status_code == 304
    unknown = curator.get("/pictures/no-such-item.svg").get_data(as_text=True)
    assert unknown.startswith("<svg") and "<script" not in unknown
    assert curator.get("/media/anything.png").status_code == 404  # no media folder configured


def test_catalog_pictures_are_shown_from_a_url_or_the_media_folder(
    curator: FlaskClient,
    app: Flask,
    session_factory: sessionmaker[Session],
    two_tasks: list[str],
    tmp_path: Path,
) -> None:
    with session_factory() as db:
        task = db.scalars(select(ReviewTask).order_by(ReviewTask.id)).first()
        assert task is not None
        first, second = [p.item_id for p in task.decision.proposed][:2]
        items = catalog_store.items_by_id(db, [first, second])
        items[first].image_url = "https://cdn.example.com/look.jpg"
        items[second].image_url = "looks/coat.svg"
        db.commit()
    (tmp_path / "looks").mkdir()
    (tmp_path / "looks" / "coat.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    app.config["MEDIA_FOLDER"] = str(tmp_path)
    _, html, _ = open_next(curator)
    assert 'src="https://cdn.example.com/look.jpg"' in html
    assert 'src="/media/looks/coat.svg"' in html
    assert curator.get("/media/looks/coat.svg").status_code == 200
    assert curator.get("/media/../secret").status_code == 404
    assert "img-src 'self' data: https:" in curator.get("/").headers["Content-Security-Policy"]
