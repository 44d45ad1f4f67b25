"""trustworthy automation: approval model with each model version, routing evidence per
decision, risk-controlled thresholds with their evidence, what reviews taught the model

Revision ID: 0008_trust
Revises: 0005_reason_codes
Create Date: 2026-12-01 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_trust"
down_revision: str | None = "0005_reason_codes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("model_versions") as batch:
        batch.add_column(sa.Column("approval_bytes", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("approval_state", sa.JSON(), nullable=True))
    with op.batch_alter_table("decisions") as batch:
        batch.add_column(sa.Column("approval_probability", sa.Float(), nullable=True))
        batch.add_column(sa.Column("auto_threshold", sa.Float(), nullable=True))
        batch.add_column(
            sa.Column("audit", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(
            sa.Column("audit_probability", sa.Float(), nullable=False, server_default="0")
        )
        batch.add_column(
            sa.Column("approval_role", sa.String(12), nullable=False, server_default="train")
        )
        batch.create_index("ix_decisions_approval_role", ["approval_role", "id"])
    op.create_table(
        "risk_thresholds",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("model_version", sa.Integer(), nullable=False, index=True),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("target", sa.Float(), nullable=False),
        sa.Column("confidence_level", sa.Float(), nullable=False),
        sa.Column("evidence", sa.Integer(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("overrides", sa.Integer(), nullable=False),
        sa.Column("rate", sa.Float(), nullable=False),
        sa.Column("bound", sa.Float(), nullable=False),
        sa.Column("projected_automation", sa.Float(), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False, index=True),
    )
    op.create_table(
        "review_lessons",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("model_version", sa.Integer(), nullable=False, index=True),
        sa.Column("curator_id", sa.Integer(), sa.ForeignKey("curators.id"), nullable=True),
        sa.Column("item_id", sa.String(128), nullable=False),
        sa.Column("change", sa.Float(), nullable=False),
        sa.Column("verdicts", sa.Integer(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("review_lessons")
    op.drop_table("risk_thresholds")
    with op.batch_alter_table("decisions") as batch:
        batch.drop_index("ix_decisions_approval_role")
        for name in (
            "approval_role",
            "audit_probability",
            "audit",
            "auto_threshold",
            "approval_probability",
        ):
            batch.drop_column(name)
    with op.batch_alter_table("model_versions") as batch:
        batch.drop_column("approval_state")
        batch.drop_column("approval_bytes")
