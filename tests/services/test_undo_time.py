"""An undone submit's review time: carried by the curator's next submit, counted once."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bandit.db.models import CuratorAction, Decision, ReviewTask, utcnow
from bandit.engine.config import PolicyConfig
from bandit.services import accounts, configs, curator_day, decisions, review
from bandit.services.curator_quality import review_records
from bandit.services.review.undo import UndoRefused, undo_submit
from bandit.services.runtime import EngineRuntime
from tests.conftest import DemoCatalog


def _review_before(session: Session, demo_catalog: DemoCatalog) -> Decision:
    config = PolicyConfig(routing_mode="review_before", double_review_share=0.0)
    configs.save_config(session, config, "test", activate=True)
    decision, _ = decisions.rank(
        session,
        EngineRuntime(np.random.default_rng(0)),
        decisions.RankRequest(context=demo_catalog.customers[0]),
    )
    session.commit()
    return decision


def _keep_all(session: Session, task: ReviewTask, curator_id: int, seconds: float) -> None:
    verdicts = [review.ItemVerdict(p.position, "keep") for p in task.decision.proposed]
    assert review.submit_review(
        session, task.id, curator_id, task.lease_token or "", verdicts, seconds
    )
    session.commit()


def _task_seconds(session: Session, task_id: int) -> float:
    total = session.scalar(
        select(func.sum(CuratorAction.seconds_spent)).where(CuratorAction.task_id == task_id)
    )
    return float(total or 0.0)


def test_the_submit_after_an_undo_carries_the_withdrawn_time(
    session: Session, demo_catalog: DemoCatalog
) -> None:
    _review_before(session, demo_catalog)
    ann = accounts.add_curator(session, "ann", "long-enough-pw").id
    session.commit()
    task = review.claim_next(session, ann)
    session.commit()
    assert task is not None
    _keep_all(session, task, ann, 50.0)
    task = undo_submit(session, task.id, ann)
    session.commit()
    # Between the undo and the next submit no verdict exists, only the time on the task.
    assert _task_seconds(session, task.id) == 0.0
    assert (task.withdrawn_by, task.withdrawn_seconds) == (ann, pytest.approx(50.0))
    assert curator_day.curator_day(session, ann).tasks == 0
    _keep_all(session, task, ann, 10.0)
    assert _task_seconds(session, task.id) == pytest.approx(60.0)
    assert (task.withdrawn_seconds, task.withdrawn_by) == (0.0, None)
    assert session.scalar(
        select(func.count()).select_from(CuratorAction).where(CuratorAction.task_id == task.id)
    ) == len(task.decision.proposed)
    day = curator_day.curator_day(session, ann)
    assert (day.tasks, day.median_seconds) == (1, pytest.approx(60.0))
    (record,) = review_records(session, utcnow() - timedelta(days=1))
    assert record.seconds == pytest.approx(60.0) and record.overturned is None


def test_a_colleague_finishing_an_undone_task_is_timed_by_their_own_work(
    session: Session, demo_catalog: DemoCatalog
) -> None:
    """Ann submits in 50 s, undoes and gives the task back; Bo finishes it in 7 s."""
    _review_before(session, demo_catalog)
    ann, bo = (accounts.add_curator(session, name, "long-enough-pw").id for name in ("ann", "bo"))
    session.commit()
    task = review.claim_next(session, ann)
    session.commit()
    assert task is not None
    _keep_all(session, task, ann, 50.0)
    task = undo_submit(session, task.id, ann)
    session.commit()
    review.release(session, task.id, ann)
    session.commit()
    taken = review.claim_next(session, bo)
    session.commit()
    assert taken is not None and taken.id == task.id
    _keep_all(session, taken, bo, 7.0)
    assert _task_seconds(session, task.id) == pytest.approx(7.0)
    (record,) = review_records(session, utcnow() - timedelta(days=1))
    assert (record.curator, record.seconds) == ("bo", pytest.approx(7.0))
    # Ann's withdrawn 50 s are on no verdict of hers: the task row keeps them.
    assert (taken.withdrawn_by, taken.withdrawn_seconds) == (ann, pytest.approx(50.0))
    assert curator_day.curator_day(session, ann).tasks == 0


def test_a_resubmit_after_an_undo_is_refused_a_second_undo_and_nothing_changes(
    session: Session, demo_catalog: DemoCatalog
) -> None:
    """The resubmit checked a delivered slate (its outcome went to the client); undoing it
    too left that check behind, and the third submit failed on the one-check-per-task rule
    (an IntegrityError, a 500 over HTTP)."""
    _review_before(session, demo_catalog)
    ann = accounts.add_curator(session, "ann", "long-enough-pw").id
    session.commit()
    task = review.claim_next(session, ann)
    session.commit()
    assert task is not None
    _keep_all(session, task, ann, 50.0)
    task = undo_submit(session, task.id, ann)
    session.commit()
    _keep_all(session, task, ann, 10.0)
    before = _task_seconds(session, task.id), _status(session, task.id)
    with pytest.raises(UndoRefused, match="already delivered"):
        undo_submit(session, task.id, ann)
    session.rollback()
    assert (_task_seconds(session, task.id), _status(session, task.id)) == before


def _status(session: Session, task_id: int) -> str | None:
    return session.scalar(select(ReviewTask.status).where(ReviewTask.id == task_id))
