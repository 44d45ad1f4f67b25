"""held checks: a check of a slate already delivered is no longer labelled held

Revision ID: 0015_held_checks
Revises: 0014_withdrawn_time
Create Date: 2026-12-03 11:20:00.000000

Under the `hold` overflow policy, a task whose slate had already gone out (a review-after
check, an audit, a review since undone) was labelled `held` past its SLA, or at intake when the
queue was full, and counted as a held slate although nothing was held. The code now labels a
late check `check_overdue` and admits a check to a full queue unlabelled. This revision clears
`held` on the open and claimed tasks whose decision was delivered, so that they stop counting
as held and upkeep's next pass labels those past their SLA `check_overdue`, as it labels new
ones. Tasks whose slate is still waiting keep `held`; finished tasks keep their history.

Going down leaves the labels cleared: the code before this revision labels such a task `held`
again on its next upkeep pass once its SLA has passed.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0015_held_checks"
down_revision: str | None = "0014_withdrawn_time"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "UPDATE review_tasks SET overflow = NULL "
        "WHERE overflow = 'held' AND status IN ('open', 'claimed') AND decision_id IN ("
        "SELECT id FROM decisions WHERE delivered_at IS NOT NULL)"
    )


def downgrade() -> None:
    pass
