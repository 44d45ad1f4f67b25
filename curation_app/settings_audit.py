"""The admins' audit log page: filters by date, curator, action and target; pages; links."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from flask import render_template, request
from flask.typing import ResponseReturnValue

from bandit.services import audit
from bandit.services.audit_log import AuditFilter, actors, audit_page
from curation_app.auth import admin_required
from curation_app.db import get_session
from curation_app.settings import bp

MAX_PAGE = 10_000
_TASK_TARGET = re.compile(r"task (\d+)")


def _day(name: str, errors: list[str]) -> date | None:
    text = request.args.get(name, "").strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        errors.append(f"{name}: a date as YYYY-MM-DD; got {text[:20]!r}")
        return None


def task_of(target: str) -> int | None:
    """The task id an entry's target names, if it names one."""
    match = _TASK_TARGET.fullmatch(target)
    return int(match.group(1)) if match else None


@bp.get("/audit")
@admin_required
def audit_log() -> ResponseReturnValue:
    """Every curator, admin and API action, newest first, filtered and paged."""
    db = get_session()
    errors: list[str] = []
    since, until = _day("from", errors), _day("to", errors)
    page_text = request.args.get("page", "1").strip()
    if not page_text.isdigit() or not 1 <= int(page_text) <= MAX_PAGE:
        errors.append(f"page: a whole number from 1 to {MAX_PAGE}")
        page_text = "1"
    wanted = AuditFilter(
        action=request.args.get("action", "").strip()[:60],
        actor=request.args.get("actor", "").strip()[:200],
        target=request.args.get("target", "").strip()[:200],
        since=datetime.combine(since, datetime.min.time(), UTC) if since else None,
        # "to" is inclusive: everything before the next midnight.
        until=datetime.combine(until + timedelta(days=1), datetime.min.time(), UTC)
        if until
        else None,
    )
    found = audit_page(db, wanted, int(page_text))
    arguments = {k: v for k, v in request.args.items() if k != "page" and v}
    return render_template(
        "audit.html",
        found=found,
        wanted=wanted,
        since=since.isoformat() if since else "",
        until=until.isoformat() if until else "",
        actions=audit.actions(db),
        actors=actors(db),
        errors=errors,
        arguments=arguments,
        task_of=task_of,
    ), (400 if errors else 200)
