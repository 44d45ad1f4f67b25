"""engine: explanations on proposed items, imitation examples

Revision ID: 0002_engine
Revises: 0002_console
Create Date: 2026-11-22 07:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_engine"
down_revision: str | None = "0002_console"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("proposed_items", schema=None) as batch_op:
        batch_op.add_column(sa.Column("why", sa.JSON(), nullable=True))

    op.create_table(
        "imitation_examples",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("decision_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("chosen_item_id", sa.String(length=128), nullable=False),
        sa.Column("policy_item_id", sa.String(length=128), nullable=False),
        sa.Column("matched", sa.Boolean(), nullable=False),
        sa.Column("offered_item_ids", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("learned_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["decision_id"], ["decisions.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("decision_id", "position", "source"),
    )
    with op.batch_alter_table("imitation_examples", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_imitation_examples_decision_id"), ["decision_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_imitation_examples_learned_at"), ["learned_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("imitation_examples", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_imitation_examples_learned_at"))
        batch_op.drop_index(batch_op.f("ix_imitation_examples_decision_id"))

    op.drop_table("imitation_examples")
    with op.batch_alter_table("proposed_items", schema=None) as batch_op:
        batch_op.drop_column("why")
