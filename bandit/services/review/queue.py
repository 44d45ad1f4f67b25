"""The review queue's order and intake: uncertainty first, aging by wait, capacity overflow.

A task's priority is its uncertainty measure (0 to 1, 1 = most informative) plus its wait as a
share of the review SLA, so a task that has waited one SLA outranks any fresh task. Because
the wait term grows at the same rate for every task, that order is fixed at intake: sorting
by ``queue_key = created_at - measure x SLA`` (seconds, smallest first) is the same as sorting
by priority at any later instant, and lets the database serve the queue from an index.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

from sqlalchemy import ColumnElement, Select, and_, func, or_, select, update
from sqlalchemy.orm import Session

from bandit.db.models import Decision, ReviewTask
from bandit.engine.config import PolicyConfig
from bandit.engine.vocabulary import DecisionStatus, Overflow, OverflowPolicy, Route, TaskStatus

QUEUE_ORDER = (ReviewTask.queue_key, ReviewTask.id)


def queue_key(created_at: datetime, measure: float, sla_seconds: int) -> float:
    """The aging sort key: creation time (epoch seconds) moved earlier by measure x SLA."""
    return created_at.timestamp() - measure * sla_seconds


def priority_at(task: ReviewTask, now: datetime) -> float:
    """measure + wait / SLA: what the queue sorts by, as shown to curators."""
    if task.due_at is None:
        return task.priority
    sla = max((task.due_at - task.created_at).total_seconds(), 1.0)
    return task.priority + max((now - task.created_at).total_seconds(), 0.0) / sla


def claimable(now: datetime | ColumnElement[datetime]) -> ColumnElement[bool]:
    """Open tasks, and claimed ones whose lease ran out."""
    return or_(ReviewTask.status == TaskStatus.OPEN, lease_ran_out(now))


def lease_ran_out(now: datetime | ColumnElement[datetime]) -> ColumnElement[bool]:
    """Claimed tasks whose lease has expired (upkeep puts them back in the queue)."""
    return and_(ReviewTask.status == TaskStatus.CLAIMED, ReviewTask.leased_until < now)


def requeue(session: Session, which: ColumnElement[bool]) -> int:
    """Put the claimed tasks matching `which` back in the queue, unleased; returns how many.

    A decision left in review with nobody holding its task is waiting for review again
    (lease expiry and undo's release of the curator's "next" both free tasks this way).
    Both UPDATEs run at once and bypass the identity map; the caller commits.
    """
    freed = session.execute(
        update(ReviewTask)
        .where(which)
        .values(status=TaskStatus.OPEN, curator_id=None, lease_token=None, leased_until=None)
        .execution_options(synchronize_session=False)
    )
    count = int(freed.rowcount or 0)  # type: ignore[attr-defined]
    if count:
        waiting_again = select(ReviewTask.decision_id).where(ReviewTask.status == TaskStatus.OPEN)
        session.execute(
            update(Decision)
            .where(Decision.status == DecisionStatus.IN_REVIEW, Decision.id.in_(waiting_again))
            .values(status=DecisionStatus.PENDING_REVIEW)
            .execution_options(synchronize_session=False)
        )
    return count


def backlog(session: Session) -> int:
    """Tasks waiting for or held by a curator."""
    return int(session.scalar(_backlog_query()) or 0)


@cache
def _backlog_query() -> Select[int]:
    # Built once per process: every routed decision asks (admission).
    return (
        select(func.count())
        .select_from(ReviewTask)
        .where(ReviewTask.status.in_((TaskStatus.OPEN, TaskStatus.CLAIMED)))
    )


def capacity_within_sla(config: PolicyConfig) -> int:
    """How many tasks the curators can review within one SLA."""
    return max(1, int(config.curator_capacity_per_hour * config.review_sla_seconds / 3600))


def queue_full(session: Session, config: PolicyConfig) -> bool:
    """Whether the curators cannot take one more task within the SLA."""
    return backlog(session) >= capacity_within_sla(config)


def admission(session: Session, config: PolicyConfig, route: str) -> str | None:
    """The overflow label a new task on `route` starts with: None when it joins the queue as
    any other (there is room, or under ``hold`` its slate goes out at rank anyway)."""
    if not queue_full(session, config):
        return None
    # A review-after slate goes out at rank whatever the queue holds: past capacity only
    # the curator's check is at stake, never a delivery (as upkeep labels it past the SLA).
    slate_out = route != Route.REVIEW_BEFORE
    if config.overflow_policy == OverflowPolicy.DELIVER_UNREVIEWED:
        return Overflow.CLOSED_UNREVIEWED if slate_out else Overflow.DELIVERED_UNREVIEWED
    # hold: a review-before slate waits with its task; a check just waits, and upkeep labels
    # it check_overdue if its SLA passes.
    return None if slate_out else Overflow.HELD


# Labels that close a task at intake: its slate went out unreviewed, or by its route anyway.
CLOSED_AT_INTAKE = (Overflow.DELIVERED_UNREVIEWED, Overflow.CLOSED_UNREVIEWED)


def new_task(
    decision: Decision,
    route: str,
    uncertainty: Mapping[str, float],
    config: PolicyConfig,
    now: datetime,
    overflow: str | None,
) -> ReviewTask:
    """The review task of a routed decision, ordered by the config's uncertainty measure."""
    measure = float(uncertainty[config.uncertainty_measure])
    # Closed at intake (past capacity with deliver-unreviewed), the task is over as it
    # starts: it never waits.
    over = overflow in CLOSED_AT_INTAKE
    return ReviewTask(
        decision_id=decision.id,
        route=route,
        status=TaskStatus.OVERFLOWED if over else TaskStatus.OPEN,
        priority=measure,
        measure_name=config.uncertainty_measure,
        queue_key=queue_key(now, measure, config.review_sla_seconds),
        due_at=now + timedelta(seconds=config.review_sla_seconds),
        overflow=overflow,
        completed_at=now if over else None,
        created_at=now,
    )


@dataclass(frozen=True)
class QueueSummary:
    """Counts the queue page shows."""

    open: int
    claimed: int
    done: int
    overflowed: int
    held: int
    oldest_wait_seconds: float | None
    # Waiting past their SLA under hold with the slate already out (the check is late).
    checks_overdue: int = 0
    # Held or overdue checks whose SLA has passed: the one count that does not tell a
    # review-before task held at a full queue's intake from a check (blinded views).
    past_sla: int = 0


def queue_summary(session: Session, now: datetime) -> QueueSummary:
    """How many tasks wait, are held or overdue, were done or overflowed, and the oldest wait."""
    counts = dict(
        session.execute(select(ReviewTask.status, func.count()).group_by(ReviewTask.status)).all()
    )
    labelled = dict(
        session.execute(
            select(ReviewTask.overflow, func.count())
            .where(
                ReviewTask.overflow.in_((Overflow.HELD, Overflow.CHECK_OVERDUE)),
                ReviewTask.status.in_((TaskStatus.OPEN, TaskStatus.CLAIMED)),
            )
            .group_by(ReviewTask.overflow)
        ).all()
    )
    past_sla = session.scalar(
        select(func.count()).where(
            ReviewTask.overflow.in_((Overflow.HELD, Overflow.CHECK_OVERDUE)),
            ReviewTask.status.in_((TaskStatus.OPEN, TaskStatus.CLAIMED)),
            ReviewTask.due_at <= now,
        )
    )
    oldest = session.scalar(
        select(func.min(ReviewTask.created_at)).where(
            ReviewTask.status.in_((TaskStatus.OPEN, TaskStatus.CLAIMED))
        )
    )
    return QueueSummary(
        open=int(counts.get(TaskStatus.OPEN, 0)),
        claimed=int(counts.get(TaskStatus.CLAIMED, 0)),
        done=int(counts.get(TaskStatus.DONE, 0)),
        overflowed=int(counts.get(TaskStatus.OVERFLOWED, 0)),
        held=int(labelled.get(Overflow.HELD, 0)),
        oldest_wait_seconds=None if oldest is None else (now - oldest).total_seconds(),
        checks_overdue=int(labelled.get(Overflow.CHECK_OVERDUE, 0)),
        past_sla=int(past_sla or 0),
    )


def waiting_tasks(session: Session, limit: int = 50) -> list[ReviewTask]:
    """The queue in the order curators will get it."""
    return list(
        session.scalars(
            select(ReviewTask)
            .where(ReviewTask.status.in_((TaskStatus.OPEN, TaskStatus.CLAIMED)))
            .order_by(*QUEUE_ORDER)
            .limit(limit)
        )
    )
