"""curator quality: double (gold) review rounds and agreement-only curator actions

Revision ID: 0003_quality
Revises: 0002_console
Create Date: 2026-11-24 10:00:00.000000

A decision may now have two review tasks: round 1 settles the slate, round 2 is an
independent second opinion kept only to measure agreement. So the one-task-per-decision
unique constraint becomes unique (decision_id, review_round).
"""

from collections.abc import Sequence
from typing import Literal

import sqlalchemy as sa
from alembic import op

revision: str = "0003_quality"
down_revision: str | None = "0002_engine"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# 0001 left the decision_id constraint unnamed. SQLite reflects it without a name, so batch
# mode names it with this convention; PostgreSQL named it itself ("review_tasks_decision_id_key").
SQLITE_NAMES = {"uq": "uq_%(table_name)s_%(column_0_name)s"}
ROUND_CONSTRAINT = "uq_review_tasks_decision_round"


def _single_decision_constraint() -> str:
    inspector = sa.inspect(op.get_bind())
    for constraint in inspector.get_unique_constraints("review_tasks"):
        if constraint["column_names"] == ["decision_id"] and constraint["name"]:
            return str(constraint["name"])
    return "uq_review_tasks_decision_id"


def _recreate() -> Literal["always", "auto"]:
    # SQLite cannot alter constraints in place, so its table is copied; PostgreSQL alters it
    # (copying it there would drop the primary key that other tables' foreign keys use).
    # On SQLite, env.py turns foreign keys off while migrating, or dropping the old copy of a
    # table that other rows point at would fail.
    return "always" if op.get_bind().dialect.name == "sqlite" else "auto"


def upgrade() -> None:
    old_name = _single_decision_constraint()
    with op.batch_alter_table(
        "review_tasks", recreate=_recreate(), naming_convention=SQLITE_NAMES
    ) as batch_op:
        batch_op.add_column(
            sa.Column("review_round", sa.Integer(), nullable=False, server_default="1")
        )
        batch_op.drop_constraint(old_name, type_="unique")
        batch_op.create_unique_constraint(ROUND_CONSTRAINT, ["decision_id", "review_round"])

    with op.batch_alter_table("curator_actions") as batch_op:
        batch_op.add_column(
            sa.Column("agreement_only", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    # Second opinions cannot live under one-task-per-decision: they are dropped on the way down.
    connection = op.get_bind()
    connection.execute(
        sa.text("DELETE FROM curator_actions WHERE agreement_only = :yes"), {"yes": True}
    )
    connection.execute(
        sa.text(
            "DELETE FROM slate_verifications WHERE task_id IN "
            "(SELECT id FROM review_tasks WHERE review_round > 1)"
        )
    )
    connection.execute(sa.text("DELETE FROM review_tasks WHERE review_round > 1"))
    with op.batch_alter_table("curator_actions") as batch_op:
        batch_op.drop_column("agreement_only")
    with op.batch_alter_table("review_tasks", recreate=_recreate()) as batch_op:
        batch_op.drop_constraint(ROUND_CONSTRAINT, type_="unique")
        batch_op.drop_column("review_round")
        batch_op.create_unique_constraint("review_tasks_decision_id_key", ["decision_id"])
