"""Double (gold) review: two different curators, the slate settled and learned once."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from flask.testing import FlaskClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from bandit.db.models import CuratorAction, Decision, ReviewTask, TaskSkip, utcnow
from bandit.engine.vocabulary import TaskStatus
from bandit.services import accounts, decisions, learning, review
from bandit.services.review.double_review import picked_for_double_review
from bandit.services.review.skips import skip_task
from bandit.services.review.undo import undo_submit
from bandit.services.runtime import EngineRuntime
from tests.api_support import activate_config, snapshot
from tests.conftest import DemoCatalog
from tests.curation_app.test_review_api import bearer


@pytest.fixture
def double_reviewed(
    session: Session, session_factory: sessionmaker[Session], demo_catalog: DemoCatalog
) -> int:
    """One decision waiting for review, under a config that double-reviews every task."""
    activate_config(session_factory, routing_mode="review_before", double_review_share=1.0)
    runtime = EngineRuntime(np.random.default_rng(0))
    request = decisions.RankRequest(context=demo_catalog.customers[0])
    decision, _ = decisions.rank(session, runtime, request)
    session.commit()
    return decision.id


@pytest.fixture
def curators(session: Session) -> tuple[int, int]:
    first = accounts.add_curator(session, "first-stylist", "long-enough-pw").id
    second = accounts.add_curator(session, "second-stylist", "long-enough-pw").id
    session.commit()
    return first, second


def verdicts_for(task: ReviewTask, verdict: str) -> list[review.ItemVerdict]:
    return [review.ItemVerdict(p.position, verdict) for p in task.decision.proposed]


def delivered(session: Session, decision_id: int) -> list[tuple[int, str, str]]:
    decision = session.get(Decision, decision_id, populate_existing=True)
    assert decision is not None
    return [(f.position, f.item_id, f.tag) for f in decision.final_slate]


def test_second_review_goes_to_another_curator_and_changes_nothing_delivered_or_learned(
    session: Session, double_reviewed: int, curators: tuple[int, int]
) -> None:
    first, second = curators
    task = review.claim_next(session, first)
    session.commit()
    assert task is not None and task.review_round == 1
    removed = verdicts_for(task, "remove")
    assert review.submit_review(session, task.id, first, task.lease_token or "", removed, 9.0)
    session.commit()
    slate_after_first = delivered(session, double_reviewed)
    assert {tag for _, _, tag in slate_after_first} == {"removed"}

    # The only waiting task is the second opinion on a decision the first curator reviewed.
    assert review.claim_next(session, first) is None
    session.commit()
    gold = review.claim_next(session, second)
    session.commit()
    assert gold is not None and gold.review_round == 2 and gold.decision_id == double_reviewed
    kept = verdicts_for(gold, "keep")
    assert review.submit_review(session, gold.id, second, gold.lease_token or "", kept, 6.0)
    session.commit()

    assert delivered(session, double_reviewed) == slate_after_first
    second_actions = session.scalars(
        select(CuratorAction).where(CuratorAction.task_id == gold.id)
    ).all()
    assert len(second_actions) == len(kept) and all(a.agreement_only for a in second_actions)
    report = learning.learn_pending(session)
    session.commit()
    assert report.verdicts == len(removed)
    assert learning.learn_pending(session).verdicts == 0
    session.commit()
    assert all(a.learned_at is None for a in second_actions)


def test_share_zero_queues_no_second_review(
    session: Session,
    session_factory: sessionmaker[Session],
    demo_catalog: DemoCatalog,
    curators: tuple[int, int],
) -> None:
    activate_config(session_factory, routing_mode="review_before", double_review_share=0.0)
    runtime = EngineRuntime(np.random.default_rng(0))
    decisions.rank(session, runtime, decisions.RankRequest(context=demo_catalog.customers[1]))
    session.commit()
    task = review.claim_next(session, curators[0])
    session.commit()
    assert task is not None
    review.submit_review(
        session, task.id, curators[0], task.lease_token or "", verdicts_for(task, "keep"), 3.0
    )
    session.commit()
    assert review.claim_next(session, curators[1]) is None
    session.commit()


def test_pick_is_stable_and_close_to_the_share() -> None:
    events = [f"event-{i}" for i in range(4000)]
    picked = [picked_for_double_review(e, 0.25) for e in events]
    assert picked == [picked_for_double_review(e, 0.25) for e in events]
    assert abs(np.mean(picked) - 0.25) < 0.03
    assert not any(picked_for_double_review(e, 0.0) for e in events)
    assert all(picked_for_double_review(e, 1.0) for e in events)


def test_second_review_by_the_same_curator_is_refused_and_stores_nothing(
    client: FlaskClient,
    session: Session,
    session_factory: sessionmaker[Session],
    double_reviewed: int,
    curators: tuple[int, int],
) -> None:
    first, _ = curators
    token = accounts.create_token(session, "first-tool", curator_username="first-stylist")
    task = review.claim_next(session, first)
    session.commit()
    assert task is not None
    review.submit_review(
        session, task.id, first, task.lease_token or "", verdicts_for(task, "keep"), 4.0
    )
    session.commit()
    # Force the second opinion into the first curator's hands, as a bypassing tool might.
    gold_id = session.scalar(select(ReviewTask.id).where(ReviewTask.review_round == 2))
    session.execute(
        update(ReviewTask)
        .where(ReviewTask.id == gold_id)
        .values(
            status=TaskStatus.CLAIMED,
            curator_id=first,
            lease_token="forced",
            leased_until=utcnow() + timedelta(minutes=5),
        )
    )
    session.commit()
    before = snapshot(session_factory)
    positions = [p.position for p in task.decision.proposed]
    body = {
        "lease_token": "forced",
        "verdicts": [{"position": p, "verdict": "remove"} for p in positions],
        "seconds_spent": 2.0,
    }
    response = client.post(f"/api/v1/review/{gold_id}", json=body, headers=bearer(token))
    assert response.status_code == 409
    assert "second review must come from another curator" in response.get_json()["error"]
    assert snapshot(session_factory) == before


def test_an_undo_after_a_colleague_skipped_the_second_review_withdraws_it_with_the_skip(
    session: Session, double_reviewed: int, curators: tuple[int, int]
) -> None:
    first, second = curators
    task = review.claim_next(session, first)
    session.commit()
    assert task is not None
    keep = verdicts_for(task, "keep")
    review.submit_review(session, task.id, first, task.lease_token or "", keep, 4.0)
    session.commit()
    gold = review.claim_next(session, second)
    session.commit()
    assert gold is not None and gold.review_round == 2
    skip_task(session, gold.id, second, gold.lease_token or "")
    session.commit()

    reopened = undo_submit(session, task.id, first)
    session.commit()

    assert reopened.status == TaskStatus.CLAIMED and reopened.curator_id == first
    tasks = session.scalars(select(ReviewTask.id).where(ReviewTask.decision_id == double_reviewed))
    assert list(tasks) == [task.id] and not session.scalars(select(TaskSkip)).all()
    assert review.claim_next(session, second) is None  # nothing waits for the colleague
    # Submitted again, the slate gets a fresh second review, which the colleague is served.
    review.submit_review(session, task.id, first, reopened.lease_token or "", keep, 4.0)
    session.commit()
    again = review.claim_next(session, second)
    assert again is not None and again.review_round == 2 and again.status == TaskStatus.CLAIMED
