"""Queue upkeep: expired leases go back to the queue; tasks past the review SLA overflow.

The overflow policy of the active config decides what a missed SLA means: with
``deliver_unreviewed`` the policy's slate goes out unreviewed and the task is closed as
overflowed; with ``hold`` the task keeps waiting (marked held) and the slate waits with it.
Either way the task row records it, so overflow is counted per policy. A task whose slate had
already gone out (a second opinion, a review-after check or audit, a review-before submit
since undone) has nothing left to deliver or hold: where the SLA or a client fallback would
send a slate, it is closed as overflowed, labelled ``closed_unreviewed``, and not counted as a
delivery; under ``hold``, which never drops a review, it stays open for the curator's late
check, labelled ``check_overdue`` (an overturn still reaches the client as a correction).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache

from sqlalchemy import ColumnElement, Select, and_, bindparam, or_, select
from sqlalchemy.orm import Session

from bandit.db.models import ReviewTask, UTCDateTime, utcnow
from bandit.db.session import is_postgresql
from bandit.engine.vocabulary import Overflow, OverflowPolicy, TaskStatus
from bandit.services import configs
from bandit.services.delivery import decision_config, deliver_policy_slate
from bandit.services.review.queue import lease_ran_out, requeue


@dataclass(frozen=True)
class UpkeepReport:
    """What one pass changed: leases expired, slates sent out unreviewed, tasks held or
    closed, and checks of slates already out marked overdue."""

    leases_expired: int
    delivered_unreviewed: int
    held: int
    fallbacks_delivered: int = 0
    # Closed unreviewed past their SLA or fallback time, their slate already out: no delivery.
    closed_unreviewed: int = 0
    # Past their SLA under hold, their slate already out: left open for the late check.
    checks_overdue: int = 0


# What each pass acts on; upkeep's probe asks for any of them at once.
def _past_sla(now: datetime | ColumnElement[datetime]) -> ColumnElement[bool]:
    """Open tasks past their review SLA that no overflow policy has handled yet."""
    return and_(
        ReviewTask.status == TaskStatus.OPEN,
        ReviewTask.due_at < now,
        ReviewTask.overflow.is_(None),
    )


def _fallback_due(now: datetime | ColumnElement[datetime]) -> ColumnElement[bool]:
    """Open tasks whose client asked for the unreviewed slate by now."""
    return and_(
        ReviewTask.status == TaskStatus.OPEN,
        ReviewTask.fallback_at.is_not(None),
        ReviewTask.fallback_at <= now,
    )


def requeue_expired_leases(session: Session, now: datetime) -> int:
    """Put tasks whose lease ran out back in the queue; returns how many."""
    return requeue(session, lease_ran_out(now))


def overflow_overdue(session: Session, now: datetime) -> tuple[int, int, int, int]:
    """Apply the overflow policy to open tasks past their SLA; returns (delivered, held,
    closed, overdue): slates sent out unreviewed, tasks held, tasks closed with their slate
    already out, and tasks left open with their slate already out (their check overdue)."""
    query = select(ReviewTask).where(_past_sla(now))
    if is_postgresql(session):
        # A curator claiming one of these rows right now keeps it; we take it on the next pass.
        query = query.with_for_update(skip_locked=True)
    overdue = session.scalars(query).all()
    if not overdue:  # the usual case: every claim runs upkeep first, and most find nothing
        return 0, 0, 0, 0
    _, config = configs.active_config(session)
    delivered = held = closed = late = 0
    for task in overdue:
        if config.overflow_policy != OverflowPolicy.HOLD:
            if _close_unreviewed(session, task, Overflow.DELIVERED_UNREVIEWED, now):
                delivered += 1
            else:
                closed += 1
        elif task.decision.delivered_slate is None:
            task.overflow = Overflow.HELD
            held += 1
        else:
            # Nothing to hold; the label also keeps _past_sla (and the probe) off it.
            task.overflow = Overflow.CHECK_OVERDUE
            late += 1
    return delivered, held, closed, late


def deliver_fallbacks(session: Session, now: datetime) -> tuple[int, int]:
    """Send out unreviewed the open slates whose client fallback time has passed; returns
    (delivered, closed), closed: tasks whose slate had already gone out (after an undo)."""
    query = select(ReviewTask).where(_fallback_due(now))
    if is_postgresql(session):
        query = query.with_for_update(skip_locked=True)
    delivered = closed = 0
    for task in session.scalars(query):
        if _close_unreviewed(session, task, Overflow.CLIENT_FALLBACK, now):
            delivered += 1
        else:
            closed += 1
    return delivered, closed


def _close_unreviewed(session: Session, task: ReviewTask, label: str, now: datetime) -> bool:
    """Close an open task nobody reviewed in time, sending out its decision's policy slate
    (the task labelled `label`); False, and labelled closed unreviewed, when that slate had
    already gone out, so that only a delivery made here is labelled and counted as one."""
    task.status, task.completed_at = TaskStatus.OVERFLOWED, now
    decision = task.decision
    if decision.delivered_slate is not None:
        task.overflow = Overflow.CLOSED_UNREVIEWED
        return False
    task.overflow = label
    deliver_policy_slate(session, decision, decision_config(session, decision), now)
    return True


def upkeep(session: Session, now: datetime | None = None) -> UpkeepReport:
    """Expire leases, deliver client fallbacks, then overflow overdue tasks. Flushes.

    Upkeep is the system's own action, not the curator's: callers commit it in its own short
    transaction before the curator's action, so its row locks are not held meanwhile.
    """
    now = now or utcnow()
    # Every claim runs upkeep first and nearly always finds nothing: one probe instead of
    # the three passes' statements.
    if session.scalar(_anything_due(), {"now": now}) is None:
        return UpkeepReport(0, 0, 0, 0)
    expired = requeue_expired_leases(session, now)
    fallbacks, fallbacks_closed = deliver_fallbacks(session, now)
    delivered, held, closed, late = overflow_overdue(session, now)
    session.flush()
    return UpkeepReport(expired, delivered, held, fallbacks, fallbacks_closed + closed, late)


@cache
def _anything_due() -> Select[int]:
    """One task any of upkeep's passes would change, if there is one (built once per
    process)."""
    now = bindparam("now", type_=UTCDateTime())
    return (
        select(ReviewTask.id)
        .where(
            ReviewTask.status.in_((TaskStatus.OPEN, TaskStatus.CLAIMED)),
            or_(lease_ran_out(now), _fallback_due(now), _past_sla(now)),
        )
        .limit(1)
    )
