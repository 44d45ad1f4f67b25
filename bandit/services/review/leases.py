"""Changing a task under a live lease: one conditional UPDATE that only the lease holder wins."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from bandit.db.models import ReviewTask
from bandit.engine.vocabulary import TaskStatus
from bandit.services.review.errors import LOST_LEASE, LeaseLost, TaskNotFound


def update_live_lease(
    session: Session,
    task_id: int,
    curator_id: int,
    lease_token: str,
    now: datetime,
    values: Mapping[str, Any],
) -> None:
    """Set `values` on the task if this curator's lease `lease_token` on it is still live.

    The condition is in the UPDATE itself, so a racing claim, expiry or second request can
    never both pass a check and write. Raises TaskNotFound or LeaseLost otherwise.
    """
    changed = session.execute(
        update(ReviewTask)
        .where(
            ReviewTask.id == task_id,
            ReviewTask.status == TaskStatus.CLAIMED,
            ReviewTask.curator_id == curator_id,
            ReviewTask.lease_token == lease_token,
            ReviewTask.leased_until >= now,
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if changed.rowcount != 1:  # type: ignore[attr-defined]
        if session.get(ReviewTask, task_id) is None:
            raise TaskNotFound(f"no review task {task_id}")
        raise LeaseLost(LOST_LEASE)
