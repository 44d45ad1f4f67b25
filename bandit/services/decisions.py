"""Making decisions (rank) and reading them back as events."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bandit.db.models import (
    Decision,
    PolicyConfigRow,
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
from bandit.services.runtime import EngineRuntime


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
    proposal = serving.recommender.propose(request.context, request.exclude, request.slate_size)
    try:
        # A savepoint: a racing request with the same event id that commits first makes our
        # insert fail on the unique key; only the savepoint is lost, and theirs is the answer.
        with session.begin_nested():
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
            session.flush()
    except IntegrityError:
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
            why=[{"feature": feature, "weight": weight} for feature, weight in s.why],
        )
        for s in proposal.slate
    ]
    session.add(decision)
    session.flush()
    if delivers_now:
        deliver_policy_slate(decision, config, now)
    if route != Route.AUTO:
        session.add(
            review_queue.new_task(decision, route, proposal.uncertainty, config, now, overflow)
        )
    return decision
