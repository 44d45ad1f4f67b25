"""Admins' pages: policy configs (edit, version history with diffs, activate) and the audit log."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from bandit.db.models import PolicyConfigRow
from bandit.engine.config import ConfigError, config_from_mapping
from bandit.engine.vocabulary import AuditAction
from bandit.services import audit, configs, trust_status
from curation_app import promise, settings_form
from curation_app.auth import admin_required, current_curator_id, current_username
from curation_app.db import get_session

bp = Blueprint("settings", __name__, url_prefix="/settings")
HISTORY_LIMIT = 50
AUDIT_LIMIT = 300


@dataclass(frozen=True)
class HistoryRow:
    """One stored config version and what it changed from the previous version of its name."""

    row: PolicyConfigRow
    changes: list[tuple[str, Any, Any]]


def _history() -> list[HistoryRow]:
    rows = list(
        get_session().scalars(
            select(PolicyConfigRow).order_by(PolicyConfigRow.name, PolicyConfigRow.version)
        )
    )
    previous: dict[str, dict[str, Any]] = {}
    history = []
    for row in rows:
        document = dict(row.document)
        history.append(HistoryRow(row, settings_form.diff(previous.get(row.name), document)))
        previous[row.name] = document
    history.sort(key=lambda h: h.row.created_at, reverse=True)
    return history[:HISTORY_LIMIT]


def _page(
    values: dict[str, Any], errors: dict[str, str] | None = None, status: int = 200
) -> ResponseReturnValue:
    active_row, _ = configs.active_config(get_session())
    kept_promise = trust_status.promise_status(get_session())
    return render_template(
        "settings.html",
        promise=promise.promise_sentence(kept_promise),
        promise_today=promise.today_sentences(kept_promise),
        groups=settings_form.grouped_fields(values, errors),
        errors=errors or {},
        active=active_row,
        history=_history(),
    ), status


@bp.get("")
@admin_required
def index() -> ResponseReturnValue:
    """The active config in an editable form, and every stored version."""
    row, config = configs.active_config(get_session())
    get_session().commit()
    return _page(config.to_document())


@bp.post("")
@admin_required
def save() -> ResponseReturnValue:
    """Store the edited settings as a new version (activated when asked)."""
    session = get_session()
    config, errors, values = settings_form.parse(request.form)
    if config is None:
        flash("Not saved: correct the fields marked below.", "error")
        return _page(values, errors, 400)
    activate = request.form.get("activate") == "on"
    before_row, before = configs.active_config(session)
    try:
        row = configs.save_config(session, config, created_by=current_username(), activate=activate)
    except ConfigError as error:
        session.rollback()
        flash("Not saved: correct the fields marked below.", "error")
        return _page(values, {error.field: str(error).removeprefix(f"{error.field}: ")}, 400)
    changes = settings_form.diff(before.to_document(), config.to_document())
    audit.record(
        session,
        AuditAction.CONFIG_SAVE,
        current_username(),
        current_curator_id(),
        f"{row.name} v{row.version}",
        activated=activate,
        changes={name: [old, new] for name, old, new in changes},
    )
    session.commit()
    state = (
        "and activated" if activate else f"(not active; {before_row.name} v{before_row.version} is)"
    )
    flash(f"Saved {row.name} version {row.version} {state}.", "success")
    return redirect(url_for("settings.index"))


@bp.post("/configs/<int:config_id>/activate")
@admin_required
def activate(config_id: int) -> ResponseReturnValue:
    """Make a stored version the active one."""
    session = get_session()
    row = session.get(PolicyConfigRow, config_id)
    if row is None:
        return render_template(
            "error.html", status=404, message=f"There is no policy config {config_id}."
        ), 404
    try:
        config_from_mapping(dict(row.document))
        configs.activate_config(session, row)
    except ConfigError as error:
        session.rollback()
        flash(f"Version {row.version} of {row.name} cannot be activated: {error}", "error")
        return redirect(url_for("settings.index"))
    audit.record(
        session, AuditAction.CONFIG_ACTIVATE, current_username(), current_curator_id(),
        f"{row.name} v{row.version}",
    )  # fmt: skip
    session.commit()
    flash(f"{row.name} version {row.version} is now active.", "success")
    return redirect(url_for("settings.index"))


@bp.get("/audit")
@admin_required
def audit_log() -> ResponseReturnValue:
    """Every curator, admin and API action, newest first, filterable by action and actor."""
    session = get_session()
    action = request.args.get("action", "").strip()[:60] or None
    actor = request.args.get("actor", "").strip()[:200] or None
    return render_template(
        "audit.html",
        entries=audit.recent(session, AUDIT_LIMIT, action, actor),
        actions=audit.actions(session),
        action=action or "",
        actor=actor or "",
    )
