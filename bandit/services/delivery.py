"""Delivery of a decision's slate: what went out, when, and under which policy config.

The delivered slate is a fact written once, with an outbox row for the client's webhooks in
the same transaction; later curator verdicts are corrections (bandit.services.corrections)
and never touch it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Engine, delete, inspect
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from bandit.db.models import Decision, EventChange, FinalSlateItem, PolicyConfigRow
from bandit.engine.config import PolicyConfig, config_from_mapping
from bandit.engine.vocabulary import (
    DELIVERED_TAGS,
    DecidedBy,
    DecisionStatus,
    EventChangeKind,
    SlateTag,
)


class AlreadyDelivered(RuntimeError):
    """A decision's delivery is a fact: it is written once."""


def delivered_slate(decision: Decision) -> list[dict[str, Any]]:
    """What went out, in position order (empty while nothing was delivered)."""
    return sorted(decision.delivered_slate or [], key=lambda entry: entry["position"])


def policy_items_delivered(decision: Decision) -> list[str]:
    """The policy's own items the customer received, each at the position the policy chose."""
    proposed = {p.item_id: p.position for p in decision.proposed}
    return policy_items_in(delivered_slate(decision), proposed)


def policy_items_in(entries: Sequence[dict[str, Any]], proposed: Mapping[str, int]) -> list[str]:
    """`policy_items_delivered` of a delivered slate's entries (in position order) and the
    policy's proposal as item -> position, for readers holding rows instead of a decision."""
    return [
        entry["item_id"] for entry in entries if proposed.get(entry["item_id"]) == entry["position"]
    ]


def delivered_items(decision: Decision) -> list[str]:
    """Every item the customer received (the policy's, and any curator or client swap-ins),
    in position order."""
    return [entry["item_id"] for entry in delivered_slate(decision)]


def delivered_item_ids(decision: Decision) -> set[str]:
    """`delivered_items` as a set."""
    return set(delivered_items(decision))


def slate_entries(rows: Iterable[FinalSlateItem]) -> list[dict[str, Any]]:
    """The delivered entries of a settled slate: its kept and swapped-in rows, by position."""
    return [
        {
            "position": row.position,
            "item_id": row.item_id,
            "decided_by": row.decided_by,
            "replaced_item_id": row.replaced_item_id,
        }
        for row in sorted(rows, key=lambda r: r.position)
        if row.tag in DELIVERED_TAGS
    ]


def replace_final_slate(
    session: Session, decision: Decision, rows: Sequence[FinalSlateItem]
) -> None:
    """Store `rows` as the decision's final slate, replacing whatever slate is stored.

    Assigning the relationship would first load the stored rows (and flush everything pending
    to do so) only to delete them; when they are not loaded, one DELETE does the same.
    """
    if "final_slate" not in inspect(decision).unloaded:
        decision.final_slate = list(rows)
        return
    with session.no_autoflush:  # the DELETE depends on nothing pending
        session.execute(delete(FinalSlateItem).where(FinalSlateItem.decision_id == decision.id))
    for row in rows:
        row.decision_id = decision.id
    session.add_all(rows)
    set_committed_value(decision, "final_slate", list(rows))


def deliver_policy_slate(
    session: Session, decision: Decision, config: PolicyConfig, now: datetime
) -> None:
    """Send out the policy's own slate unchanged (auto, review-after, overflow or fallback)."""
    rows = [
        FinalSlateItem(
            decision_id=decision.id,
            position=p.position,
            item_id=p.item_id,
            tag=SlateTag.KEPT,
            decided_by=DecidedBy.POLICY,
        )
        for p in decision.proposed
    ]
    replace_final_slate(session, decision, rows)
    record_delivery(session, decision, slate_entries(decision.final_slate), config, now)


def record_delivery(
    session: Session,
    decision: Decision,
    entries: Sequence[dict[str, Any]],
    config: PolicyConfig,
    now: datetime,
) -> None:
    """The slate went out: write it once, start the wait for its reward, tell the client."""
    if decision.delivered_slate is not None:
        raise AlreadyDelivered(f"event {decision.event_id!r} was delivered already")
    for column, value in delivery_columns(entries, config, now).items():
        setattr(decision, column, value)
    if decision.awaiting_activation:
        decision.reward_due_at = None  # the wait starts when the client activates the event
    payload = delivered_payload(decision.delivered_slate or [], now)
    add_change(session, decision, EventChangeKind.DELIVERED, payload, now)


def delivery_columns(
    entries: Sequence[dict[str, Any]], config: PolicyConfig, now: datetime
) -> dict[str, Any]:
    """What a decision's row says once `entries` went out at `now` (the reward wait starts)."""
    return {
        "delivered_slate": [dict(entry) for entry in entries],
        "status": DecisionStatus.DELIVERED,
        "delivered_at": now,
        "reward_due_at": now + timedelta(seconds=config.reward_wait_seconds),
    }


def delivered_payload(delivered_slate: Sequence[dict[str, Any]], now: datetime) -> dict[str, Any]:
    """The client's "delivered" message."""
    return {"delivered_at": now.isoformat(), "delivered_slate": list(delivered_slate)}


def change_row(
    decision_id: int, event_id: str, kind: EventChangeKind, payload: dict[str, Any], now: datetime
) -> dict[str, Any]:
    """One outbox row's columns (the ORM and the Core writers both write these)."""
    return {
        "decision_id": decision_id,
        "event_id": event_id,
        "kind": kind,
        "payload": payload,
        "created_at": now,
        "dispatched_at": None,
    }


def add_change(
    session: Session,
    decision: Decision,
    kind: EventChangeKind,
    payload: dict[str, Any],
    now: datetime,
) -> None:
    """Write one outbox row in the caller's transaction; the webhook worker sends it."""
    session.add(EventChange(**change_row(decision.id, decision.event_id, kind, payload, now)))


# Config rows never change once stored (a change is a new version), so each is read and
# parsed once per database and process: every submitted review and learn pass asks for it.
_PARSED_CONFIGS: WeakKeyDictionary[Engine, dict[int, PolicyConfig]] = WeakKeyDictionary()


def decision_config(session: Session, decision: Decision) -> PolicyConfig:
    """The policy config the decision was made under."""
    return stored_config(session, decision.policy_config_id)


def stored_config(session: Session, config_id: int) -> PolicyConfig:
    """The stored policy config version `config_id`, parsed once per database and process."""
    parsed = _PARSED_CONFIGS.setdefault(session.get_bind().engine, {})
    config = parsed.get(config_id)
    if config is None:
        row = session.get(PolicyConfigRow, config_id)
        assert row is not None
        config = parsed[config_id] = config_from_mapping(dict(row.document))
    return config
