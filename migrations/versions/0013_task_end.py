"""task end: an overflowed review task records when it stopped waiting

Revision ID: 0013_task_end
Revises: 0012_unmeasured_bound
Create Date: 2026-12-03 11:40:00.000000

A review task's `completed_at` was set only by a curator's submit and an apprentice client's
choice. A task that overflowed (sent out or closed unreviewed by upkeep past its SLA or client
fallback time, or created overflowed because the queue was full) kept none, so the queue's
history could not tell when it stopped waiting. Upkeep and intake now set it; this revision
fills it in for the tasks that overflowed before, from what their rows stored:

- sent out unreviewed (`delivered_unreviewed`, `client_fallback`): the decision's
  `delivered_at`, the delivery that closed the task (at intake, the moment it was created);
- closed with its slate already out (`closed_unreviewed`): no row stored that moment. The
  earlier of its SLA due time and its client fallback time, the first moment upkeep could
  close it, is used; the true close was the first upkeep pass after it (a claim runs one), so
  these old waits may read somewhat short.

Nothing is added to the schema, so going down leaves the values (the code before this
revision ignores an overflowed task's `completed_at`).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013_task_end"
down_revision: str | None = "0012_unmeasured_bound"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "UPDATE review_tasks SET completed_at = COALESCE("
        "CASE WHEN overflow IN ('delivered_unreviewed', 'client_fallback') THEN ("
        "SELECT decisions.delivered_at FROM decisions "
        "WHERE decisions.id = review_tasks.decision_id) END, "
        "CASE WHEN fallback_at IS NOT NULL AND (due_at IS NULL OR fallback_at < due_at) "
        "THEN fallback_at ELSE due_at END, "
        "created_at) "
        "WHERE status = 'overflowed' AND completed_at IS NULL"
    )


def downgrade() -> None:
    # The filled-in times are true under the old code too, which never reads them.
    pass
