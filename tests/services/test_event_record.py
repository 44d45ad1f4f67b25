"""The event record: delivery written once, corrections beside it, the current slate."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bandit.db.models import Decision, EventChange, SlateCorrection
from bandit.engine.config import PolicyConfig
from bandit.services import accounts, configs, decisions, review, rewards
from bandit.services.corrections import current_slate
from bandit.services.delivery import (
    AlreadyDelivered,
    decision_config,
    policy_items_delivered,
    record_delivery,
)
from bandit.services.export import export_log
from bandit.services.review import ItemVerdict
from bandit.services.runtime import EngineRuntime
from curation_app import event_views
from tests.conftest import DemoCatalog


def _decide(session: Session, demo_catalog: DemoCatalog, routing_mode: str) -> Decision:
    configs.save_config(session, PolicyConfig(routing_mode=routing_mode), "test", activate=True)
    session.commit()
    runtime = EngineRuntime(np.random.default_rng(3))
    decision, _ = decisions.rank(
        session, runtime, decisions.RankRequest(context=demo_catalog.customers[2])
    )
    session.commit()
    return decision


def _review(
    session: Session, decision: Decision, verdicts: list[ItemVerdict], name: str = "verifier"
) -> int:
    curator = accounts.add_curator(session, name, "long-enough-pw")
    session.commit()
    task = review.claim_next(session, curator.id)
    session.commit()
    assert task is not None and task.decision_id == decision.id
    assert review.submit_review(session, task.id, curator.id, task.lease_token or "", verdicts, 9.0)
    session.commit()
    return curator.id


def _outsider(decision: Decision) -> str:
    on_slate = {p.item_id for p in decision.proposed}
    return next(c["item_id"] for c in decision.candidates if c["item_id"] not in on_slate)


def _stored_delivery(session: Session, decision_id: int) -> str:
    """The delivered slate exactly as the database holds it, as canonical JSON text."""
    session.expire_all()
    stored = session.scalar(select(Decision.delivered_slate).where(Decision.id == decision_id))
    stored = json.loads(stored) if isinstance(stored, str) else stored
    return json.dumps(stored, sort_keys=True)


def _kinds(session: Session, decision_id: int) -> list[str]:
    return list(
        session.scalars(
            select(EventChange.kind)
            .where(EventChange.decision_id == decision_id)
            .order_by(EventChange.id)
        )
    )


def test_a_review_after_overturn_adds_a_correction_and_never_rewrites_the_delivery(
    session: Session, demo_catalog: DemoCatalog
) -> None:
    decision = _decide(session, demo_catalog, "review_after")
    proposed = [p.item_id for p in sorted(decision.proposed, key=lambda p: p.position)]
    before = _stored_delivery(session, decision.id)
    document_before = event_views.event_view(session, decision)["delivered_slate"]
    assert [e["item_id"] for e in json.loads(before)] == proposed
    replacement = _outsider(decision)

    verdicts = [ItemVerdict(p, "keep") for p in range(len(proposed))]
    verdicts[0] = ItemVerdict(0, "swap", replacement, "wrong season")
    verdicts[1] = ItemVerdict(1, "remove", reason="out of stock soon")
    curator_id = _review(session, decision, verdicts)

    assert _stored_delivery(session, decision.id) == before
    view = event_views.event_view(session, decision)
    assert view["delivered_slate"] == document_before
    [correction] = view["corrections"]
    assert correction["curator_id"] == curator_id and correction["created_at"]
    assert correction["changes"] == [
        {"position": 0, "action": "replace", "item_id": proposed[0],
         "replacement_item_id": replacement},
        {"position": 1, "action": "remove", "item_id": proposed[1], "replacement_item_id": None},
    ]  # fmt: skip
    current = view["current_slate"]
    positions = [entry["position"] for entry in current]
    assert positions == sorted(set(positions)) == [0, *range(2, len(proposed))]
    assert [entry["item_id"] for entry in current] == [replacement, *proposed[2:]]
    # The final-slate rows say who had what: the customer had the swapped-out item.
    had = {(f["item_id"], f["delivered"]) for f in view["final_slate"]}
    assert (proposed[0], True) in had and (replacement, False) in had
    assert [step["status"] for step in view["lifecycle"]][-2:] == ["delivered", "corrected"]
    assert _kinds(session, decision.id) == ["delivered", "corrected"]
    # Learning and replay see what the customer received: the policy's whole slate.
    assert policy_items_delivered(decision) == proposed


def test_rewards_count_for_what_was_delivered_and_for_what_a_correction_sent(
    session: Session, demo_catalog: DemoCatalog
) -> None:
    decision = _decide(session, demo_catalog, "review_after")
    replacement = _outsider(decision)
    verdicts = [ItemVerdict(p.position, "keep") for p in decision.proposed]
    verdicts[0] = ItemVerdict(0, "swap", replacement)
    _review(session, decision, verdicts)
    had = decision.proposed[0].item_id

    _, created = rewards.record_reward(session, decision.event_id, 1.0, had, "client:test")
    session.commit()
    assert created
    _, created = rewards.record_reward(session, decision.event_id, 0.0, replacement, "client:t")
    session.commit()
    assert created
    stranger = next(i for i in demo_catalog.item_ids if i not in {had, replacement} and all(
        i != p.item_id for p in decision.proposed))  # fmt: skip
    with pytest.raises(rewards.RewardError, match="item_id"):
        rewards.record_reward(session, decision.event_id, 1.0, stranger, "client:test")
    session.rollback()
    assert _kinds(session, decision.id) == ["delivered", "corrected", "rewarded", "rewarded"]
    # Replay: the swapped-out item reached the customer, so its customer reward is the label.
    rounds = export_log(session).rounds.to_pylist()
    first = next(r for r in rounds if r["event_id"] == decision.event_id and r["position"] == 0)
    assert (first["action"], first["reward"], first["reward_source"]) == (had, 1.0, "customer")


def test_a_review_before_slate_is_delivered_once_with_each_position_once(
    session: Session, demo_catalog: DemoCatalog
) -> None:
    decision = _decide(session, demo_catalog, "review_before")
    assert decision.delivered_slate is None
    assert event_views.event_view(session, decision)["delivered_slate"] is None
    replacement = _outsider(decision)
    verdicts = [ItemVerdict(p.position, "keep") for p in decision.proposed]
    verdicts[1] = ItemVerdict(1, "swap", replacement)
    verdicts[2] = ItemVerdict(2, "remove")
    _review(session, decision, verdicts)

    view = event_views.event_view(session, decision)
    items = view["delivered_slate"]["items"]
    assert view["delivered_slate"]["delivered_at"] == view["delivered_at"]
    assert [e["position"] for e in items] == [0, 1, *range(3, len(decision.proposed))]
    assert items[1]["item_id"] == replacement and items[1]["decided_by"] == "curator"
    assert [e["item_id"] for e in view["current_slate"]] == [e["item_id"] for e in items]
    assert view["corrections"] == []
    assert _kinds(session, decision.id) == ["delivered"]
    with pytest.raises(AlreadyDelivered):
        record_delivery(
            session, decision, [], decision_config(session, decision), decision.created_at
        )


def test_a_review_after_that_keeps_everything_is_a_reinstatement(
    session: Session, demo_catalog: DemoCatalog
) -> None:
    decision = _decide(session, demo_catalog, "review_after")
    before = _stored_delivery(session, decision.id)
    _review(session, decision, [ItemVerdict(p.position, "keep") for p in decision.proposed])
    assert _stored_delivery(session, decision.id) == before
    assert session.scalars(select(SlateCorrection)).all() == []
    view = event_views.event_view(session, decision)
    assert view["corrections"] == [] and view["lifecycle"][-1]["status"] == "reinstated"
    assert _kinds(session, decision.id) == ["delivered", "reinstated"]


class _Correction:
    def __init__(self, correction_id: int, changes: list[dict[str, Any]]) -> None:
        self.id, self.changes = correction_id, changes


def test_corrections_apply_in_order_and_leave_each_position_once() -> None:
    delivered = [{"position": p, "item_id": f"a{p}"} for p in range(4)]
    first = _Correction(1, [
        {"position": 0, "action": "replace", "item_id": "a0", "replacement_item_id": "b0"},
        {"position": 2, "action": "remove", "item_id": "a2", "replacement_item_id": None},
    ])  # fmt: skip
    second = _Correction(2, [
        {"position": 0, "action": "replace", "item_id": "b0", "replacement_item_id": "c0"},
        {"position": 2, "action": "replace", "item_id": None, "replacement_item_id": "c2"},
    ])  # fmt: skip
    current = current_slate(delivered, [first, second])  # type: ignore[list-item]
    assert [(e["position"], e["item_id"], e["correction_id"]) for e in current] == [
        (0, "c0", 2), (1, "a1", None), (2, "c2", 2), (3, "a3", None),
    ]  # fmt: skip
    assert [e["item_id"] for e in delivered] == ["a0", "a1", "a2", "a3"]  # inputs untouched
