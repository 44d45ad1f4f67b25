"""What reviews taught the model: a lesson's change is what curator feedback moved, not what
the customers' outcomes learned in the same pass moved."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bandit.db.models import ReviewLesson
from bandit.engine.config import PolicyConfig
from bandit.services import accounts, configs, decisions, learning, review, rewards
from bandit.services.delivery import delivered_slate
from bandit.services.review import ItemVerdict
from bandit.services.runtime import EngineRuntime
from curation_app import lessons as lessons_page
from tests.conftest import DemoCatalog

DECISIONS = 8


def _reviewed_pass(session: Session, catalog: DemoCatalog, mode: str, swap: bool) -> None:
    """Rank, review every slate (keep all, or swap the first item in), let customers keep
    every item they received, then run one learn pass."""
    config = PolicyConfig(routing_mode=mode, slate_size=3, candidate_count=10)
    configs.save_config(session, config, created_by="test", activate=True)
    curator = accounts.add_curator(session, "lesson-curator", "lesson-password-1")
    session.commit()
    runtime = EngineRuntime(np.random.default_rng(5))
    for context in catalog.customers[:DECISIONS]:
        decision, _ = decisions.rank(session, runtime, decisions.RankRequest(context=context))
        session.commit()
        task = review.claim_next(session, curator.id)
        session.commit()
        assert task is not None
        slate = [p.item_id for p in decision.proposed]
        verdicts = [ItemVerdict(p.position, "keep") for p in decision.proposed]
        if swap:
            spare = next(c["item_id"] for c in decision.candidates if c["item_id"] not in slate)
            verdicts[0] = ItemVerdict(0, "swap", spare, "closer to the brief")
        review.submit_review(session, task.id, curator.id, task.lease_token or "", verdicts, 9.0)
        session.commit()
        session.refresh(decision)
        received = [entry["item_id"] for entry in delivered_slate(decision)]
        rewards.record_rewards(session, decision.event_id, [(i, 1.0) for i in received], "shop")
        session.commit()
    report = learning.learn_pending(session)
    session.commit()
    assert report.rounds_learned > 0  # the customers' outcomes were learned in this pass


def test_kept_items_show_no_change_though_customers_taught_the_policy_about_them(
    session: Session, demo_catalog: DemoCatalog
) -> None:
    # Review after delivery, every item kept: the verdicts are approval labels only; the
    # policy learned the customers' outcomes, which are not the curators' doing.
    _reviewed_pass(session, demo_catalog, "review_after", swap=False)
    lessons = session.scalars(select(ReviewLesson)).all()
    assert lessons
    assert all(lesson.details["verdicts"] == {"kept": lesson.verdicts} for lesson in lessons)
    assert max(abs(lesson.change) for lesson in lessons) < 1e-9


@pytest.mark.parametrize("mode", ["review_before", "review_after"])
def test_swaps_move_the_items_they_touched(
    session: Session, demo_catalog: DemoCatalog, mode: str
) -> None:
    # A swap-in is an imitation round, and a swap before delivery a curator-proxy round: both
    # change the policy, so the items they touched move (either way: one verdict can pull a
    # shared feature down for another item).
    _reviewed_pass(session, demo_catalog, mode, swap=True)
    lessons = session.scalars(select(ReviewLesson).where(ReviewLesson.curator_id.is_(None))).all()
    swapped = [
        lesson for lesson in lessons if {"swapped", "swapped_in"} & set(lesson.details["verdicts"])
    ]
    assert swapped and max(abs(lesson.change) for lesson in swapped) > 1e-3


@pytest.mark.parametrize(
    ("change", "direction"),
    [(0.0, "unchanged"), (0.0004, "unchanged"), (0.02, "up"), (-0.3, "down")],
)
def test_the_page_calls_a_move_below_its_precision_unchanged(change: float, direction: str) -> None:
    row = ReviewLesson(
        item_id="sku-1", change=change, verdicts=1, details={"verdicts": {"kept": 1}}
    )
    assert lessons_page._words(row, yours=True).direction == direction
