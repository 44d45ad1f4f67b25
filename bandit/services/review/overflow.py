"""Queue upkeep: expired leases go back to the queue; tasks past the review SLA overflow.

The overflow policy of the active config decides what a missed SLA means: with
``deliver_unreviewed`` the policy's slate goes out unreviewed and the task is closed as
overflowed; with ``hold`` the task keeps waiting (marked held) and the slate waits with it.
Either way the task row records it, so overflow is counted per policy.
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
    """What one pass changed."""

    leases_expired: int
    delivered_unreviewed: int
    held: int
    fallbacks_delivered: int = 0


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


def overflow_overdue(session: Session, now: datetime) -> tuple[int, int]:
    """Apply the overflow policy to open tasks past their SLA; returns (delivered, held)."""
    query = select(ReviewTask).where(_past_sla(now))
    if is_postgresql(session):
        # A curator claiming one of these rows right now keeps it; we take it on the next pass.
        query = query.with_for_update(skip_locked=True)
    overdue = session.scalars(query).all()
    if not overdue:  # the usual case: every claim runs upkeep first, and most find nothing
        return 0, 0
    _, config = configs.active_config(session)
    delivered = held = 0
    for task in overdue:
        if config.overflow_policy == OverflowPolicy.HOLD:
            task.overflow = Overflow.HELD
            held += 1
            continue
        task.status, task.overflow = TaskStatus.OVERFLOWED, Overflow.DELIVERED_UNREVIEWED
        decision = task.decision
        if decision.delivered_slate is None:
            deliver_policy_slate(session, decision, decision_config(session, decision), now)
        delivered += 1
    return delivered, held


def deliver_fallbacks(session: Session, now: datetime) -> int:
    """Send out unreviewed the open slates whose client fallback time has passed."""
    query = select(ReviewTask).where(_fallback_due(now))
    if is_postgresql(session):
        query = query.with_for_update(skip_locked=True)
    delivered = 0
    for task in session.scalars(query):
        task.status, task.overflow = TaskStatus.OVERFLOWED, Overflow.CLIENT_FALLBACK
        decision = task.decision
        if decision.delivered_slate is None:
            deliver_policy_slate(session, decision, decision_config(session, decision), now)
            delivered += 1
    return delivered


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
    fallbacks = deliver_fallbacks(session, now)
    delivered, held = overflow_overdue(session, now)
    session.flush()
    return UpkeepReport(expired, delivered, held, fallbacks)


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
