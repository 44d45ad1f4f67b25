"""withdrawn time: the review time of a submit since undone, kept for the next submit

Revision ID: 0014_withdrawn_time
Revises: 0013_task_end
Create Date: 2026-12-04 10:00:00.000000

An undo deletes the submit's verdicts (`curator_actions`), and with them the seconds the
curator spent, so the time vanished from the curator's time per task and every total. The
task now keeps the withdrawn seconds and who spent them until that curator's next submit
carries them. Submits undone before this revision lost their time; it is not recoverable.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_withdrawn_time"
down_revision: str | None = "0013_task_end"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FOREIGN_KEY = "fk_review_tasks_withdrawn_by"


def upgrade() -> None:
    with op.batch_alter_table("review_tasks") as batch:
        batch.add_column(
            sa.Column("withdrawn_seconds", sa.Float(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("withdrawn_by", sa.Integer(), nullable=True))
        batch.create_foreign_key(FOREIGN_KEY, "curators", ["withdrawn_by"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("review_tasks") as batch:
        batch.drop_constraint(FOREIGN_KEY, type_="foreignkey")
        batch.drop_column("withdrawn_by")
        batch.drop_column("withdrawn_seconds")
