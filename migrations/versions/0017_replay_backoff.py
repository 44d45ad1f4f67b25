"""replay backoff: a replayed webhook delivery restarts its backoff

Revision ID: 0017_replay_backoff
Revises: 0016_default_pass
Create Date: 2026-12-05 11:00:00.000000

The retry delay was computed from a delivery's total `attempts`, so after nine failed
attempts and a replay the next retry was some 50 minutes away instead of 10 s, and past about
1,024 attempts the delay overflowed and aborted the send pass. The delay now counts the
attempts since the delivery was made or last replayed: `webhook_deliveries.
attempts_before_replay` holds `attempts` at the last replay. Existing deliveries get 0 (their
backoff counts from their first attempt, as before); `attempts` and the attempt log keep the
total.

Going down drops the column: the code before this revision counts every attempt again.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017_replay_backoff"
down_revision: str | None = "0016_default_pass"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.add_column(
            sa.Column("attempts_before_replay", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.drop_column("attempts_before_replay")
