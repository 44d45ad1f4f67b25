"""What is stored about a customer: their profile and their past slates with outcomes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from bandit.db.models import Decision, Outcome, ReviewTask
from bandit.engine.vocabulary import TaskStatus
from bandit.services.customers import profile_for
from bandit.services.delivery import delivered_item_ids

PAST_SLATES = 5


@dataclass(frozen=True)
class PastSlate:
    """One earlier decision for the customer: what went out and what came back."""

    event_id: str
    created_at: datetime
    delivered: tuple[str, ...]
    kept: tuple[str, ...]
    returned: tuple[str, ...]


@dataclass(frozen=True)
class CustomerHistory:
    """The stored profile (None if the customer is unknown) and recent past slates."""

    customer_id: str
    profile: dict[str, object] | None
    slates: list[PastSlate]

    @property
    def kept(self) -> list[str]:
        """Items the customer kept, newest slate first, without repeats."""
        return list(dict.fromkeys(i for s in self.slates for i in s.kept))

    @property
    def returned(self) -> list[str]:
        """Items the customer returned (a non-positive reported reward), newest first."""
        return list(dict.fromkeys(i for s in self.slates for i in s.returned))


def customer_history(
    session: Session,
    customer_id: str,
    before_event: str | None = None,
    limit: int = PAST_SLATES,
    reviewed_only: bool = False,
) -> CustomerHistory:
    """The customer's stored profile and their latest delivered slates other than `before_event`.

    `reviewed_only` leaves out slates whose review still waits: to a curator who must not
    tell an audit from a review-before task, a slate already out while its review waits is
    an audit (a review-before slate goes out only once reviewed).
    """
    waiting_review = (
        select(ReviewTask.id)
        .where(
            ReviewTask.decision_id == Decision.id,
            ReviewTask.status.in_((TaskStatus.OPEN, TaskStatus.CLAIMED)),
        )
        .exists()
    )
    statement = (
        select(Decision)
        .where(
            Decision.context["customer_id"].as_string() == customer_id,
            Decision.delivered_at.is_not(None),
            *([~waiting_review] if reviewed_only else []),
        )
        .options(selectinload(Decision.proposed), selectinload(Decision.final_slate))
        .order_by(Decision.created_at.desc())
        .limit(limit + 1)
    )
    decisions = [d for d in session.scalars(statement) if d.event_id != before_event][:limit]
    outcomes: dict[int, list[Outcome]] = {}
    if decisions:
        rows = session.scalars(
            select(Outcome).where(
                Outcome.decision_id.in_([d.id for d in decisions]),
                Outcome.is_default.is_(False),
                Outcome.item_key != "",
            )
        )
        for outcome in rows:
            outcomes.setdefault(outcome.decision_id, []).append(outcome)
    slates = []
    for decision in decisions:
        reported = outcomes.get(decision.id, [])
        slates.append(
            PastSlate(
                event_id=decision.event_id,
                created_at=decision.created_at,
                delivered=tuple(sorted(delivered_item_ids(decision))),
                kept=tuple(o.item_key for o in reported if o.value > 0),
                returned=tuple(o.item_key for o in reported if o.value <= 0),
            )
        )
    return CustomerHistory(customer_id, profile_for(session, customer_id), slates)
