"""prod: Personalizer-compatible events (multi-slot slot ids, deferred activation)

Revision ID: 0009_prod
Revises: 0007_event_record
Create Date: 2026-12-01 09:00:00.000000

A decision made through the Personalizer-compatible API keeps its slot ids (multi-slot rank)
and whether the client deferred its activation; a deferred event is learned only once the
client activates it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_prod"
down_revision: str | None = "0007_event_record"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "personalizer_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("decision_id", sa.Integer(), nullable=False),
        sa.Column("slot_ids", sa.JSON(), nullable=True),
        sa.Column("deferred", sa.Boolean(), nullable=False),
        sa.Column("activated_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["decision_id"], ["decisions.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("decision_id"),
    )


def downgrade() -> None:
    op.drop_table("personalizer_events")
