"""A curator's own day: how many tasks they reviewed since midnight UTC, and their median time."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bandit.db.models import CuratorAction, utcnow


@dataclass(frozen=True)
class CuratorDay:
    """Tasks reviewed today and the median seconds per task (None before the first)."""

    tasks: int
    median_seconds: float | None


def curator_day(session: Session, curator_id: int, now: datetime | None = None) -> CuratorDay:
    """This curator's reviews since midnight UTC; a task's time is the sum over its positions."""
    now = now or utcnow()
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    per_task = session.scalars(
        select(func.sum(CuratorAction.seconds_spent))
        .where(CuratorAction.curator_id == curator_id, CuratorAction.created_at >= midnight)
        .group_by(CuratorAction.task_id)
    ).all()
    seconds = [float(s) for s in per_task if s is not None]
    return CuratorDay(len(seconds), statistics.median(seconds) if seconds else None)
