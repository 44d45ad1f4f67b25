"""What a curator is told of a task's route: under risk-controlled routing, nothing.

An audit is an auto-eligible slate delivered at once and queued as a review-after task, so
any view that tells review-after from review-before tasks narrows audits down to the
review-after ones, and the review-after tasks that are not audits are only the slates
between `review_threshold` and the automatic threshold. Nothing keeps that band full: with
`review_threshold` = 1.0 (what docs/trust.md recommends) it is empty, and it empties too
whenever a learn pass lowers the automatic threshold to `review_threshold` or below. So for
every task of a decision made under risk-controlled routing a curator who is not an admin
is shown neither its route nor whether its slate already went out: the same word "review",
the same notice, the same overflow label. Admins see the routes (and the audits) as stored.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bandit.db.models import PolicyConfigRow, ReviewTask
from bandit.engine.vocabulary import Overflow, Route, RoutingMode
from bandit.services.delivery import decision_config, stored_config

# The route a curator sees of a blinded task (no Route has this value).
BLINDED_ROUTE = "review"
# The overflow label a curator sees of a blinded task past its SLA under `hold`: "held"
# (a review-before slate waiting) and "check_overdue" (a slate already out) would say which.
BLINDED_OVERDUE = "overdue"


def route_hidden(session: Session, task: ReviewTask, is_admin: bool) -> bool:
    """Whether the viewer must not be told this task's route (see the module docstring)."""
    if is_admin:
        return False
    return decision_config(session, task.decision).routing_mode == RoutingMode.RISK_CONTROLLED


def shown_route(task: ReviewTask, hidden: bool) -> str:
    """The route as the viewer reads it."""
    return BLINDED_ROUTE if hidden else task.route


def already_delivered(task: ReviewTask, hidden: bool) -> bool | None:
    """Whether the slate of a first-round task went out before its review (None: not told)."""
    if hidden:
        return None
    return task.route == Route.REVIEW_AFTER


def shown_overflow(task: ReviewTask, hidden: bool, now: datetime) -> str:
    """The task's overflow label as the viewer reads it ('' when it has none).

    A blinded task reads "overdue" once its SLA has passed, whatever its route: a
    review-before task that arrives at a full queue under `hold` is labelled held at once,
    while a review-after one is labelled only when its SLA passes, so the label alone would
    pick out the review-before tasks from the start.
    """
    label = task.overflow or ""
    if not hidden or label not in (Overflow.HELD, Overflow.CHECK_OVERDUE):
        return label
    return BLINDED_OVERDUE if past_sla(task, now) else ""


def past_sla(task: ReviewTask, now: datetime) -> bool:
    """Whether the task has waited past its review SLA."""
    return task.due_at is not None and task.due_at <= now


def blinded_config_ids(session: Session) -> Collection[int]:
    """The stored config versions that route in risk-controlled mode (few: one per save)."""
    ids = session.scalars(select(PolicyConfigRow.id)).all()
    return {
        config_id
        for config_id in ids
        if stored_config(session, config_id).routing_mode == RoutingMode.RISK_CONTROLLED
    }


def overdue_counts_merged(session: Session, is_admin: bool) -> bool:
    """Whether queue counts show one "overdue" figure instead of held (review-before slates
    waiting past their SLA) and checks overdue (slates already out): a curator who may see
    blinded tasks is not told how many of the overdue ones went out."""
    return not is_admin and bool(blinded_config_ids(session))
