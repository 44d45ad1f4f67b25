"""The JSON documents of an event: the rank answer and everything known about it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bandit.db.models import (
    CuratorAction,
    Decision,
    Outcome,
    ReviewTask,
    SlateCorrection,
    SlateVerification,
)
from bandit.engine.config import PolicyConfig
from bandit.engine.vocabulary import (
    DecisionStatus,
    LifecycleStatus,
    Route,
    RoutingMode,
    TaskStatus,
    VerificationOutcome,
)
from bandit.services.catalog_store import display_items
from bandit.services.corrections import correction_view, corrections_of, current_slate
from bandit.services.delivery import decision_config, delivered_slate
from bandit.services.rewards import reward_payload
from bandit.services.trust import failed_test_clause
from bandit.services.trust_status import FailedTest, failed_test_served
from curation_app.reasons import reason_text


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


def routing_view(
    decision: Decision, config: PolicyConfig, failed_test: FailedTest | None = None
) -> dict[str, Any]:
    """Why the decision went the route it did, under the config it was made with (for clients
    and admins; never shown to the curator reviewing it, so that audits stay blinded).
    `failed_test`: the failed first threshold test of the approval state it was routed with."""
    return {
        "approval_probability": decision.approval_probability,
        "auto_threshold": decision.auto_threshold,
        "audit": decision.audit,
        "audit_probability": decision.audit_probability,
        "confidence": decision.uncertainty.get("confidence"),
        "reason": _routing_reason(decision, config, failed_test),
    }


_AFTER_OR_BEFORE = {
    Route.AUTO: "delivered automatically",
    Route.REVIEW_AFTER: "so a curator reviews it after delivery",
    Route.REVIEW_BEFORE: "so a curator reviews it before delivery",
}


def _routing_reason(
    decision: Decision, config: PolicyConfig, failed_test: FailedTest | None
) -> str:
    """The rule that chose this decision's route, with the numbers it compared."""
    route, mode = Route(decision.route), config.routing_mode
    if mode == RoutingMode.APPRENTICE:
        return "apprentice mode: a curator or the client chooses every slate before delivery"
    if mode in (RoutingMode.REVIEW_BEFORE, RoutingMode.REVIEW_AFTER):
        when = "after" if mode == RoutingMode.REVIEW_AFTER else "before"
        return f"the config has a curator review every slate {when} delivery"
    if mode == RoutingMode.PARTIAL:
        confidence = float(decision.uncertainty.get("confidence", float("nan")))
        if route == Route.AUTO:
            rule = f"met the auto threshold {config.auto_threshold:.3f}"
        elif route == Route.REVIEW_AFTER:
            rule = (
                f"is below the auto threshold {config.auto_threshold:.3f} and at or above the "
                f"review threshold {config.review_threshold:.3f}"
            )
        else:
            rule = f"is below the review threshold {config.review_threshold:.3f}"
        return f"the policy's confidence {confidence:.3f} {rule}, {_AFTER_OR_BEFORE[route]}"
    approval, threshold = decision.approval_probability, decision.auto_threshold
    if approval is None:
        return "no approval model yet, so a curator reviews every slate before delivery"
    if decision.audit:
        return (
            f"a random audit: approval {approval:.3f} met the auto threshold {threshold:.3f}, "
            f"and {decision.audit_probability:.0%} of such slates are reviewed after delivery"
        )
    if route == Route.AUTO:
        return f"approval {approval:.3f} met the auto threshold {threshold:.3f}"
    if threshold is None and failed_test is not None:
        clause = failed_test_clause(
            failed_test.threshold,
            failed_test.bound,
            failed_test.slates,
            failed_test.overrides,
            failed_test.target,
            failed_test.effective,
            failed_test.rate,
        )
        auto = f"no auto threshold in force ({clause})"
    elif threshold is None:
        auto = "no auto threshold in force (too little evidence yet)"
    else:
        auto = f"below the auto threshold {threshold:.3f}"
    if route == Route.REVIEW_AFTER:
        review = f"at or above the review threshold {config.review_threshold:.3f}"
    else:
        review = f"below the review threshold {config.review_threshold:.3f}"
    return f"approval {approval:.3f}: {auto}, {review}, {_AFTER_OR_BEFORE[route]}"


def _failed_test(session: Session, decision: Decision) -> FailedTest | None:
    # Looked up only where the reason needs it: a scored decision with no threshold in force.
    if decision.approval_probability is None or decision.auto_threshold is not None:
        return None
    return failed_test_served(session, decision.model_version)


def event_view(
    session: Session, decision: Decision, include_candidates: bool = True
) -> dict[str, Any]:
    """Everything known about an event: proposal, delivery, corrections, review, outcomes.

    The candidate list (the bulk of the document) is left out unless asked for.
    """
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
    delivered = delivered_slate(decision)
    corrections = corrections_of(session, decision)
    current = current_slate(delivered, corrections)
    delivered_at = {(e["position"], e["item_id"]) for e in delivered}
    # Titles as stored (possibly containing markup): JSON carries them as plain strings.
    titles = {
        item_id: item.title
        for item_id, item in display_items(
            session,
            [p.item_id for p in decision.proposed]
            + [f.item_id for f in final]
            + [e["item_id"] for e in current],
        ).items()
    }
    document = {
        **rank_response(decision),
        "routing": routing_view(
            decision, decision_config(session, decision), _failed_test(session, decision)
        ),
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
                "reason": reason_text(p.reasons or [], decision.context),
                "reasons": [{"code": code, "value": value} for code, value in p.reasons or []],
                "why": list(p.why or []),
            }
            for p in decision.proposed
        ],
        "delivered_slate": None
        if decision.delivered_at is None
        else {
            "delivered_at": decision.delivered_at.isoformat(),
            # To whom: the client that asked, and its customer if the context names one.
            "api_client_id": decision.api_client_id,
            "customer_id": decision.context.get("customer_id"),
            "items": [{**entry, "title": titles.get(entry["item_id"])} for entry in delivered],
        },
        "corrections": [correction_view(c) for c in corrections],
        "current_slate": None
        if decision.delivered_at is None
        else [{**entry, "title": titles.get(entry["item_id"])} for entry in current],
        "lifecycle": _lifecycle(decision, task, verifications, corrections, outcomes),
        "review_due_at": _review_due_at(decision, task),
        "fallback_at": task.fallback_at.isoformat() if task and task.fallback_at else None,
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
                # Whether the customer received this row as sent (corrections aside).
                "delivered": (f.position, f.item_id) in delivered_at,
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
        "outcomes": _outcome_views(decision, outcomes, delivered, session),
    }
    if include_candidates:
        document["candidates"] = list(decision.candidates)
    return document


def review_task(session: Session, decision: Decision) -> ReviewTask | None:
    """The event's first-round review task, if it was routed to a curator."""
    return session.scalars(
        select(ReviewTask)
        .where(ReviewTask.decision_id == decision.id)
        .order_by(ReviewTask.review_round)
        .limit(1)
    ).first()


def _review_due_at(decision: Decision, task: ReviewTask | None) -> str | None:
    """When a pending event's review is due: its SLA, or the client's fallback if sooner."""
    if task is None or decision.delivered_at is not None:
        return None
    due = [d for d in (task.due_at, task.fallback_at) if d is not None]
    return min(due).isoformat() if due else None


def _outcome_views(
    decision: Decision,
    outcomes: Sequence[Outcome],
    delivered: Sequence[dict[str, Any]],
    session: Session,
) -> list[dict[str, Any]]:
    """Each stored reward as its `rewarded` message said it (outcomes in id order)."""
    if not outcomes:
        return []
    items = [entry["item_id"] for entry in delivered]
    default_reward = decision_config(session, decision).default_reward
    views = []
    for o in outcomes:
        # A default stands for the delivered items no customer outcome answered before it.
        answered = {e.item_key for e in outcomes if e.id < o.id and not e.is_default}
        facts = reward_payload(o, items, decision.reward_due_at, default_reward, answered)
        del facts["rewarded_at"]
        views.append(
            facts
            | {
                "source": o.source,
                "created_at": o.created_at.isoformat(),
                "learned": o.learned_at is not None,
            }
        )
    return views


def _lifecycle(
    decision: Decision,
    task: ReviewTask | None,
    verifications: Sequence[SlateVerification],
    corrections: Sequence[SlateCorrection],
    outcomes: Sequence[Outcome],
) -> list[dict[str, Any]]:
    """Every step the event went through, with its time, in order."""
    steps: list[tuple[datetime, str]] = [(decision.created_at, LifecycleStatus.CREATED)]
    # The review started at the first claim: a release, a lease run out or an undo starts a
    # new lease (claimed_at) but not a new review. A task claimed by a worker that predates
    # first_claimed_at has only claimed_at.
    started = None if task is None else task.first_claimed_at or task.claimed_at
    # A claim after the delivery (review-after) checks a slate the customer already has.
    if started is not None and (decision.delivered_at is None or started <= decision.delivered_at):
        steps.append((started, LifecycleStatus.IN_REVIEW))
    if decision.delivered_at is not None:
        steps.append((decision.delivered_at, LifecycleStatus.DELIVERED))
    steps += [(c.created_at, LifecycleStatus.CORRECTED) for c in corrections]
    steps += [
        (v.created_at, LifecycleStatus.REINSTATED)
        for v in verifications
        if v.outcome == VerificationOutcome.REINSTATED
    ]
    if outcomes:
        steps.append((min(o.created_at for o in outcomes), LifecycleStatus.REWARDED))
    steps.sort(key=lambda step: step[0])
    return [{"status": status, "at": at.isoformat()} for at, status in steps]


def retry_after_seconds(decision: Decision, task: ReviewTask | None, now: datetime) -> int | None:
    """For a pending event: how long a polling client should wait (1 to 60 seconds)."""
    if decision.status not in (DecisionStatus.PENDING_REVIEW, DecisionStatus.IN_REVIEW):
        return None
    if task is None or task.status not in (TaskStatus.OPEN, TaskStatus.CLAIMED):
        return None
    due = [d for d in (task.due_at, task.fallback_at) if d is not None]
    if not due:
        return 60
    return int(min(60, max(1, (min(due) - now).total_seconds())))


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
