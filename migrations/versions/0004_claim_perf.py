"""claim perf: index the overflow check's (status, due_at) lookup

Revision ID: 0004_claim_perf
Revises: 0003_quality
Create Date: 2026-11-26 10:00:00.000000

Queue upkeep runs on every claim and selects open tasks past their SLA. With only the status
index that reads every open task on each claim; (status, due_at) makes it a range scan.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004_claim_perf"
down_revision: str | None = "0003_quality"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("review_tasks", schema=None) as batch_op:
        batch_op.create_index("ix_review_tasks_due", ["status", "due_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("review_tasks", schema=None) as batch_op:
        batch_op.drop_index("ix_review_tasks_due")
