"""Choosing work: skip a task (to the back of the skipper's own queue), or claim a chosen one.

A skip is remembered per curator, so that curator's "next" serves every other waiting task
first; colleagues see the task in its usual place. Flushes; the caller commits.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, exists, func, select, update
from sqlalchemy.orm import Session

from bandit.db.models import ReviewTask, TaskSkip, utcnow
from bandit.engine.vocabulary import DecisionStatus, TaskStatus
from bandit.services import configs
from bandit.services.review.double_review import not_reviewed_by
from bandit.services.review.leases import update_live_lease
from bandit.services.review.queue import claimable


def skipped_by(curator_id: int | ColumnElement[int]) -> ColumnElement[bool]:
    """True for tasks this curator skipped (sorts them after the rest: False < True)."""
    return exists(
        select(TaskSkip.id).where(
            TaskSkip.task_id == ReviewTask.id, TaskSkip.curator_id == curator_id
        )
    )


def skip_task(
    session: Session, task_id: int, curator_id: int, lease_token: str, now: datetime | None = None
) -> None:
    """Give the held task back and remember that this curator skipped it."""
    now = now or utcnow()
    released = {"status": TaskStatus.OPEN, "curator_id": None, "lease_token": None,
                "leased_until": None}  # fmt: skip
    update_live_lease(session, task_id, curator_id, lease_token, now, released)
    task = session.get(ReviewTask, task_id, populate_existing=True)
    assert task is not None
    if task.decision.status == DecisionStatus.IN_REVIEW:
        task.decision.status = DecisionStatus.PENDING_REVIEW
    skip = session.scalars(
        select(TaskSkip).where(TaskSkip.task_id == task_id, TaskSkip.curator_id == curator_id)
    ).first()
    if skip is None:
        session.add(TaskSkip(task_id=task_id, curator_id=curator_id, skipped_at=now))
    else:
        skip.skipped_at = now
    session.flush()


def claim_chosen(
    session: Session, task_id: int, curator_id: int, now: datetime | None = None
) -> ReviewTask | None:
    """Lease one chosen waiting task (picked from the queue page); None if it is not claimable.

    The same conditional UPDATE as `claim_next`, so a colleague's live lease always wins.
    A curator holds one task at a time: one already held is returned instead. Flushes.
    """
    now = now or utcnow()
    held = session.scalars(
        select(ReviewTask).where(
            ReviewTask.curator_id == curator_id,
            ReviewTask.status == TaskStatus.CLAIMED,
            ReviewTask.leased_until >= now,
        )
    ).first()
    if held is not None:
        return held
    _, config = configs.active_config(session)
    claimed = session.execute(
        update(ReviewTask)
        .where(ReviewTask.id == task_id, claimable(now), not_reviewed_by(curator_id))
        .values(
            status=TaskStatus.CLAIMED,
            curator_id=curator_id,
            lease_token=uuid.uuid4().hex,
            leased_until=now + timedelta(seconds=config.review_lease_seconds),
            claimed_at=now,
            first_claimed_at=func.coalesce(ReviewTask.first_claimed_at, now),
        )
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        return None
    task = session.get(ReviewTask, task_id, populate_existing=True)
    assert task is not None
    if task.decision.status == DecisionStatus.PENDING_REVIEW:
        task.decision.status = DecisionStatus.IN_REVIEW
    session.flush()
    return task
