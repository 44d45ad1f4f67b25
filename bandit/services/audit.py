"""The audit log: who did what to which task, config or account, and when."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bandit.db.models import AuditEntry, utcnow

MAX_TARGET = 200


def record(
    session: Session,
    action: str,
    actor: str,
    curator_id: int | None = None,
    target: str = "",
    now: datetime | None = None,
    **details: Any,
) -> AuditEntry:
    """Add one entry; the caller's transaction commits it with the action itself."""
    entry = AuditEntry(
        curator_id=curator_id,
        actor=actor[:200],
        action=action,
        target=target[:MAX_TARGET],
        details=details,
        created_at=now or utcnow(),
    )
    session.add(entry)
    return entry


def recent(
    session: Session, limit: int = 200, action: str | None = None, actor: str | None = None
) -> list[AuditEntry]:
    """The newest entries first, optionally only one action or one actor."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if action:
        query = query.where(AuditEntry.action == action)
    if actor:
        query = query.where(AuditEntry.actor == actor)
    return list(session.scalars(query))


def actions(session: Session) -> list[str]:
    """Every action name logged so far, for the filter."""
    return sorted(session.scalars(select(AuditEntry.action).distinct()))
