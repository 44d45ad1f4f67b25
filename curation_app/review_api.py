"""Review API for external tools: claim a task, send the verdict, release it, keep the lease.

Every call authenticates with a bearer token bound to a curator (`hitl token create NAME
--curator USERNAME`) and acts as that curator: the same leases, checks and audit log as the
console.

A token bound to a curator who is not an admin is not told the route of a task made under
risk-controlled routing, so that audits stay blinded (`route_blinding`): `route` reads
"review" and `already_delivered` null.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from flask import Blueprint, g, jsonify
from flask.typing import ResponseReturnValue
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from bandit.db.models import ReviewTask, utcnow
from bandit.engine.vocabulary import AuditAction
from bandit.services import audit, configs, review
from bandit.services.review import overflow
from bandit.services.review.queue import priority_at
from curation_app import review_forms, route_blinding
from curation_app.api import (
    ApiError,
    ItemId,
    TokenUse,
    bearer_required,
    handle_api_error,
    parse_body,
)
from curation_app.api_context import NO_NUL_PATTERN
from curation_app.auth import ADMIN
from curation_app.db import get_session, transaction
from curation_app.errors import status_for
from curation_app.security import api_rate_limit, csrf

bp = Blueprint("review_api", __name__, url_prefix="/api/v1/review")
csrf.exempt(bp)
api_rate_limit(bp)
bp.register_error_handler(ApiError, handle_api_error)

# PostgreSQL refuses NUL in text: without the pattern it was a 500 there.
LeaseToken = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=NO_NUL_PATTERN)]


class VerdictBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    position: Annotated[int, Field(ge=0, le=1000)]
    verdict: Literal["keep", "remove", "swap"]
    replacement_item_id: ItemId | None = None
    reason: Annotated[str, StringConstraints(max_length=500, pattern=NO_NUL_PATTERN)] = ""


class SubmitBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    lease_token: LeaseToken
    verdicts: Annotated[list[VerdictBody], Field(min_length=1, max_length=100)]
    seconds_spent: Annotated[float, Field(ge=0, lt=86_400, allow_inf_nan=False)]


class LeaseBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    lease_token: LeaseToken


require_curator_token = bearer_required(TokenUse.REVIEW)


def _log(action: str, task_id: int, **details: Any) -> None:
    """The audit entry of this request's action, in the action's own transaction."""
    audit.record(
        get_session(), action, g.curator.username, g.curator.id, f"task {task_id}",
        via=f"api:{g.api_client_name}", **details,
    )  # fmt: skip


def _route_hidden(task: ReviewTask) -> bool:
    """Whether this request's curator must not be told the task's route."""
    return route_blinding.route_hidden(get_session(), task, g.curator.role == ADMIN)


def task_document(task: ReviewTask) -> dict[str, Any]:
    """A leased task as the API hands it out: lease, context, slate and best alternates."""
    session = get_session()
    _, config = configs.active_config(session)
    decision = task.decision
    items = review_forms.review_items(session, decision)
    slate = review_forms.slate_rows(session, decision, config.blinded_review, items)
    hidden = _route_hidden(task)
    return {
        "task_id": task.id,
        "lease_token": task.lease_token,
        "leased_until": task.leased_until.isoformat() if task.leased_until else None,
        "route": route_blinding.shown_route(task, hidden),
        "already_delivered": route_blinding.already_delivered(task, hidden),
        # 2: an independent second opinion, stored for agreement only; the slate is settled.
        "review_round": task.review_round,
        "measure_name": task.measure_name,
        "measure": task.priority,
        "priority": priority_at(task, utcnow()),
        "event_id": decision.event_id,
        "context": dict(decision.context),
        "slate": [
            {
                "position": row.position,
                "item_id": row.item.item_id,
                "title": row.item.title,
                "category": row.item.category,
                "score": row.score,
                "reason": row.reason,
                **({} if row.explored is None else {"explored": row.explored}),
            }
            for row in slate
        ],
        "alternates": [
            {"item_id": alt.item.item_id, "title": alt.item.title, "score": alt.score}
            for alt in review_forms.alternates(session, decision, items=items)
        ],
    }


@bp.post("/claim")
@require_curator_token
def claim() -> ResponseReturnValue:
    """Lease the next task to the token's curator (or return the one it holds)."""
    with transaction() as session:
        overflow.upkeep(session)
    with transaction() as session:
        claimed = review.claim_task(
            session, g.curator.id, g.curator.username, via=f"api:{g.api_client_name}"
        )
        document = None if claimed is None else task_document(claimed.task)
    if document is None:
        return jsonify(task=None, message="the queue is empty")
    return jsonify(task=document)


@bp.post("/<int:task_id>")
@require_curator_token
def submit(task_id: int) -> ResponseReturnValue:
    """Record the verdict on every slate position; a repeat of the same lease changes nothing."""
    body = parse_body(SubmitBody)
    session = get_session()
    verdicts = [
        review.ItemVerdict(v.position, v.verdict, v.replacement_item_id, v.reason)
        for v in body.verdicts
    ]
    try:
        with transaction():
            submitted = review.submit_verdicts(
                session, task_id, g.curator.id, body.lease_token, verdicts, body.seconds_spent
            )
            recorded, task = submitted.recorded, submitted.task
            if recorded:
                _log(
                    AuditAction.TASK_SUBMIT,
                    task_id,
                    verdicts=review_forms.verdict_summary(verdicts),
                )
            route = route_blinding.shown_route(task, _route_hidden(task))
            message = review_forms.saved_message(route, verdicts, recorded, task.review_round)
    except review.ReviewError as error:
        raise ApiError(status_for(error), f"task {task_id}: {error}") from error
    return jsonify(task_id=task_id, recorded=recorded, duplicate=not recorded, message=message)


@bp.post("/<int:task_id>/release")
@require_curator_token
def release(task_id: int) -> ResponseReturnValue:
    """Give the task back to the queue."""
    body = parse_body(LeaseBody)
    session = get_session()
    try:
        with transaction():
            review.release(session, task_id, g.curator.id, lease_token=body.lease_token)
            _log(AuditAction.TASK_RELEASE, task_id)
    except review.ReviewError as error:
        raise ApiError(status_for(error), f"task {task_id}: {error}") from error
    return jsonify(task_id=task_id, released=True)


@bp.post("/<int:task_id>/heartbeat")
@require_curator_token
def heartbeat(task_id: int) -> ResponseReturnValue:
    """Renew the lease for another lease period."""
    body = parse_body(LeaseBody)
    try:
        with transaction() as session:
            until = review.renew_lease(session, task_id, g.curator.id, body.lease_token)
    except review.ReviewError as error:
        raise ApiError(status_for(error), f"task {task_id}: {error}") from error
    return jsonify(task_id=task_id, leased_until=until.isoformat())
