"""Delayed rewards from clients, and default rewards for events that waited too long."""

from __future__ import annotations

import math
from datetime import datetime

from sqlalchemy import exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bandit.db.models import Decision, Outcome, utcnow
from bandit.engine.vocabulary import DecisionStatus, RewardSource
from bandit.services.decisions import find_decision
from bandit.services.delivery import decision_config, delivered_item_ids

DEFAULT_KEY = "*default*"
MAX_ABS_REWARD = 1e6
SOURCE_LENGTH = 120


class RewardError(Exception):
    """A reward cannot be accepted (the request itself is wrong)."""


class EventNotFound(RewardError):
    """No decision has that event id."""


class RewardConflict(RewardError):
    """A different reward is already recorded for this event or item."""


def record_reward(
    session: Session,
    event_id: str,
    value: float,
    item_id: str | None,
    source: str,
    now: datetime | None = None,
) -> tuple[Outcome, bool]:
    """Store a client's reward; the same (event, item) twice is accepted once. Flushes.

    Returns the outcome and whether this call created it.
    """
    now = now or utcnow()
    if not math.isfinite(value) or abs(value) > MAX_ABS_REWARD:
        raise RewardError(f"value: must be a finite number within ±{MAX_ABS_REWARD:g}")
    # The row lock orders this reward against a concurrent default-reward pass on PostgreSQL
    # (SQLite's BEGIN IMMEDIATE already serialises writers), so one of them sees the other.
    decision = find_decision(session, event_id, lock=True)
    if decision is None:
        raise EventNotFound(f"unknown event {event_id!r}")
    key = item_id or ""
    existing = _outcome(session, decision.id, key)
    if existing is not None:
        _check_same_value(existing, value)
        return existing, False
    if decision.status not in (DecisionStatus.DELIVERED, DecisionStatus.REWARDED):
        raise RewardConflict("the event is still awaiting review; its slate was not delivered")
    if item_id is not None:
        if item_id not in delivered_item_ids(decision):
            raise RewardError(f"item_id: {item_id!r} is not in the delivered slate of this event")
    _check_one_granularity(session, decision.id, item_id)
    defaulted = _outcome(session, decision.id, DEFAULT_KEY) is not None
    outcome = Outcome(
        decision_id=decision.id,
        item_key=key,
        value=float(value),
        is_default=False,
        after_default=defaulted,
        source=source[:SOURCE_LENGTH],
        created_at=now,
    )
    try:
        with session.begin_nested():
            session.add(outcome)
            decision.status = DecisionStatus.REWARDED
            session.flush()
    except IntegrityError:
        # A concurrent retry of the same reward got there first (the unique key said so).
        stored = _outcome(session, decision.id, key)
        if stored is None:
            raise
        _check_same_value(stored, value)
        return stored, False
    return outcome, True


def _check_same_value(stored: Outcome, value: float) -> None:
    if stored.value != value:
        raise RewardConflict(
            f"value: a reward of {stored.value:g} is already recorded for this event and item"
        )


def _check_one_granularity(session: Session, decision_id: int, item_id: str | None) -> None:
    # An event-level reward is learned on every delivered item, so mixing it with per-item
    # rewards would count an item twice.
    others = session.scalars(
        select(Outcome.item_key).where(
            Outcome.decision_id == decision_id, Outcome.item_key != DEFAULT_KEY
        )
    ).all()
    if item_id is None and others:
        raise RewardConflict(
            "item_id: this event already has per-item rewards; report the reward per item"
        )
    if item_id is not None and "" in others:
        raise RewardConflict(
            "item_id: this event already has an event-level reward; per-item rewards would "
            "count its items twice"
        )


def _outcome(session: Session, decision_id: int, key: str) -> Outcome | None:
    return session.scalars(
        select(Outcome).where(Outcome.decision_id == decision_id, Outcome.item_key == key)
    ).first()


def assign_default_rewards(session: Session, now: datetime | None = None) -> int:
    """Give the config's default reward to delivered events whose wait has run out.

    The default stands for every delivered item with no customer outcome by then (an event
    with per-item rewards for some items gets it for the others); an event-level customer
    reward covers every item, so such events get none. Does not commit; returns how many
    events got one.
    """
    now = now or utcnow()
    overdue = session.scalars(
        select(Decision)
        .where(
            Decision.status.in_((DecisionStatus.DELIVERED, DecisionStatus.REWARDED)),
            Decision.reward_due_at.is_not(None),
            Decision.reward_due_at <= now,
            ~exists().where(
                Outcome.decision_id == Decision.id, Outcome.item_key.in_((DEFAULT_KEY, ""))
            ),
        )
        # A row a client reward is writing is skipped; the next pass sees it settled.
        .with_for_update(skip_locked=True)
    ).all()
    for decision in overdue:
        config = decision_config(session, decision)
        session.add(
            Outcome(
                decision_id=decision.id,
                item_key=DEFAULT_KEY,
                value=config.default_reward,
                is_default=True,
                source=RewardSource.DEFAULT,
                created_at=now,
            )
        )
        decision.status = DecisionStatus.REWARDED
    session.flush()
    return len(overdue)
