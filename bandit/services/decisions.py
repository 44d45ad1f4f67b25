"""Making decisions (rank) and reading them back as events."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import Select, bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bandit.db.models import (
    Decision,
    ProposedItem,
    utcnow,
)
from bandit.engine.config import PolicyConfig
from bandit.engine.records import Proposal
from bandit.engine.vocabulary import (
    DecisionStatus,
    Overflow,
    Route,
)
from bandit.services import approval_store
from bandit.services.catalog_store import items_by_id
from bandit.services.delivery import deliver_policy_slate
from bandit.services.review import queue as review_queue
from bandit.services.runtime import ConfigRef, EngineRuntime


class UnknownItems(ValueError):
    """The request names catalog items that do not exist."""


class FallbackNotAllowed(ValueError):
    """The requested fallback is outside what the active policy config allows."""


@dataclass(frozen=True)
class RankRequest:
    """A validated request for a slate."""

    context: Mapping[str, Any]
    event_id: str | None = None
    slate_size: int | None = None
    exclude: Sequence[str] = field(default_factory=tuple)
    # Deliver a review-before slate unreviewed if no curator has taken it after this long.
    fallback_seconds: int | None = None
    # Compute each slate item's `why` now; otherwise it is left for the task's first view.
    explain: bool = False


def find_decision(session: Session, event_id: str, lock: bool = False) -> Decision | None:
    """The decision logged under `event_id`, if any; `lock` holds its row until commit."""
    return session.scalars(_by_event_id(lock), {"event_id": event_id}).first()


@cache
def _by_event_id(lock: bool) -> Select[Decision]:
    # Built once per process and bound per call (every rank and reward looks one up).
    query = select(Decision).where(Decision.event_id == bindparam("event_id"))
    return query.with_for_update() if lock else query


def rank(
    session: Session,
    runtime: EngineRuntime,
    request: RankRequest,
    api_client_id: int | None = None,
    now: datetime | None = None,
) -> tuple[Decision, bool]:
    """Propose and log a slate; a repeated event id returns the stored decision.

    Returns the decision and whether it was created by this call. Flushes; the caller commits.
    """
    if request.event_id:
        existing = find_decision(session, request.event_id)
        if existing is not None:
            return existing, False
    unknown = sorted(set(request.exclude) - set(items_by_id(session, request.exclude)))
    if unknown:
        raise UnknownItems(f"exclude: unknown item id(s): {', '.join(unknown[:10])}")
    serving = runtime.serving(session)
    _check_fallback(request.fallback_seconds, serving.recommender.config)
    proposal = serving.recommender.propose(
        request.context, request.exclude, request.slate_size, explain=request.explain
    )
    try:
        # A savepoint: a racing request with the same event id that commits first makes our
        # insert fail on the unique key; only the savepoint is lost, and theirs is the answer.
        with session.begin_nested():
            decision = log_decision(
                session,
                request,
                proposal,
                serving.config_row,
                serving.recommender.config,
                serving.model_version,
                api_client_id,
                now or utcnow(),
            )
            session.flush()
    except IntegrityError:
        existing = find_decision(session, request.event_id or "")
        if existing is None:
            raise
        return existing, False
    return decision, True


def _check_fallback(seconds: int | None, config: PolicyConfig) -> None:
    if seconds is None:
        return
    field_name = "fallback.deliver_unreviewed_after_seconds"
    if not config.fallback_max_seconds:
        raise FallbackNotAllowed(f"{field_name}: the active policy config allows no fallback")
    if not config.fallback_min_seconds <= seconds <= config.fallback_max_seconds:
        raise FallbackNotAllowed(
            f"{field_name}: must be between {config.fallback_min_seconds} and "
            f"{config.fallback_max_seconds} seconds under the active policy config"
        )


def log_decision(
    session: Session,
    request: RankRequest,
    proposal: Proposal,
    config_row: ConfigRef,
    config: PolicyConfig,
    model_version: int,
    api_client_id: int | None,
    now: datetime,
) -> Decision:
    """Store a proposal as a decision, deliver it or queue its review. Flushes."""
    route = proposal.route
    # A review the curators cannot reach within the SLA may go out unreviewed (overflow).
    overflow = review_queue.admission(session, config) if route != Route.AUTO else None
    delivers_now = route != Route.REVIEW_BEFORE or overflow == Overflow.DELIVERED_UNREVIEWED
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
        status=DecisionStatus.DELIVERED if delivers_now else DecisionStatus.PENDING_REVIEW,
        policy_config_id=config_row.id,
        policy_name=config_row.name,
        policy_version=config_row.version,
        model_version=model_version,
        created_at=now,
        # An empty, loaded collection: assigning the delivered slate below then needs no
        # SELECT of the (new, empty) old one.
        final_slate=[],
        approval_probability=proposal.approval_probability,
        auto_threshold=proposal.auto_threshold,
        audit=proposal.audit,
        audit_probability=proposal.audit_probability,
    )
    decision.approval_role = approval_store.role_for(decision.event_id, proposal.audit)
    decision.proposed = [
        ProposedItem(
            position=s.position,
            item_id=s.item_id,
            probability=s.probability,
            candidate_probability=s.candidate_probability,
            position_probability=s.position_probability,
            score=s.score,
            explored=s.explored,
            reasons=[[code, value] for code, value in s.reasons],
            # None: not computed yet (services/explanations.py fills it in on first view).
            why=[{"feature": feature, "weight": weight} for feature, weight in s.why]
            if proposal.explained
            else None,
        )
        for s in proposal.slate
    ]
    # The decision's row first (the delivery's outbox row needs its id), then one multi-row
    # INSERT each for the proposed items, the delivered slate, the outbox row and the task.
    session.add(decision)
    session.flush()
    if delivers_now:
        deliver_policy_slate(session, decision, config, now)
    if route != Route.AUTO:
        task = review_queue.new_task(decision, route, proposal.uncertainty, config, now, overflow)
        if request.fallback_seconds is not None and not delivers_now:
            task.fallback_at = now + timedelta(seconds=request.fallback_seconds)
        task.decision = decision
        session.add(task)
    session.flush()
    return decision
