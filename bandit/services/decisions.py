"""Making decisions (rank) and reading them back as events."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import Select, bindparam, select
from sqlalchemy.orm import Session

from bandit.db.models import Decision, utcnow
from bandit.engine.config import PolicyConfig
from bandit.engine.policy import UnscorableContext
from bandit.engine.recommender import NoEligibleItems
from bandit.engine.records import Proposal
from bandit.engine.vocabulary import (
    DecisionStatus,
    Overflow,
    Route,
)
from bandit.services import approval_store, decision_log
from bandit.services.catalog_store import items_by_id
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
    # A repeated event id is found by the decision INSERT itself (ON CONFLICT DO NOTHING), not
    # by a read before proposing: nearly every rank is new, and the read cost each of them a
    # statement. A retry proposes once more and its slate is thrown away.
    try:
        unknown = sorted(set(request.exclude) - set(items_by_id(session, request.exclude)))
        if unknown:
            raise UnknownItems(f"exclude: unknown item id(s): {', '.join(unknown[:10])}")
        serving = runtime.serving(session)
        _check_fallback(request.fallback_seconds, serving.recommender.config)
        proposal = serving.recommender.propose(
            request.context, request.exclude, request.slate_size, explain=request.explain
        )
    except (UnknownItems, FallbackNotAllowed, NoEligibleItems, UnscorableContext):
        # A retry is answered with what is stored, even if the request would now be refused.
        stored = find_decision(session, request.event_id) if request.event_id else None
        if stored is not None:
            return stored, False
        raise
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
    if decision is None:
        return logged_first(session, request.event_id), False
    return decision, True


def logged_first(session: Session, event_id: str | None) -> Decision:
    """The decision a racing request committed under `event_id` (log_decision said None)."""
    existing = find_decision(session, event_id or "")
    if existing is None:
        raise RuntimeError(f"event {event_id!r} conflicted but is not stored")
    return existing


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
) -> Decision | None:
    """Store a proposal as a decision, deliver it or queue its review. Flushes.

    None when the request's event id is already logged (by a request that raced this one).
    """
    route = proposal.route
    # A review the curators cannot reach within the SLA may go out unreviewed (overflow).
    overflow = review_queue.admission(session, config, route) if route != Route.AUTO else None
    delivers_now = route != Route.REVIEW_BEFORE or overflow == Overflow.DELIVERED_UNREVIEWED
    event_id = request.event_id or uuid.uuid4().hex
    proposed = decision_log.proposed_values(proposal)
    values = {
        **decision_log.decision_values(proposal),
        "event_id": event_id,
        "api_client_id": api_client_id,
        "context": dict(request.context),
        "exclude": list(request.exclude),
        "status": DecisionStatus.PENDING_REVIEW,  # the delivery columns below say DELIVERED
        "policy_config_id": config_row.id,
        "policy_name": config_row.name,
        "policy_version": config_row.version,
        "model_version": model_version,
        "created_at": now,
        "approval_role": approval_store.role_for(event_id, proposal.audit),
        "delivered_slate": None,
        "delivered_at": None,
        "reward_due_at": None,
        "awaiting_activation": False,
    }
    if delivers_now:
        values |= decision_log.policy_delivery(proposed, config, now)
    decision = decision_log.write_decision(session, values, proposed)
    if decision is None:
        return None
    if route != Route.AUTO:
        task = review_queue.new_task(decision, route, proposal.uncertainty, config, now, overflow)
        if request.fallback_seconds is not None and not delivers_now:
            task.fallback_at = now + timedelta(seconds=request.fallback_seconds)
        task.decision = decision
        session.add(task)
        session.flush()
    return decision
