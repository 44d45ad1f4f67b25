"""curation console: queue aging, overflow, verifications, audit log, curator-bound tokens

Revision ID: 0002_console
Revises: 0001
Create Date: 2026-11-23 10:00:00.000000
"""

from collections.abc import Sequence
from datetime import UTC

import sqlalchemy as sa
from alembic import op

revision: str = "0002_console"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("review_tasks", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("measure_name", sa.String(length=40), nullable=False, server_default="")
        )
        batch_op.add_column(sa.Column("queue_key", sa.Float(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("due_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("overflow", sa.String(length=30), nullable=True))
        batch_op.create_index("ix_review_tasks_aging", ["status", "queue_key"], unique=False)
    _order_existing_tasks()

    with op.batch_alter_table("api_clients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("curator_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            "fk_api_clients_curator_id_curators", "curators", ["curator_id"], ["id"]
        )

    op.create_table(
        "slate_verifications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("decision_id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("curator_id", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("delivered_before", sa.JSON(), nullable=False),
        sa.Column("delivered_after", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["curator_id"], ["curators.id"]),
        sa.ForeignKeyConstraint(["decision_id"], ["decisions.id"]),
        sa.ForeignKeyConstraint(["task_id"], ["review_tasks.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("task_id"),
    )
    with op.batch_alter_table("slate_verifications", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_slate_verifications_decision_id"), ["decision_id"], unique=False
        )

    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("curator_id", sa.Integer(), nullable=True),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=60), nullable=False),
        sa.Column("target", sa.String(length=200), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["curator_id"], ["curators.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_log_action"), ["action"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_log_created_at"), ["created_at"], unique=False)


def _order_existing_tasks() -> None:
    # Tasks queued before this revision: their measure is in `priority`; the default SLA applies.
    connection = op.get_bind()
    rows = connection.execute(sa.text("SELECT id, priority, created_at FROM review_tasks")).all()
    for task_id, priority, created_at in rows:
        created = created_at.replace(tzinfo=UTC).timestamp()
        connection.execute(
            sa.text("UPDATE review_tasks SET queue_key = :key WHERE id = :id"),
            {"key": created - float(priority) * 4 * 3600, "id": task_id},
        )


def downgrade() -> None:
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_log_created_at"))
        batch_op.drop_index(batch_op.f("ix_audit_log_action"))
    op.drop_table("audit_log")
    with op.batch_alter_table("slate_verifications", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_slate_verifications_decision_id"))
    op.drop_table("slate_verifications")
    with op.batch_alter_table("api_clients", schema=None) as batch_op:
        batch_op.drop_constraint("fk_api_clients_curator_id_curators", type_="foreignkey")
        batch_op.drop_column("curator_id")
    with op.batch_alter_table("review_tasks", schema=None) as batch_op:
        batch_op.drop_index("ix_review_tasks_aging")
        batch_op.drop_column("overflow")
        batch_op.drop_column("due_at")
        batch_op.drop_column("queue_key")
        batch_op.drop_column("measure_name")
