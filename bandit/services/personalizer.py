"""Decisions over actions the client sends inline, the way Azure Personalizer's Rank API works.

Inline actions are stored as inactive catalog items (so regular catalog ranks never propose
them) and ranked by the same engine: a catalog index of just this request's actions, the
served model and config, the same pruning, slate draw, logged probabilities, routing and
review queue. The learner then finds their features in the catalog table like any item's.
An action whose id names an active catalog item, sent without features, is that item.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bandit.db.models import CatalogItem, Decision, PersonalizerEvent, utcnow
from bandit.engine.catalog import CatalogIndex, CatalogRow
from bandit.engine.recommender import Recommender
from bandit.services import rewards
from bandit.services.catalog_store import as_row, items_by_id
from bandit.services.decisions import RankRequest, find_decision, log_decision, logged_first
from bandit.services.delivery import decision_config, delivered_slate
from bandit.services.runtime import EngineRuntime

INLINE_CATEGORY = "inline"
CATEGORY_FEATURE = "category"


class PersonalizerError(ValueError):
    """A Personalizer-style request that cannot be served as asked (the message names the field)."""


class EventIdTaken(rewards.RewardConflict):
    """The event id belongs to a decision not made through the Personalizer API."""


class NotActivated(rewards.RewardConflict):
    """A reward for a deferred event the client has not activated."""


@dataclass(frozen=True)
class InlineAction:
    """One action of a rank request with its flattened features."""

    action_id: str
    features: Mapping[str, Any]


@dataclass(frozen=True)
class InlineRank:
    """A validated Personalizer rank (one slot) or multi-slot rank (several)."""

    context: Mapping[str, Any]
    actions: Sequence[InlineAction]
    excluded: Sequence[str] = ()
    event_id: str | None = None
    defer_activation: bool = False
    slot_ids: Sequence[str] | None = None


@dataclass(frozen=True)
class RankedEvent:
    """A decision with its Personalizer bookkeeping."""

    decision: Decision
    event: PersonalizerEvent
    created: bool


def rank_inline(
    session: Session,
    runtime: EngineRuntime,
    rng: np.random.Generator,
    request: InlineRank,
    api_client_id: int | None = None,
    now: datetime | None = None,
) -> RankedEvent:
    """Rank the request's own actions with the served policy and log the decision. Flushes."""
    now = now or utcnow()
    if request.event_id:
        existing = find_decision(session, request.event_id)
        if existing is not None:
            return RankedEvent(existing, _event_of(session, existing), False)
    rows = _action_rows(session, request.actions)
    excluded = set(request.excluded)
    eligible = [row for row in rows if row.item_id not in excluded]
    slots = len(request.slot_ids) if request.slot_ids is not None else 1
    if len(eligible) < slots:
        raise PersonalizerError(
            f"actions: {len(eligible)} action(s) left after excludedActions, "
            f"fewer than the {slots} slot(s) to fill"
        )
    serving = runtime.serving(session)
    # Every action the client sent is a candidate: Personalizer scores them all.
    config = replace(
        serving.recommender.config,
        candidate_count=max(len(eligible), 2, slots),
        slate_size=slots,
    )
    recommender = Recommender(CatalogIndex(eligible), config, serving.recommender.policy, rng)
    proposal = recommender.propose(request.context, (), slots)
    decision = log_decision(
        session,
        RankRequest(request.context, request.event_id, slots, tuple(request.excluded)),
        proposal,
        serving.config_row,
        config,
        serving.model_version,
        api_client_id,
        now,
    )
    if decision is None:  # a racing rank with the same event id committed first: it wins
        existing = logged_first(session, request.event_id)
        return RankedEvent(existing, _event_of(session, existing), False)
    if request.defer_activation:
        # Not shown yet: no reward wait runs and no reward is taken until the client activates
        # it, also when a review delivers the slate later (`delivery.record_delivery`).
        decision.reward_due_at = None
        decision.awaiting_activation = True
    event = PersonalizerEvent(
        decision_id=decision.id,
        slot_ids=list(request.slot_ids) if request.slot_ids is not None else None,
        deferred=request.defer_activation,
        activated_at=None,
    )
    session.add(event)
    session.flush()
    return RankedEvent(decision, event, True)


def activate(session: Session, event_id: str, now: datetime | None = None) -> PersonalizerEvent:
    """The client showed a deferred event: start its reward wait. Repeats change nothing."""
    decision, event = _lookup(session, event_id)
    if event.deferred and event.activated_at is None:
        now = now or utcnow()
        event.activated_at = now
        decision.awaiting_activation = False
        if decision.delivered_at is not None:
            wait = decision_config(session, decision).reward_wait_seconds
            decision.reward_due_at = now + timedelta(seconds=wait)
        session.flush()
    return event


def slot_items(decision: Decision) -> list[str | None]:
    """What each slot (slate position) holds for the client, in slot order.

    Once the slate went out, the delivered item: a review-before curator may have swapped the
    policy's item for a catalog item, or removed it (None: nothing was shown there). Before
    that, the policy's proposal, which a review may still change.
    """
    if decision.delivered_at is None:
        held = {p.position: p.item_id for p in decision.proposed}
    else:
        held = {entry["position"]: entry["item_id"] for entry in delivered_slate(decision)}
    return [held.get(position) for position in range(len(decision.proposed))]


def record_slot_rewards(
    session: Session, event_id: str, values: Mapping[str, float], source: str
) -> int:
    """Rewards by slot id of a multi-slot event, each for the item delivered in that slot;
    returns how many were new."""
    decision, event = _lookup(session, event_id)
    _check_active(event)
    slot_ids = list(event.slot_ids or [])
    unknown = sorted(set(values) - set(slot_ids))
    if unknown:
        raise rewards.RewardError(f"reward.slotId: unknown slot(s) {', '.join(unknown)}")
    rewards.check_delivered(decision)
    held = slot_items(decision)
    report = [(held[slot_ids.index(slot_id)], value) for slot_id, value in values.items()]
    empty = [slot_id for (item_id, _), slot_id in zip(report, values, strict=True) if not item_id]
    if empty:
        raise rewards.RewardError(
            f"reward.slotId: the curator's review left slot(s) {', '.join(empty)} empty; "
            "nothing was shown there to reward"
        )
    delivered = [(item_id, value) for item_id, value in report if item_id]
    return sum(new for _, new in rewards.record_rewards(session, event_id, delivered, source))


def record_event_reward(session: Session, event_id: str, value: float, source: str) -> bool:
    """The reward of a single-slot event: of its one delivered item, stored as the event's."""
    decision, event = _lookup(session, event_id)
    _check_active(event)
    rewards.check_delivered(decision)
    if slot_items(decision)[0] is None:
        raise rewards.RewardError(
            "the curator's review left this event's slot empty; nothing was shown to reward"
        )
    _, created = rewards.record_reward(session, event_id, value, None, source)
    return created


def _check_active(event: PersonalizerEvent) -> None:
    if event.deferred and event.activated_at is None:
        raise NotActivated(
            "this event was ranked with deferActivation: activate it "
            "(POST .../events/{eventId}/activate) before sending its reward"
        )


def _lookup(session: Session, event_id: str) -> tuple[Decision, PersonalizerEvent]:
    decision = find_decision(session, event_id)
    if decision is None:
        raise rewards.EventNotFound(f"unknown event {event_id!r}")
    return decision, _event_of(session, decision)


def _event_of(session: Session, decision: Decision) -> PersonalizerEvent:
    event = session.scalars(
        select(PersonalizerEvent).where(PersonalizerEvent.decision_id == decision.id)
    ).first()
    if event is None:
        raise EventIdTaken(
            f"event {decision.event_id!r} was not ranked through the Personalizer API; "
            "use /api/v1 for it"
        )
    return event


def _action_rows(session: Session, actions: Sequence[InlineAction]) -> list[CatalogRow]:
    """The engine rows of the actions, storing new or changed inline actions."""
    stored = items_by_id(session, (a.action_id for a in actions))
    rows = []
    for position, action in enumerate(actions):
        item = stored.get(action.action_id)
        if item is not None and item.active:
            if action.features:
                raise PersonalizerError(
                    f"actions[{position}].id: {action.action_id!r} is a catalog item; send it "
                    "without features (its catalog features are used) or use another id"
                )
            rows.append(as_row(item))
            continue
        item = _store_inline(session, action, item)
        # Ranked as available, whatever the stock of the stored (inactive) row says.
        rows.append(replace(as_row(item), active=True, stock=1))
    return rows


def _store_inline(session: Session, action: InlineAction, item: CatalogItem | None) -> CatalogItem:
    features = {k: v for k, v in action.features.items() if k != CATEGORY_FEATURE}
    category = str(action.features.get(CATEGORY_FEATURE, INLINE_CATEGORY))[:100]
    if item is not None:
        if item.attributes != features or item.category != category:
            item.attributes, item.category = features, category
        return item
    item = CatalogItem(
        item_id=action.action_id,
        title=action.action_id[:500],
        category=category,
        attributes=features,
        embedding=None,
        price=None,
        stock=1,
        active=False,
    )
    try:
        # A concurrent rank may store the same new action first; then use its row.
        with session.begin_nested():
            session.add(item)
    except IntegrityError:
        found = items_by_id(session, [action.action_id])[action.action_id]
        return _store_inline(session, action, found)
    return item
