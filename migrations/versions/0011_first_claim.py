"""first claim: when a review task was first claimed, kept through releases and undos

Revision ID: 0011_first_claim
Revises: 0010_activation
Create Date: 2026-12-03 10:00:00.000000

`claimed_at` is the current lease's start: the console times the curator's work from it, and a
reclaim or an undo resets it. The event document's `in_review` step is when the review first
started, so the first claim is now kept in a column of its own. Tasks claimed before this
revision take their `claimed_at`, the best time known for them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_first_claim"
down_revision: str | None = "0010_activation"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("review_tasks") as batch:
        batch.add_column(sa.Column("first_claimed_at", sa.DateTime(), nullable=True))
    op.execute("UPDATE review_tasks SET first_claimed_at = claimed_at")


def downgrade() -> None:
    with op.batch_alter_table("review_tasks") as batch:
        batch.drop_column("first_claimed_at")
