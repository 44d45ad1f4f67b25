"""The audit log as admins read it: filtered by date, curator, action and target, paged."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bandit.db.models import AuditEntry

PER_PAGE = 50


@dataclass(frozen=True)
class AuditFilter:
    """Which entries to show; empty fields do not filter."""

    action: str = ""
    actor: str = ""
    target: str = ""
    since: datetime | None = None
    until: datetime | None = None  # exclusive


@dataclass(frozen=True)
class AuditPage:
    """One page of matching entries, newest first, and how many match in all."""

    entries: list[AuditEntry]
    page: int
    total: int
    per_page: int

    @property
    def pages(self) -> int:
        """How many pages the matching entries fill (at least 1)."""
        return max(1, -(-self.total // self.per_page))


def audit_page(
    session: Session, wanted: AuditFilter, page: int = 1, per_page: int = PER_PAGE
) -> AuditPage:
    """The entries matching `wanted`, one page of them."""
    conditions = []
    if wanted.action:
        conditions.append(AuditEntry.action == wanted.action)
    if wanted.actor:
        conditions.append(AuditEntry.actor == wanted.actor)
    if wanted.target:
        conditions.append(AuditEntry.target == wanted.target)
    if wanted.since is not None:
        conditions.append(AuditEntry.created_at >= wanted.since)
    if wanted.until is not None:
        conditions.append(AuditEntry.created_at < wanted.until)
    total = int(
        session.scalar(select(func.count()).select_from(AuditEntry).where(*conditions)) or 0
    )
    page = max(1, page)
    entries = session.scalars(
        select(AuditEntry)
        .where(*conditions)
        .order_by(AuditEntry.created_at.desc(), AuditEntry.id.desc())
        .offset((page - 1) * per_page)
        .limit(per_page)
    )
    return AuditPage(list(entries), page, total, per_page)


def actors(session: Session) -> list[str]:
    """Everyone who appears in the log, for the filter."""
    return sorted(session.scalars(select(AuditEntry.actor).distinct()))
