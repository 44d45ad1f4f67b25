"""Claiming review tasks under a lease: claim, heartbeat (renew) and release."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import BindParameter, Integer, Select, bindparam, func, select, update
from sqlalchemy.orm import Session, defer
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql.dml import ReturningUpdate

from bandit.db.models import Curator, Decision, ReviewTask, UTCDateTime, utcnow
from bandit.db.session import is_postgresql
from bandit.engine.vocabulary import AuditAction, DecisionStatus, TaskStatus
from bandit.services import audit, configs
from bandit.services.review import double_review
from bandit.services.review.errors import LeaseLost, TaskNotFound
from bandit.services.review.leases import update_live_lease
from bandit.services.review.queue import QUEUE_ORDER, claimable
from bandit.services.review.skips import skipped_by

CLAIM_ATTEMPTS = 5


@dataclass(frozen=True)
class Claim:
    """A task leased to a curator; `resumed` when the curator already held it."""

    task: ReviewTask
    resumed: bool


def held_task(session: Session, curator_id: int, now: datetime) -> ReviewTask | None:
    """The task this curator holds under a live lease, if any."""
    return session.scalars(_held_query(), {"curator_id": curator_id, "now": now}).first()


def claim_task(
    session: Session,
    curator_id: int,
    actor: str,
    now: datetime | None = None,
    via: str | None = None,
    excluding: int | None = None,
) -> Claim | None:
    """The claim every front end uses: the held task, or a new lease audited as `task.claim`.

    None when the queue is empty (`excluding`: a task just skipped, never handed out by this
    call). Flushes; the caller commits the lease and its audit entry together.
    """
    now = now or utcnow()
    lock_curator(session, curator_id)
    held = held_task(session, curator_id, now)
    if held is not None:
        return Claim(held, resumed=True)
    task = _lease_next(session, curator_id, now, excluding)  # no held lease: checked above
    if task is None:
        return None
    details = {"via": via} if via else {}
    audit.record(
        session, AuditAction.TASK_CLAIM, actor, curator_id, f"task {task.id}", now, **details
    )
    session.flush()
    return Claim(task, resumed=False)


def lock_curator(session: Session, curator_id: int) -> None:
    """Serialise one curator's claims (row lock until commit), so two tabs or two API calls
    racing for work get the same task, never two."""
    session.execute(select(Curator.id).where(Curator.id == curator_id).with_for_update())


def claim_next(
    session: Session, curator_id: int, now: datetime | None = None, excluding: int | None = None
) -> ReviewTask | None:
    """Lease the most informative waiting task to the curator; None when the queue is empty.

    Tasks the curator skipped come after all others; `excluding` (the task just skipped) is
    never handed out by this call.

    The lease is taken by a conditional UPDATE that only succeeds while the task is still
    claimable, so two curators can never hold the same task; on PostgreSQL the candidate row
    is also locked with SKIP LOCKED so concurrent claimers do not queue on one row. Flushes.
    Lock order, as everywhere: curator, then task, then decision.
    """
    now = now or utcnow()
    held = held_task(session, curator_id, now)
    if held is not None:
        return held
    return _lease_next(session, curator_id, now, excluding)


def _lease_next(
    session: Session, curator_id: int, now: datetime, excluding: int | None
) -> ReviewTask | None:
    """`claim_next` for a curator known to hold no live lease."""
    query = _next_task_query(is_postgresql(session), excluding is not None)
    params = {"curator_id": curator_id, "now": now, "excluding": excluding}
    lease_seconds: int | None = None
    for _ in range(CLAIM_ATTEMPTS):
        task_id = session.scalar(query, params)
        if task_id is None:
            return None
        if lease_seconds is None:
            # Read only once there is work: most claims on an empty queue end above.
            lease_seconds = configs.active_config(session)[1].review_lease_seconds
        # The lease is taken, and the fresh row read back, by one conditional UPDATE.
        task = session.scalars(
            _lease_update(),
            {
                "task_id": task_id,
                "now": now,
                "lease_curator": curator_id,
                "new_lease_token": uuid.uuid4().hex,
                "lease_until": now + timedelta(seconds=lease_seconds),
            },
            execution_options={"populate_existing": True},
        ).first()
        # None: another claimer took it between our read and our update; nothing changed,
        # so try the next task in the same transaction.
        if task is not None:
            # The claimer shows the slate and alternates (candidates), never the per-position pmfs.
            load_decision(session, task, Decision.position_pmfs)
            if task.decision.status == DecisionStatus.PENDING_REVIEW:
                task.decision.status = DecisionStatus.IN_REVIEW
            session.flush()
            return task
    return None


# The claim's statements are built once per process and bound per call: building them (an
# aliased EXISTS, the skip order) cost more than running them.
def _now_param() -> BindParameter[datetime]:
    # Typed as the columns it is compared with (aware UTC in, naive UTC stored).
    return bindparam("now", type_=UTCDateTime())


@cache
def _held_query() -> Select[ReviewTask]:
    return select(ReviewTask).where(
        ReviewTask.curator_id == bindparam("curator_id"),
        ReviewTask.status == TaskStatus.CLAIMED,
        ReviewTask.leased_until >= bindparam("now"),
    )


@cache
def _next_task_query(lock: bool, excluding: bool) -> Select[int]:
    now = _now_param()
    curator_id = bindparam("curator_id", type_=Integer())
    conditions = [claimable(now), double_review.not_reviewed_by(curator_id)]
    if excluding:
        conditions.append(ReviewTask.id != bindparam("excluding"))
    query = (
        select(ReviewTask.id)
        .where(*conditions)
        # Tasks this curator skipped come last, so "next" never hands back a skipped task
        # while anything else waits.
        .order_by(skipped_by(curator_id), *QUEUE_ORDER)
        .limit(1)
    )
    return query.with_for_update(skip_locked=True) if lock else query


@cache
def _lease_update() -> ReturningUpdate[ReviewTask]:
    return (
        update(ReviewTask)
        .where(ReviewTask.id == bindparam("task_id"), claimable(_now_param()))
        .values(
            status=TaskStatus.CLAIMED,
            curator_id=bindparam("lease_curator"),
            lease_token=bindparam("new_lease_token"),
            leased_until=bindparam("lease_until"),
            claimed_at=bindparam("now"),
            first_claimed_at=func.coalesce(ReviewTask.first_claimed_at, _now_param()),
        )
        .returning(ReviewTask)
    )


def load_decision(session: Session, task: ReviewTask, *deferred: Any) -> Decision:
    """The task's decision without the bulky JSON columns this request does not use.

    A deferred column still loads on first access. It is set as `task.decision` directly:
    a lazy load from a task read with populate_existing would fetch the whole row again.
    """
    decision = session.get(
        Decision, task.decision_id, options=[defer(column) for column in deferred]
    )
    assert decision is not None
    set_committed_value(task, "decision", decision)
    return decision


def release(
    session: Session,
    task_id: int,
    curator_id: int,
    now: datetime | None = None,
    lease_token: str | None = None,
) -> None:
    """Give a held task back to the queue (only this lease's, when `lease_token` is given).

    Flushes; the caller commits.
    """
    now = now or utcnow()
    task = session.get(ReviewTask, task_id, populate_existing=True, with_for_update=True)
    if task is None:
        raise TaskNotFound(f"no review task {task_id}")
    if task.status != TaskStatus.CLAIMED or task.curator_id != curator_id:
        raise LeaseLost("you do not hold this task")
    if lease_token is not None and task.lease_token != lease_token:
        raise LeaseLost("this lease token is not the task's current lease")
    if task.leased_until is None or task.leased_until < now:
        raise LeaseLost("your lease on this task ran out; it is back in the queue")
    task.status, task.curator_id, task.lease_token, task.leased_until = (
        TaskStatus.OPEN,
        None,
        None,
        None,
    )
    if task.decision.status == DecisionStatus.IN_REVIEW:
        task.decision.status = DecisionStatus.PENDING_REVIEW
    session.flush()


def renew_lease(
    session: Session, task_id: int, curator_id: int, lease_token: str, now: datetime | None = None
) -> datetime:
    """Extend a live lease by the configured lease time (the review page's heartbeat). Flushes.

    A lease that already ran out is not revived: the task went back to the queue, and a
    colleague may hold it by now.
    """
    now = now or utcnow()
    _, config = configs.active_config(session)
    until = now + timedelta(seconds=config.review_lease_seconds)
    update_live_lease(session, task_id, curator_id, lease_token, now, {"leased_until": until})
    return until
