"""Making decisions (rank) and reading them back as events."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bandit.config import PolicyConfig, config_from_mapping
from bandit.db.models import (
    CuratorAction,
    Decision,
    FinalSlateItem,
    Outcome,
    PolicyConfigRow,
    ProposedItem,
    ReviewTask,
    SlateVerification,
    utcnow,
)
from bandit.records import Proposal
from bandit.routing import AUTO, REVIEW_BEFORE
from bandit.runtime import EngineRuntime
from bandit.services import review_queue
from bandit.services.catalog_store import items_by_id

PENDING_REVIEW = "pending_review"
IN_REVIEW = "in_review"
DELIVERED = "delivered"
REWARDED = "rewarded"
DELIVERED_TAGS = ("kept", "swapped_in")


def policy_items_delivered(decision: Decision) -> list[str]:
    """The policy's own items the customer received, in position order.

    Auto and review-after slates went out as proposed, before any curator saw them; a
    review-before slate went out as the curator left it.
    """
    proposed = [p.item_id for p in sorted(decision.proposed, key=lambda p: p.position)]
    if decision.route != REVIEW_BEFORE:
        return proposed
    kept = {f.item_id for f in decision.final_slate if f.tag == "kept"}
    return [item_id for item_id in proposed if item_id in kept]


def delivered_item_ids(decision: Decision) -> set[str]:
    """Every item the customer received: the policy's, and any curator swap-ins."""
    swapped_in = {f.item_id for f in decision.final_slate if f.tag == "swapped_in"}
    return set(policy_items_delivered(decision)) | swapped_in


class UnknownItems(ValueError):
    """The request names catalog items that do not exist."""


@dataclass(frozen=True)
class RankRequest:
    """A validated request for a slate."""

    context: Mapping[str, Any]
    event_id: str | None = None
    slate_size: int | None = None
    exclude: Sequence[str] = field(default_factory=tuple)


def find_decision(session: Session, event_id: str, lock: bool = False) -> Decision | None:
    """The decision logged under `event_id`, if any; `lock` holds its row until commit."""
    query = select(Decision).where(Decision.event_id == event_id)
    return session.scalars(query.with_for_update() if lock else query).first()


def rank(
    session: Session,
    runtime: EngineRuntime,
    request: RankRequest,
    api_client_id: int | None = None,
    now: datetime | None = None,
) -> tuple[Decision, bool]:
    """Propose and log a slate; a repeated event id returns the stored decision.

    Returns the decision and whether it was created by this call. Commits.
    """
    if request.event_id:
        existing = find_decision(session, request.event_id)
        if existing is not None:
            return existing, False
    unknown = sorted(set(request.exclude) - set(items_by_id(session, request.exclude)))
    if unknown:
        raise UnknownItems(f"exclude: unknown item id(s): {', '.join(unknown[:10])}")
    serving = runtime.serving(session)
    proposal = serving.recommender.propose(request.context, request.exclude, request.slate_size)
    decision = _log_decision(
        session,
        request,
        proposal,
        serving.config_row,
        serving.recommender.config,
        serving.model_version,
        api_client_id,
        now or utcnow(),
    )
    try:
        session.commit()
    except IntegrityError:
        # Another request logged the same event id first: that one is the decision.
        session.rollback()
        existing = find_decision(session, request.event_id or "")
        if existing is None:
            raise
        return existing, False
    return decision, True


def _log_decision(
    session: Session,
    request: RankRequest,
    proposal: Proposal,
    config_row: PolicyConfigRow,
    config: PolicyConfig,
    model_version: int,
    api_client_id: int | None,
    now: datetime,
) -> Decision:
    route = proposal.route
    # A review the curators cannot reach within the SLA may go out unreviewed (overflow).
    overflow = review_queue.admission(session, config) if route != AUTO else None
    delivers_now = route != REVIEW_BEFORE or overflow == review_queue.DELIVERED_UNREVIEWED
    decision = Decision(
        event_id=request.event_id or uuid.uuid4().hex,
        api_client_id=api_client_id,
        context=dict(request.context),
        exclude=list(request.exclude),
        candidates=[
            {
                "item_id": c.item_id,
                "candidate_probability": c.candidate_probability,
                "prescore": c.prescore,
                "exploration_slot": c.exploration_slot,
                "pmf": c.pmf,
                "score": c.score,
            }
            for c in proposal.candidates
        ],
        position_pmfs=[list(pmf) for pmf in proposal.position_pmfs],
        uncertainty={**proposal.uncertainty, "confidence": proposal.confidence},
        route=route,
        status=DELIVERED if delivers_now else PENDING_REVIEW,
        policy_config_id=config_row.id,
        policy_name=config_row.name,
        policy_version=config_row.version,
        model_version=model_version,
        created_at=now,
    )
    decision.proposed = [
        ProposedItem(
            position=s.position,
            item_id=s.item_id,
            probability=s.probability,
            candidate_probability=s.candidate_probability,
            position_probability=s.position_probability,
            score=s.score,
            explored=s.explored,
            reason=s.reason,
            why=[{"feature": feature, "weight": weight} for feature, weight in s.why],
        )
        for s in proposal.slate
    ]
    session.add(decision)
    session.flush()
    if delivers_now:
        deliver_policy_slate(decision, config, now)
    if route != AUTO:
        session.add(
            review_queue.new_task(decision, route, proposal.uncertainty, config, now, overflow)
        )
    return decision


def deliver_policy_slate(decision: Decision, config: PolicyConfig, now: datetime) -> None:
    """Send out the policy's own slate unchanged (auto, review-after, or overflow)."""
    mark_delivered(decision, config, now)
    decision.final_slate = [
        FinalSlateItem(
            decision_id=decision.id,
            position=p.position,
            item_id=p.item_id,
            tag="kept",
            decided_by="policy",
        )
        for p in decision.proposed
    ]


def mark_delivered(decision: Decision, config: PolicyConfig, now: datetime) -> None:
    """The slate went out: start the wait for its reward."""
    decision.status = DELIVERED
    decision.delivered_at = now
    decision.reward_due_at = now + timedelta(seconds=config.reward_wait_seconds)


def decision_config(session: Session, decision: Decision) -> PolicyConfig:
    """The policy config the decision was made under."""
    row = session.get(PolicyConfigRow, decision.policy_config_id)
    assert row is not None
    return config_from_mapping(dict(row.document))


def rank_response(decision: Decision) -> dict[str, Any]:
    """The API's answer to a rank request."""
    return {
        "event_id": decision.event_id,
        "slate": [
            {
                "item_id": p.item_id,
                "probability": p.probability,
                "score": p.score,
                "why": list(p.why or []),
            }
            for p in decision.proposed
        ],
        "route": decision.route,
        "status": decision.status,
        "uncertainty": dict(decision.uncertainty),
        "policy_version": f"{decision.policy_name}@{decision.policy_version}",
        "model_version": decision.model_version,
    }


def event_view(session: Session, decision: Decision) -> dict[str, Any]:
    """Everything known about an event: proposal, review, final slate, outcomes."""
    tasks = session.scalars(
        select(ReviewTask)
        .where(ReviewTask.decision_id == decision.id)
        .order_by(ReviewTask.review_round)
    ).all()
    task = tasks[0] if tasks else None
    all_actions = session.scalars(
        select(CuratorAction)
        .where(CuratorAction.decision_id == decision.id)
        .order_by(CuratorAction.position)
    ).all()
    actions = [a for a in all_actions if not a.agreement_only]
    second_opinions = [a for a in all_actions if a.agreement_only]
    outcomes = session.scalars(
        select(Outcome).where(Outcome.decision_id == decision.id).order_by(Outcome.id)
    ).all()
    verifications = session.scalars(
        select(SlateVerification)
        .where(SlateVerification.decision_id == decision.id)
        .order_by(SlateVerification.id)
    ).all()
    final = list(decision.final_slate)
    # Titles as stored (possibly containing markup): JSON carries them as plain strings.
    titles = {
        item_id: item.title
        for item_id, item in items_by_id(
            session, [p.item_id for p in decision.proposed] + [f.item_id for f in final]
        ).items()
    }
    return {
        **rank_response(decision),
        "context": dict(decision.context),
        "created_at": decision.created_at.isoformat(),
        "delivered_at": decision.delivered_at.isoformat() if decision.delivered_at else None,
        "proposed_slate": [
            {
                "position": p.position,
                "item_id": p.item_id,
                "title": titles.get(p.item_id),
                "probability": p.probability,
                "candidate_probability": p.candidate_probability,
                "position_probability": p.position_probability,
                "score": p.score,
                "explored": p.explored,
                "reason": p.reason,
                "why": list(p.why or []),
            }
            for p in decision.proposed
        ],
        "candidates": list(decision.candidates),
        "review": None
        if task is None
        else {
            "task_id": task.id,
            "route": task.route,
            "status": task.status,
            "overflow": task.overflow,
            "completed_at": task.completed_at.isoformat() if task.completed_at else None,
            "actions": [_action_view(a) for a in actions],
        },
        # Double review: an independent second opinion, for agreement only (not delivered).
        "second_review": None
        if len(tasks) < 2
        else {
            "task_id": tasks[1].id,
            "status": tasks[1].status,
            "agreement_only": True,
            "actions": [_action_view(a) for a in second_opinions],
        },
        "final_slate": None
        if not final
        else [
            {
                "position": f.position,
                "item_id": f.item_id,
                "title": titles.get(f.item_id),
                "tag": f.tag,
                "decided_by": f.decided_by,
                "replaced_item_id": f.replaced_item_id,
                "delivered": f.tag in DELIVERED_TAGS,
            }
            for f in final
        ],
        # Verify-after-output reviews: the delivered slate overturned (corrected) or reinstated.
        "verifications": [
            {
                "outcome": v.outcome,
                "curator_id": v.curator_id,
                "delivered_before": list(v.delivered_before),
                "delivered_after": list(v.delivered_after),
                "created_at": v.created_at.isoformat(),
            }
            for v in verifications
        ],
        "outcomes": [
            {
                "item_id": None if o.is_default else (o.item_key or None),
                "value": o.value,
                "is_default": o.is_default,
                "after_default": o.after_default,
                "source": o.source,
                "created_at": o.created_at.isoformat(),
                "learned": o.learned_at is not None,
            }
            for o in outcomes
        ],
    }


def _action_view(action: CuratorAction) -> dict[str, Any]:
    return {
        "position": action.position,
        "item_id": action.item_id,
        "verdict": action.verdict,
        "replacement_item_id": action.replacement_item_id,
        "reason": action.reason,
        "seconds_spent": action.seconds_spent,
        "curator_id": action.curator_id,
        "created_at": action.created_at.isoformat(),
    }
