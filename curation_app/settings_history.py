"""Policy-config history: any two versions side by side, and every activation."""

from __future__ import annotations

from flask import render_template, request
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from bandit.db.models import PolicyConfigRow
from bandit.engine.vocabulary import AuditAction
from bandit.services import configs
from bandit.services.audit_log import AuditFilter, audit_page
from curation_app import settings_form
from curation_app.auth import admin_required
from curation_app.db import get_session
from curation_app.settings import bp

ACTIVATIONS_SHOWN = 50


def _version(name: str, default: PolicyConfigRow) -> tuple[PolicyConfigRow | None, str]:
    text = request.args.get(name, "").strip()
    if not text:
        return default, ""
    if not text.isdigit():
        return None, f"{name}: a config id (a whole number); got {text[:20]!r}"
    row = get_session().get(PolicyConfigRow, int(text))
    return (row, "") if row is not None else (None, f"{name}: there is no config {text}")


@bp.get("/history")
@admin_required
def history() -> ResponseReturnValue:
    """The difference between versions `a` and `b` (default: the active one), and activations."""
    db = get_session()
    active, _ = configs.active_config(db)
    older, error_a = _version("a", active)
    newer, error_b = _version("b", active)
    errors = [e for e in (error_a, error_b) if e]
    changes = []
    if older is not None and newer is not None:
        changes = settings_form.diff(dict(older.document), dict(newer.document))
    saves = audit_page(
        db, AuditFilter(action=AuditAction.CONFIG_SAVE), 1, ACTIVATIONS_SHOWN
    ).entries
    activations = [
        *[e for e in saves if e.details.get("activated")],
        *audit_page(
            db, AuditFilter(action=AuditAction.CONFIG_ACTIVATE), 1, ACTIVATIONS_SHOWN
        ).entries,
    ]
    activations.sort(key=lambda e: e.created_at, reverse=True)
    return render_template(
        "settings_history.html",
        versions=_versions(),
        older=older,
        newer=newer,
        changes=changes,
        errors=errors,
        activations=activations[:ACTIVATIONS_SHOWN],
        active=active,
    ), (400 if errors else 200)


def _versions() -> list[PolicyConfigRow]:
    """Every stored version, newest first."""
    return list(
        get_session().scalars(select(PolicyConfigRow).order_by(PolicyConfigRow.created_at.desc()))
    )
