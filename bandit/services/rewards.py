"""Delayed rewards from clients, and default rewards for events that waited too long."""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import cast

from sqlalchemy import Insert, Select, Table, Update, bindparam, exists, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, load_only, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from bandit.db.models import Decision, EventChange, Outcome, utcnow
from bandit.engine.vocabulary import DecisionStatus, EventChangeKind, RewardSource
from bandit.services.corrections import corrections_of, current_slate
from bandit.services.delivery import (
    add_change,
    change_row,
    decision_config,
    delivered_item_ids,
    delivered_items,
    delivered_slate,
)
from bandit.services.rounds import RewardRow, within_wait

DEFAULT_KEY = "*default*"
OUTCOMES = cast(Table, Outcome.__table__)
DECISIONS = cast(Table, Decision.__table__)
EVENT_CHANGES = cast(Table, EventChange.__table__)
# Every column an outcome row is written with (the id comes back from the INSERT).
OUTCOME_COLUMNS = tuple(column.key for column in OUTCOMES.columns if column.key != "id")
MAX_ABS_REWARD = 1e6
SOURCE_LENGTH = 120
# Tries of one report against concurrent retries of the same rewards.
INSERT_ATTEMPTS = 3


class RewardError(Exception):
    """A reward cannot be accepted (the request itself is wrong).

    `index` is the position of the refused reward in a batch (None when not known).
    """

    def __init__(self, message: str, index: int | None = None) -> None:
        super().__init__(message)
        self.index = index


class EventNotFound(RewardError):
    """No decision has that event id."""


class RewardConflict(RewardError):
    """A different reward is already recorded for this event or item."""


@dataclass(frozen=True)
class RewardEntry:
    """One reward in a batch: for the event, or one of its items (`item_id`)."""

    event_id: str
    item_id: str | None
    value: float


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
    return record_rewards(session, event_id, [(item_id, value)], source, now)[0]


def record_rewards(
    session: Session,
    event_id: str,
    rewards: Sequence[tuple[str | None, float]],
    source: str,
    now: datetime | None = None,
) -> list[tuple[Outcome, bool]]:
    """Store one report of an event's rewards, `(item_id or None, value)` each. Flushes.

    See `record_reward_batch`, of which this is the one-event case.
    """
    entries = [RewardEntry(event_id, item_id, value) for item_id, value in rewards]
    return record_reward_batch(session, entries, source, now)


def record_reward_batch(
    session: Session,
    entries: Sequence[RewardEntry],
    source: str,
    now: datetime | None = None,
) -> list[tuple[Outcome, bool]]:
    """Store rewards for any number of events at once. Flushes.

    The same as recording them one by one in order (each (event, item) is accepted once, a
    different value for it conflicts), but the events are locked and read in one query and
    the new outcomes are written together; nothing is written if any of them is refused (the
    error's `index` says which). Returns each reward's outcome and whether this call created
    it, in the order given.
    """
    now = now or utcnow()
    for index, entry in enumerate(entries):
        if not math.isfinite(entry.value) or abs(entry.value) > MAX_ABS_REWARD:
            raise RewardError(f"value: must be a finite number within ±{MAX_ABS_REWARD:g}", index)
    # The row locks order this batch against a concurrent default-reward pass on PostgreSQL
    # (SQLite's BEGIN IMMEDIATE already serialises writers), so one of them sees the other.
    # They are taken in id order, so two batches sharing events cannot deadlock.
    event_ids = list(dict.fromkeys(entry.event_id for entry in entries))
    decisions = {
        decision.event_id: decision
        for decision in session.scalars(_locked_for_reward(), {"event_ids": event_ids})
    }
    for index, entry in enumerate(entries):
        if entry.event_id not in decisions:
            raise EventNotFound(f"unknown event {entry.event_id!r}", index)
    for _ in range(INSERT_ATTEMPTS):
        # Every outcome of these events in one query (a slate has a handful): the repeat
        # check, the granularity rule and the after-default flag all read it.
        stored = _outcomes(session, [decision.id for decision in decisions.values()])
        answers, new = _plan(session, decisions, stored, entries, source, now)
        if not new:
            return answers
        try:
            # A savepoint: the outbox rows and the status share it, so a lost race leaves no
            # "rewarded" behind. Core statements, not the ORM's flush: every reward runs them.
            with session.begin_nested():
                _write_outcomes(session, decisions, new, now)
            return answers
        except IntegrityError:
            # A concurrent retry of one of these rewards got there first (the unique key said
            # so); plan again against what is stored now.
            continue
    raise RewardError("the events' rewards kept changing under this report; retry it")


def _write_outcomes(
    session: Session, decisions: dict[str, Decision], new: Sequence[Outcome], now: datetime
) -> None:
    rows = [{column: getattr(outcome, column) for column in OUTCOME_COLUMNS} for outcome in new]
    ids = session.scalars(_insert_outcomes(), rows).all()
    by_id = {decision.id: decision for decision in decisions.values()}
    rewarded = list(dict.fromkeys(outcome.decision_id for outcome in new))
    payloads = [_customer_payload(session, by_id[o.decision_id], o) for o in new]
    session.execute(
        _set_status(), {"decision_ids": rewarded, "new_status": DecisionStatus.REWARDED}
    )
    kind = EventChangeKind.REWARDED
    session.execute(
        insert(EVENT_CHANGES),
        [
            change_row(o.decision_id, by_id[o.decision_id].event_id, kind, payload, now)
            for o, payload in zip(new, payloads, strict=True)
        ],
    )
    # The in-memory rows now say what is stored, without a second write at commit.
    for decision_id in rewarded:
        set_committed_value(by_id[decision_id], "status", DecisionStatus.REWARDED)
    for outcome, outcome_id in zip(new, ids, strict=True):
        outcome.id = outcome_id
        make_transient_to_detached(outcome)
        session.add(outcome)


@cache
def _insert_outcomes() -> Insert:
    # The ids in the order of the rows sent, so each in-memory outcome gets its own.
    return insert(OUTCOMES).returning(OUTCOMES.c.id, sort_by_parameter_order=True)


@cache
def _set_status() -> Update:
    return (
        update(DECISIONS)
        .where(DECISIONS.c.id.in_(bindparam("decision_ids", expanding=True)))
        .values(status=bindparam("new_status"))
    )


@cache
def _locked_for_reward() -> Select[Decision]:
    # Built once per process; only the columns a reward reads, not the large proposal ones.
    return (
        select(Decision)
        .options(
            load_only(
                Decision.id,
                Decision.event_id,
                Decision.status,
                Decision.delivered_slate,
                Decision.reward_due_at,
                Decision.policy_config_id,
            )
        )
        .where(Decision.event_id.in_(bindparam("event_ids", expanding=True)))
        .order_by(Decision.id)
        .with_for_update()
    )


def _plan(
    session: Session,
    decisions: dict[str, Decision],
    stored: dict[int, dict[str, Outcome]],
    entries: Sequence[RewardEntry],
    source: str,
    now: datetime,
) -> tuple[list[tuple[Outcome, bool]], list[Outcome]]:
    """Each reward's answer and the outcomes to insert, checked as if recorded in order."""
    answers: list[tuple[Outcome, bool]] = []
    new: list[Outcome] = []
    rewardable: dict[int, set[str]] = {}
    for index, entry in enumerate(entries):
        decision = decisions[entry.event_id]
        outcomes = stored[decision.id]  # every locked decision has an entry, maybe empty
        try:
            answer = _planned(session, decision, outcomes, entry, source, now, rewardable)
        except RewardError as error:
            error.index = index
            raise
        if answer[1]:
            new.append(answer[0])
        answers.append(answer)
    return answers, new


def _planned(
    session: Session,
    decision: Decision,
    outcomes: dict[str, Outcome],
    entry: RewardEntry,
    source: str,
    now: datetime,
    rewardable: dict[int, set[str]],
) -> tuple[Outcome, bool]:
    """One reward's answer; a new outcome is added to `outcomes` (not yet written)."""
    key = entry.item_id or ""
    existing = outcomes.get(key)
    if existing is not None:
        _check_same_value(existing, entry.value)
        return existing, False
    check_delivered(decision)
    if decision.awaiting_activation:
        raise RewardConflict(
            "the event was ranked with deferActivation and is not activated yet: activate it "
            "(POST /personalizer/v1.0/events/{eventId}/activate) before sending its reward"
        )
    if entry.item_id is not None and not _may_reward(session, decision, entry.item_id, rewardable):
        raise RewardError(
            f"item_id: {entry.item_id!r} is neither in the delivered nor in the current slate "
            "of this event"
        )
    _check_one_granularity(outcomes.keys(), entry.item_id)
    outcome = Outcome(
        decision_id=decision.id,
        item_key=key,
        value=float(entry.value),
        is_default=False,
        after_default=DEFAULT_KEY in outcomes,
        source=source[:SOURCE_LENGTH],
        created_at=now,
    )
    outcomes[key] = outcome
    return outcome, True


def check_delivered(decision: Decision) -> None:
    """Refuse a reward for a slate that has not gone out (still in review): nothing to judge."""
    if decision.status not in (DecisionStatus.DELIVERED, DecisionStatus.REWARDED):
        raise RewardConflict("the event is still awaiting review; its slate was not delivered")


def _may_reward(
    session: Session, decision: Decision, item_id: str, rewardable: dict[int, set[str]]
) -> bool:
    # The customer had the delivered items; a client that acted on a correction sent its
    # replacements too (their rewards are kept, but are no policy draw to learn from). The
    # corrections are read only for an item outside the delivered slate.
    if item_id in delivered_item_ids(decision):
        return True
    if decision.id not in rewardable:
        current = current_slate(delivered_slate(decision), corrections_of(session, decision))
        rewardable[decision.id] = {entry["item_id"] for entry in current}
    return item_id in rewardable[decision.id]


def reward_payload(
    outcome: RewardRow,
    delivered: Sequence[str],
    due: datetime | None,
    default_reward: float,
    answered: Collection[str] = (),
) -> dict[str, object]:
    """The `rewarded` message's data, which the event document's outcomes repeat.

    `delivered` is the delivered slate's items in position order, `due` the decision's
    `reward_due_at`, `default_reward` its config's, and `answered` (read for a default only)
    the items with a customer outcome stored before the default. A customer outcome stored
    after the wait (`late`) is kept for replay and the learner uses `learned_instead`, the
    default, in its place (the rule of `bandit.services.rounds`); a default stands for
    `item_ids`, the delivered items with no customer outcome before it.
    """
    if outcome.is_default:
        items = [item_id for item_id in delivered if item_id not in answered]
    else:
        items = [outcome.item_key] if outcome.item_key else list(delivered)
    late = not outcome.is_default and not within_wait(outcome, due)
    return {
        "item_id": outcome.item_key or None if not outcome.is_default else None,
        "item_ids": items,
        "value": outcome.value,
        "is_default": outcome.is_default,
        "after_default": outcome.after_default,
        "late": late,
        "learned_instead": default_reward if late else None,
        "rewarded_at": outcome.created_at.isoformat(),
    }


def _customer_payload(session: Session, decision: Decision, outcome: Outcome) -> dict[str, object]:
    items = delivered_items(decision)
    default = decision_config(session, decision).default_reward
    return reward_payload(outcome, items, decision.reward_due_at, default)


def _check_same_value(stored: Outcome, value: float) -> None:
    if stored.value != value:
        raise RewardConflict(
            f"value: a reward of {stored.value:g} is already recorded for this event and item"
        )


def _check_one_granularity(keys: Iterable[str], item_id: str | None) -> None:
    # An event-level reward is learned on every delivered item, so mixing it with per-item
    # rewards would count an item twice.
    others = [k for k in keys if k != DEFAULT_KEY]
    if item_id is None and others:
        raise RewardConflict(
            "item_id: this event already has per-item rewards; report the reward per item"
        )
    if item_id is not None and "" in others:
        raise RewardConflict(
            "item_id: this event already has an event-level reward; per-item rewards would "
            "count its items twice"
        )


def _outcomes(session: Session, decision_ids: Sequence[int]) -> dict[int, dict[str, Outcome]]:
    """Each decision's stored outcomes by item key ("" for the event, DEFAULT_KEY)."""
    stored: dict[int, dict[str, Outcome]] = {decision_id: {} for decision_id in decision_ids}
    for outcome in session.scalars(_stored_outcomes(), {"decision_ids": list(decision_ids)}):
        stored[outcome.decision_id][outcome.item_key] = outcome
    return stored


@cache
def _stored_outcomes() -> Select[Outcome]:
    return select(Outcome).where(Outcome.decision_id.in_(bindparam("decision_ids", expanding=True)))


def assign_default_rewards(session: Session, now: datetime | None = None) -> int:
    """Give the config's default reward to delivered events whose wait has run out.

    The default stands for every delivered item with no customer outcome by then (an event
    with per-item rewards for some items gets it for the others, and its message lists them);
    an event-level customer reward covers every item, so such events get none, and neither do
    events whose delivered items all have their outcome (in time, or late with the default
    already standing in). Each event is dealt with once (`default_pass_at`). Does not commit;
    returns how many events got one.
    """
    now = now or utcnow()
    overdue = session.scalars(
        select(Decision)
        .where(
            Decision.status.in_((DecisionStatus.DELIVERED, DecisionStatus.REWARDED)),
            Decision.reward_due_at.is_not(None),
            Decision.reward_due_at <= now,
            Decision.default_pass_at.is_(None),
            ~exists().where(
                Outcome.decision_id == Decision.id, Outcome.item_key.in_((DEFAULT_KEY, ""))
            ),
        )
        # A row a client reward is writing is skipped; the next pass sees it settled.
        .with_for_update(skip_locked=True)
    ).all()
    stored = _outcomes(session, [decision.id for decision in overdue]) if overdue else {}
    assigned = 0
    for decision in overdue:
        decision.default_pass_at = now
        answered = set(stored[decision.id])
        delivered = delivered_items(decision)
        if all(item_id in answered for item_id in delivered):
            continue  # a default would stand for no item
        config = decision_config(session, decision)
        outcome = Outcome(
            decision_id=decision.id,
            item_key=DEFAULT_KEY,
            value=config.default_reward,
            is_default=True,
            after_default=False,
            source=RewardSource.DEFAULT,
            created_at=now,
        )
        session.add(outcome)
        decision.status = DecisionStatus.REWARDED
        payload = reward_payload(
            outcome, delivered, decision.reward_due_at, config.default_reward, answered
        )
        add_change(session, decision, EventChangeKind.REWARDED, payload, now)
        assigned += 1
    session.flush()
    return assigned
