"""default pass: no default reward for an event whose delivered items were all answered

Revision ID: 0016_default_pass
Revises: 0015_held_checks
Create Date: 2026-12-05 10:00:00.000000

The default-reward pass gave every overdue event without an event-level outcome a default,
even one whose delivered items all had their customer outcome already: a default standing for
no item, announced to the client as a `rewarded` message with value `default_reward`. The pass
now gives none to such an event, so it needs to remember that it has been past the event:
`decisions.default_pass_at`. Events that got a default before this revision have it set to
their default's time; others are left null, and the next pass deals with each overdue one.

Going down drops the column: the code before this revision then gives the events settled
without a default a default on its next pass, as it always did.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016_default_pass"
down_revision: str | None = "0015_held_checks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("decisions") as batch:
        batch.add_column(sa.Column("default_pass_at", sa.DateTime(), nullable=True))
    op.execute(
        "UPDATE decisions SET default_pass_at = (SELECT MIN(created_at) FROM outcomes "
        "WHERE outcomes.decision_id = decisions.id AND outcomes.is_default) "
        "WHERE id IN (SELECT decision_id FROM outcomes WHERE is_default)"
    )


def downgrade() -> None:
    with op.batch_alter_table("decisions") as batch:
        batch.drop_column("default_pass_at")
