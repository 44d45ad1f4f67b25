"""activation: a decision whose reward wait waits for the client's activate call

Revision ID: 0010_activation
Revises: 0006_console_search
Create Date: 2026-12-02 07:00:00.000000

A Personalizer-compatible event ranked with deferActivation has no reward wait and takes no
reward until the client activates it. The decision row now says so itself, so a delivery made
later (a curator's submit, an SLA overflow, a client fallback) leaves the wait unstarted and a
reward sent to the main API is refused, without reading the Personalizer event on every
delivery and every reward.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_activation"
down_revision: str | None = "0006_console_search"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("decisions") as batch:
        batch.add_column(
            sa.Column(
                "awaiting_activation", sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )
    # Events deferred and not yet activated before this revision.
    op.execute(
        "UPDATE decisions SET awaiting_activation = TRUE WHERE id IN ("
        "SELECT decision_id FROM personalizer_events "
        "WHERE deferred = TRUE AND activated_at IS NULL)"
    )


def downgrade() -> None:
    with op.batch_alter_table("decisions") as batch:
        batch.drop_column("awaiting_activation")
