"""event record: delivery written once, corrections apart, an outbox and webhooks

Revision ID: 0007_event_record
Revises: 0005_reason_codes
Create Date: 2026-12-01 10:00:00.000000

Until now a review-after verdict rewrote ``final_slate_items``, so the record of what the
customer received changed after the fact. This revision stores the delivery as sent
(``decisions.delivered_slate``) and overturns as ``slate_corrections``. Existing rows are
migrated: a delivered review-before slate is what the curator (or client) left, any other
delivered slate is the policy's proposal, and a review-after slate that a curator changed
becomes a correction at the time of its verification. The outbox (``event_changes``) and
the webhook tables start empty: no client was subscribed before.
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0007_event_record"
down_revision: str | None = "0005_reason_codes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DELIVERED_TAGS = ("kept", "swapped_in")


def upgrade() -> None:
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("delivered_slate", sa.JSON(), nullable=True))
    with op.batch_alter_table("review_tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("fallback_at", sa.DateTime(), nullable=True))
    op.create_table(
        "slate_corrections",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("decision_id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=True),
        sa.Column("curator_id", sa.Integer(), nullable=True),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["decision_id"], ["decisions.id"]),
        sa.ForeignKeyConstraint(["task_id"], ["review_tasks.id"]),
        sa.ForeignKeyConstraint(["curator_id"], ["curators.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_slate_corrections_decision_id", "slate_corrections", ["decision_id"])
    op.create_table(
        "event_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("decision_id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("dispatched_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["decision_id"], ["decisions.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_event_changes_decision_id", "event_changes", ["decision_id"])
    op.create_index("ix_event_changes_undispatched", "event_changes", ["dispatched_at", "id"])
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(2000), nullable=False),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("secret", sa.String(100), nullable=False),
        sa.Column("description", sa.String(200), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(80), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("delivery_id", sa.String(64), nullable=False),
        sa.Column("endpoint_id", sa.Integer(), nullable=False),
        sa.Column("change_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=True),
        sa.Column("give_up_at", sa.DateTime(), nullable=False),
        sa.Column("last_error", sa.String(500), nullable=False),
        sa.Column("delivered_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["endpoint_id"], ["webhook_endpoints.id"]),
        sa.ForeignKeyConstraint(["change_id"], ["event_changes.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("delivery_id"),
        sa.UniqueConstraint("endpoint_id", "change_id"),
    )
    op.create_index("ix_webhook_deliveries_endpoint_id", "webhook_deliveries", ["endpoint_id"])
    op.create_index(
        "ix_webhook_deliveries_due", "webhook_deliveries", ["status", "next_attempt_at"]
    )
    op.create_table(
        "webhook_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("delivery_id", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("error", sa.String(500), nullable=False),
        sa.ForeignKeyConstraint(["delivery_id"], ["webhook_deliveries.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_webhook_attempts_delivery_id", "webhook_attempts", ["delivery_id"])
    _migrate_deliveries(op.get_bind())


def _migrate_deliveries(connection: sa.Connection) -> None:
    decisions = connection.execute(
        sa.text(
            "SELECT id, route, delivered_at FROM decisions WHERE delivered_at IS NOT NULL "
            "ORDER BY id"
        )
    ).all()
    set_slate = sa.text("UPDATE decisions SET delivered_slate = :slate WHERE id = :id").bindparams(
        sa.bindparam("slate", type_=sa.JSON)
    )
    add_correction = sa.text(
        "INSERT INTO slate_corrections (decision_id, task_id, curator_id, changes, created_at) "
        "VALUES (:decision_id, :task_id, :curator_id, :changes, :created_at)"
    ).bindparams(sa.bindparam("changes", type_=sa.JSON))
    for decision_id, route, delivered_at in decisions:
        proposed = connection.execute(
            sa.text(
                "SELECT position, item_id FROM proposed_items WHERE decision_id = :id "
                "ORDER BY position"
            ),
            {"id": decision_id},
        ).all()
        final = connection.execute(
            sa.text(
                "SELECT position, item_id, tag, decided_by, replaced_item_id "
                "FROM final_slate_items WHERE decision_id = :id ORDER BY id"
            ),
            {"id": decision_id},
        ).all()
        if route == "review_before":
            slate = [
                _entry(position, item_id, decided_by, replaced)
                for position, item_id, tag, decided_by, replaced in sorted(final)
                if tag in DELIVERED_TAGS
            ]
        else:
            slate = [_entry(position, item_id, "policy", None) for position, item_id in proposed]
        connection.execute(set_slate, {"slate": slate, "id": decision_id})
        changes = _changes(final) if route == "review_after" else []
        if changes:
            by_whom = _verification(connection, decision_id)
            by_whom["created_at"] = by_whom["created_at"] or delivered_at
            connection.execute(
                add_correction, {"decision_id": decision_id, "changes": changes, **by_whom}
            )


def _entry(position: int, item_id: str, decided_by: str, replaced: str | None) -> dict[str, Any]:
    return {
        "position": position,
        "item_id": item_id,
        "decided_by": decided_by,
        "replaced_item_id": replaced,
    }


def _changes(final: Sequence[Any]) -> list[dict[str, Any]]:
    """The curator's overturns of a review-after slate, from its rewritten final-slate rows."""
    swapped_in = {
        position: item_id for position, item_id, tag, _, _ in final if tag == "swapped_in"
    }
    changes = []
    for position, item_id, tag, _, _ in sorted(final):
        if tag == "swapped_out":
            changes.append({"position": position, "action": "replace", "item_id": item_id,
                            "replacement_item_id": swapped_in.get(position)})  # fmt: skip
        elif tag == "removed":
            changes.append({"position": position, "action": "remove", "item_id": item_id,
                            "replacement_item_id": None})  # fmt: skip
    return changes


def _verification(connection: sa.Connection, decision_id: int) -> dict[str, Any]:
    row = connection.execute(
        sa.text(
            "SELECT v.task_id, v.curator_id, v.created_at FROM slate_verifications v "
            "WHERE v.decision_id = :id ORDER BY v.id LIMIT 1"
        ),
        {"id": decision_id},
    ).first()
    if row is not None:
        return {"task_id": row[0], "curator_id": row[1], "created_at": row[2]}
    task = connection.execute(
        sa.text(
            "SELECT id, curator_id, completed_at, created_at FROM review_tasks "
            "WHERE decision_id = :id ORDER BY review_round LIMIT 1"
        ),
        {"id": decision_id},
    ).first()
    if task is None:
        return {"task_id": None, "curator_id": None, "created_at": None}
    return {"task_id": task[0], "curator_id": task[1], "created_at": task[2] or task[3]}


def downgrade() -> None:
    op.drop_table("webhook_attempts")
    op.drop_table("webhook_deliveries")
    op.drop_table("webhook_endpoints")
    op.drop_table("event_changes")
    op.drop_table("slate_corrections")
    with op.batch_alter_table("review_tasks", schema=None) as batch_op:
        batch_op.drop_column("fallback_at")
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.drop_column("delivered_slate")
