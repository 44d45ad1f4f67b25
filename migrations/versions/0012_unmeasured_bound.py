"""unmeasured bound: a learn pass that tested no threshold stores no override rate or bound

Revision ID: 0012_unmeasured_bound
Revises: 0011_first_claim
Create Date: 2026-12-03 11:30:00.000000

A pass with no calibrated approval model, or too little evidence to test any threshold, stored
rate 0.0 and bound 1.0 in `risk_thresholds`, which the audit log and the simulator's report
read as measured figures (`measured_override_bound_last` 1.0 for baselines that never logged an
approval score). Such rows are the ones with n = 0 (a test needs at least the smallest sample
that could pass); their rate and bound become NULL.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_unmeasured_bound"
down_revision: str | None = "0011_first_claim"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("risk_thresholds") as batch:
        batch.alter_column("rate", existing_type=sa.Float(), nullable=True)
        batch.alter_column("bound", existing_type=sa.Float(), nullable=True)
    op.execute("UPDATE risk_thresholds SET rate = NULL, bound = NULL WHERE n = 0")


def downgrade() -> None:
    op.execute("UPDATE risk_thresholds SET rate = 0.0, bound = 1.0 WHERE bound IS NULL")
    with op.batch_alter_table("risk_thresholds") as batch:
        batch.alter_column("rate", existing_type=sa.Float(), nullable=False)
        batch.alter_column("bound", existing_type=sa.Float(), nullable=False)
