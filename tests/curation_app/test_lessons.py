"""The lessons page says what its number is: under "your reviews", the move with the
curator's own reviews against the same pass without them; under "all curators", against the
pass without any curator's."""

from __future__ import annotations

from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bandit.db.models import Curator, ReviewLesson, utcnow
from bandit.services import lessons
from tests.curation_app.test_console import login


def _lesson(curator_id: int | None, item_id: str, change: float, measure: str) -> ReviewLesson:
    return ReviewLesson(
        model_version=3,
        curator_id=curator_id,
        item_id=item_id,
        change=change,
        verdicts=1,
        details={"category": "blouse", "verdicts": {"swapped": 1}, "measure": measure},
        created_at=utcnow(),
    )


def test_the_page_names_what_each_curators_number_compares_with(
    client: FlaskClient, curator_account: tuple[str, str], session_factory: sessionmaker[Session]
) -> None:
    with session_factory() as session:
        me = session.scalars(select(Curator).where(Curator.username == curator_account[0])).one()
        session.add_all(
            [
                _lesson(None, "sku-team", 0.4, lessons.WITHOUT_ALL_CURATORS),
                _lesson(me.id, "sku-own", 0.25, lessons.WITHOUT_THIS_CURATOR),
                _lesson(me.id, "sku-kept", 0.0, lessons.NO_CURATOR_ROUNDS),
                _lesson(me.id, "sku-many", -0.1, lessons.WITHOUT_ALL_CURATORS),
            ]
        )
        session.commit()
    login(client, *curator_account)
    mine = client.get("/lessons?who=me").get_data(as_text=True)
    assert "learned without your swap-ins, removals and swaps out only" in mine
    assert "sku-own" in mine and "sku-team" not in mine
    assert "none of your verdicts in this pass changed the proposals" in mine
    assert "all curators&#39; reviews together" in mine  # a row past the per-pass bound
    team = client.get("/lessons?who=all").get_data(as_text=True)
    assert "learned without any of them" in team
    assert "sku-team" in team and "reviews together" not in team


def test_items_moved_only_through_other_items_are_listed_apart_and_say_so(
    client: FlaskClient, curator_account: tuple[str, str], session_factory: sessionmaker[Session]
) -> None:
    # The reviewers' rows of model version 100: kept only, and a swap-in, both moved down;
    # the last two rows were stored before `taught` was (read by what their verdicts teach).
    rows = [
        ("sku-kept", -0.042, {"kept": 7}, []),
        ("sku-swapped-in", -0.056, {"kept": 3, "swapped_in": 1}, ["up"]),
        ("sku-removed", -0.03, {"kept": 2, "removed": 1}, ["down"]),
        ("sku-old-kept", 0.02, {"kept": 1}, None),
        ("sku-old-swap", -0.01, {"swapped": 1}, None),
    ]
    with session_factory() as session:
        for item_id, change, verdicts, taught in rows:
            lesson = _lesson(None, item_id, change, lessons.WITHOUT_ALL_CURATORS)
            lesson.details = {"category": "trousers", "verdicts": verdicts, "measure": "x"}
            if taught is not None:
                lesson.details["taught"] = taught
            session.add(lesson)
        session.commit()
    login(client, *curator_account)
    page = client.get("/lessons?who=all").get_data(as_text=True)
    direct = page[page.index('id="lessons"') : page.index('id="lessons-shared-heading"')]
    shared = page[page.index('id="lessons-shared"') :]
    assert "Moved by the reviews of other items (shared features)" in page
    assert "sku-removed" in direct and "sku-old-swap" in direct
    assert "Curators&#39; 1 removals of this trousers" in direct
    assert "also 2 keeps, which did not push it down" in direct
    for item_id in ("sku-kept", "sku-swapped-in", "sku-old-kept"):
        assert item_id in shared and item_id not in direct
    assert "7 keeps of this trousers (customers: all) taught it nothing by themselves" in shared
    assert "Curators&#39; 1 swaps in of this trousers (customers: all) pushed it up (3 keeps" in (
        shared
    )
    assert "moved it down, through the features it shares with them" in shared
