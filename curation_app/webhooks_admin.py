"""Admins' webhook page: endpoints (add, remove), the delivery log with attempts, replay."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from bandit.db.models import utcnow
from bandit.engine.vocabulary import AuditAction, WebhookStatus
from bandit.services import audit, webhooks
from curation_app.auth import admin_required, current_curator_id, current_username
from curation_app.db import get_session

bp = Blueprint("webhooks_admin", __name__, url_prefix="/settings/webhooks")
LOG_LIMIT = 200


def _page(status: int = 200, new_secret: str | None = None) -> ResponseReturnValue:
    session = get_session()
    shown = request.args.get("status", "").strip()
    shown = shown if shown in tuple(WebhookStatus) else ""
    log = webhooks.delivery_log(session, LOG_LIMIT, shown or None)
    return render_template(
        "webhooks.html",
        endpoints=webhooks.endpoints(session),
        log=log,
        attempts=webhooks.attempts_of(session, [delivery.id for delivery, _, _ in log]),
        kinds=webhooks.EVENT_KINDS,
        statuses=tuple(WebhookStatus),
        shown=shown,
        new_secret=new_secret,
    ), status


@bp.get("")
@admin_required
def index() -> ResponseReturnValue:
    """Endpoints and the newest deliveries."""
    return _page()


@bp.post("")
@admin_required
def add() -> ResponseReturnValue:
    """Register an endpoint; its secret is shown on this one answer only."""
    session = get_session()
    try:
        endpoint = webhooks.add_endpoint(
            session,
            request.form.get("url", ""),
            request.form.getlist("events"),
            current_username(),
            request.form.get("description", "").strip(),
        )
    except webhooks.WebhookError as error:
        session.rollback()
        flash(f"Not added: {error}", "error")
        return _page(400)
    audit.record(
        session, AuditAction.WEBHOOK_ADD, current_username(), current_curator_id(), endpoint.url,
        events=endpoint.events,
    )  # fmt: skip
    session.commit()
    flash(f"Added endpoint {endpoint.id}. Copy its signing secret now.", "success")
    return _page(201, new_secret=endpoint.secret)


@bp.post("/<int:endpoint_id>/remove")
@admin_required
def remove(endpoint_id: int) -> ResponseReturnValue:
    """Stop sending to an endpoint; its log stays."""
    session = get_session()
    try:
        endpoint = webhooks.deactivate_endpoint(session, endpoint_id)
    except webhooks.WebhookError as error:
        session.rollback()
        flash(str(error), "error")
        return redirect(url_for("webhooks_admin.index"))
    audit.record(
        session, AuditAction.WEBHOOK_REMOVE, current_username(), current_curator_id(), endpoint.url
    )
    session.commit()
    flash(f"Endpoint {endpoint_id} removed.", "success")
    return redirect(url_for("webhooks_admin.index"))


@bp.post("/deliveries/<delivery_id>/replay")
@admin_required
def replay(delivery_id: str) -> ResponseReturnValue:
    """Queue a failed delivery again, with the same delivery id."""
    session = get_session()
    try:
        webhooks.replay(session, delivery_id, webhooks.WebhookSettings(), utcnow())
    except webhooks.WebhookError as error:
        session.rollback()
        flash(f"Not replayed: {error}", "error")
        return redirect(url_for("webhooks_admin.index"))
    audit.record(
        session, AuditAction.WEBHOOK_REPLAY, current_username(), current_curator_id(), delivery_id
    )
    session.commit()
    flash(f"Delivery {delivery_id} queued again.", "success")
    return redirect(url_for("webhooks_admin.index"))
