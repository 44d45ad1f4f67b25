"""Undoing a curator's last submit, within a short window, while nothing has used it yet.

An undo is allowed only for the curator's own first-round review of a review-before task,
within UNDO_SECONDS of the submit, while the learner has not learned its verdicts, no
customer outcome has come in for the event and no colleague holds or has given a second
review of it (a waiting second review is withdrawn, with any colleague's skip of it). It puts
the task back in the curator's hands under a new lease, with the verdicts and the curated
slate removed. The slate itself went out at the submit (the client was told and may have
shown it), and a delivery is a fact written once: the decision stays delivered, its reward
wait keeps running, and the second submit is recorded as a check of the delivered slate,
reinstated or corrected, as a review-after is (the quality page's override rate counts only
review-after tasks' checks: this one is no verify-after review). The withdrawn verdicts'
seconds were spent all the same: the task keeps them (`withdrawn_seconds`) and the curator's
next submit of it adds them to its own, so the task's time is the sum of both submits.
Flushes; the caller commits.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, func, select
from sqlalchemy.orm import Session

from bandit.db.models import (
    CuratorAction,
    Decision,
    FinalSlateItem,
    Outcome,
    ReviewTask,
    SlateVerification,
    TaskSkip,
    utcnow,
)
from bandit.engine.vocabulary import Route, TaskStatus
from bandit.services import configs
from bandit.services.review import double_review
from bandit.services.review import queue as review_queue
from bandit.services.review.errors import ReviewError, TaskNotFound

UNDO_SECONDS = 120


class UndoRefused(ReviewError):
    """The submit can no longer be undone; the message says why."""


def undo_deadline(task: ReviewTask) -> datetime | None:
    """Until when a done task may still be undone (None if it never can be)."""
    if task.completed_at is None or task.route != Route.REVIEW_BEFORE:
        return None
    if task.review_round != double_review.FIRST_ROUND:
        return None
    return task.completed_at + timedelta(seconds=UNDO_SECONDS)


def undo_submit(
    session: Session, task_id: int, curator_id: int, now: datetime | None = None
) -> ReviewTask:
    """Reopen the curator's submitted task under a new lease (see the module docstring)."""
    now = now or utcnow()
    # Locked, as are its verdicts and any second review below: a learn pass marking the
    # verdicts learned, a colleague claiming the second review or a second undo either
    # finishes first (and the undo is refused) or waits for this one.
    task = session.get(ReviewTask, task_id, populate_existing=True, with_for_update=True)
    if task is None:
        raise TaskNotFound(f"no review task {task_id}")
    if task.status != TaskStatus.DONE or task.curator_id != curator_id:
        raise UndoRefused("only your own submitted review can be undone")
    deadline = undo_deadline(task)
    if deadline is None:
        raise UndoRefused("only your first review of a review-before slate can be undone")
    if now > deadline:
        raise UndoRefused(f"the {UNDO_SECONDS} s undo window has passed")
    decision = session.get(Decision, task.decision_id)
    assert decision is not None
    submitted = session.execute(
        select(CuratorAction.learned_at, CuratorAction.seconds_spent)
        .where(CuratorAction.task_id == task.id)
        .with_for_update()
    ).all()
    if any(when is not None for when, _ in submitted):
        raise UndoRefused("the learner has already learned these verdicts")
    outcomes = session.scalar(
        select(func.count()).select_from(Outcome).where(Outcome.decision_id == decision.id)
    )
    if outcomes:
        raise UndoRefused("a customer outcome has already arrived for this slate")
    # A submit after an undo checks a slate the customer already has: its verify-after
    # outcome (and any correction) went to the client, and a check is made once per task.
    checked = session.scalar(
        select(func.count())
        .select_from(SlateVerification)
        .where(SlateVerification.task_id == task.id)
    )
    if checked:
        raise UndoRefused(
            "this review checked a slate already delivered and its outcome went to the client"
        )
    second = session.scalars(
        select(ReviewTask)
        .where(ReviewTask.decision_id == decision.id, ReviewTask.id != task.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).all()
    if any(other.status != TaskStatus.OPEN for other in second):
        raise UndoRefused("a colleague has started the second review of this slate")
    # An open second review holds no verdict: a colleague may have opened it and skipped or
    # released it, which gives it back like any claim. The skip is their order for that task
    # alone, so it goes with the task (the audit log keeps the claim and the skip).
    if second:
        session.execute(delete(TaskSkip).where(TaskSkip.task_id.in_([o.id for o in second])))
    for other in second:
        session.delete(other)
    session.execute(delete(CuratorAction).where(CuratorAction.task_id == task.id))
    # The verdicts go, the time they took stays with the task for the next submit to carry
    # (a second undo adds the carried seconds back, so nothing is counted twice).
    task.withdrawn_seconds = sum(seconds for _, seconds in submitted)
    task.withdrawn_by = curator_id
    session.execute(delete(FinalSlateItem).where(FinalSlateItem.decision_id == decision.id))
    session.expire(decision, ["final_slate"])
    # The curator holds one task at a time: the one "next" opened after the submit goes back.
    review_queue.requeue(
        session,
        and_(
            ReviewTask.curator_id == curator_id,
            ReviewTask.status == TaskStatus.CLAIMED,
            ReviewTask.id != task.id,
        ),
    )
    _, config = configs.active_config(session)
    task.status = TaskStatus.CLAIMED
    task.completed_at = None
    task.lease_token = uuid.uuid4().hex
    task.leased_until = now + timedelta(seconds=config.review_lease_seconds)
    # "Held since", from which the console times the second review; first_claimed_at keeps
    # when the review started, the event's in_review step.
    task.claimed_at = now
    session.flush()
    return task
