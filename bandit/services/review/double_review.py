"""Double (gold) review: a share of reviewed decisions gets an independent second opinion.

Round 1 settles the slate as before. When its verdict is stored, a decision picked for
double review gets a round-2 task that any *other* curator can claim. That curator sees the
policy's proposal, never the first verdict, and their verdicts are stored with
``agreement_only`` set: they neither change what the customer gets nor reach the learner.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from functools import cache

from sqlalchemy import ColumnElement, Select, bindparam, exists, select
from sqlalchemy.orm import Session, aliased

from bandit.db.models import ReviewTask
from bandit.engine.vocabulary import TaskStatus
from bandit.services.delivery import decision_config
from bandit.services.review import queue as review_queue

FIRST_ROUND = 1
SECOND_ROUND = 2
SAME_CURATOR = (
    "you already reviewed this decision; its second review must come from another curator, "
    "so nothing was saved"
)


def picked_for_double_review(event_id: str, share: float) -> bool:
    """Whether the event falls in the double-reviewed share (stable: a hash, not a draw)."""
    # Hashing the event id keeps the pick reproducible across processes and replays.
    digest = hashlib.sha256(event_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def not_reviewed_by(curator_id: int | ColumnElement[int]) -> ColumnElement[bool]:
    """Tasks whose decision this curator has not reviewed (nor holds) in another round."""
    other = aliased(ReviewTask)
    return ~exists(
        select(other.id).where(
            other.decision_id == ReviewTask.decision_id,
            other.id != ReviewTask.id,
            other.curator_id == curator_id,
        )
    )


def reviewed_other_round(session: Session, task: ReviewTask, curator_id: int) -> bool:
    """Whether this curator reviewed or holds another round of the task's decision."""
    params = {"decision_id": task.decision_id, "task_id": task.id, "curator_id": curator_id}
    return session.scalar(_other_round_query(), params) is not None


@cache
def _other_round_query() -> Select[int]:
    # Built once per process and bound per call (every submitted verdict asks).
    return select(ReviewTask.id).where(
        ReviewTask.decision_id == bindparam("decision_id"),
        ReviewTask.id != bindparam("task_id"),
        ReviewTask.curator_id == bindparam("curator_id"),
    )


def queue_second_review(session: Session, first: ReviewTask, now: datetime) -> ReviewTask | None:
    """Add the round-2 task after a round-1 verdict, if the decision is picked and room allows.

    A second opinion is optional work, so it is never queued past the curators' capacity
    (it would only push first reviews into overflow).
    """
    if first.review_round != FIRST_ROUND:
        return None
    decision = first.decision
    config = decision_config(session, decision)
    if not picked_for_double_review(decision.event_id, config.double_review_share):
        return None
    if review_queue.queue_full(session, config):
        return None
    second = ReviewTask(
        decision_id=decision.id,
        review_round=SECOND_ROUND,
        route=first.route,
        status=TaskStatus.OPEN,
        priority=first.priority,
        measure_name=first.measure_name,
        queue_key=review_queue.queue_key(now, first.priority, config.review_sla_seconds),
        due_at=now + timedelta(seconds=config.review_sla_seconds),
        created_at=now,
    )
    session.add(second)
    return second
