"""Delivery of a decision's slate: what went out, when, and under which policy config."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from bandit.db.models import Decision, FinalSlateItem, PolicyConfigRow
from bandit.engine.config import PolicyConfig, config_from_mapping
from bandit.engine.vocabulary import DecidedBy, DecisionStatus, Route, SlateTag


def policy_items_delivered(decision: Decision) -> list[str]:
    """The policy's own items the customer received, in position order.

    Auto and review-after slates went out as proposed, before any curator saw them; a
    review-before slate went out as the curator left it.
    """
    proposed = [p.item_id for p in sorted(decision.proposed, key=lambda p: p.position)]
    if decision.route != Route.REVIEW_BEFORE:
        return proposed
    kept = {f.item_id for f in decision.final_slate if f.tag == SlateTag.KEPT}
    return [item_id for item_id in proposed if item_id in kept]


def delivered_item_ids(decision: Decision) -> set[str]:
    """Every item the customer received: the policy's, and any curator swap-ins."""
    swapped_in = {f.item_id for f in decision.final_slate if f.tag == SlateTag.SWAPPED_IN}
    return set(policy_items_delivered(decision)) | swapped_in


def deliver_policy_slate(decision: Decision, config: PolicyConfig, now: datetime) -> None:
    """Send out the policy's own slate unchanged (auto, review-after, or overflow)."""
    mark_delivered(decision, config, now)
    decision.final_slate = [
        FinalSlateItem(
            decision_id=decision.id,
            position=p.position,
            item_id=p.item_id,
            tag=SlateTag.KEPT,
            decided_by=DecidedBy.POLICY,
        )
        for p in decision.proposed
    ]


def mark_delivered(decision: Decision, config: PolicyConfig, now: datetime) -> None:
    """The slate went out: start the wait for its reward."""
    decision.status = DecisionStatus.DELIVERED
    decision.delivered_at = now
    decision.reward_due_at = now + timedelta(seconds=config.reward_wait_seconds)


def decision_config(session: Session, decision: Decision) -> PolicyConfig:
    """The policy config the decision was made under."""
    # Config rows never change once stored (a change is a new version), so each is parsed
    # once per session: the learner and the review path ask for it once per verdict.
    parsed: dict[int, PolicyConfig] = session.info.setdefault("hitl.parsed_configs", {})
    config = parsed.get(decision.policy_config_id)
    if config is None:
        row = session.get(PolicyConfigRow, decision.policy_config_id)
        assert row is not None
        config = parsed[decision.policy_config_id] = config_from_mapping(dict(row.document))
    return config
