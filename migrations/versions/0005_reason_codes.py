"""reason codes: proposed items store [code, number] pairs instead of English text

Revision ID: 0005_reason_codes
Revises: 0004_claim_perf
Create Date: 2026-12-01 09:00:00.000000

The engine used to write its reasons as English; now it returns codes with their numbers and
the console words them. Existing rows are parsed back from the phrases the engine wrote (a
fixed set), so old decisions keep their reasons; the downgrade writes the phrases again.
"""

import json
import re
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_reason_codes"
down_revision: str | None = "0004_claim_perf"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The phrases engine.py wrote before this revision, and the codes they stand for.
_PHRASES = (
    (re.compile(r"^matches preferred style "), "style_match", None),
    (re.compile(r"^a favourite category$"), "favourite_category", None),
    (re.compile(r"^above budget$"), "above_budget", None),
    (re.compile(r"^taste match ([+-]?\d+(?:\.\d+)?)$"), "taste_match", 1),
    (re.compile(r"^curators often keep or add it$"), "curators_keep", None),
    (re.compile(r"^entered via an exploration slot$"), "exploration_slot", None),
    (re.compile(r"^model expects reward ([+-]?\d+(?:\.\d+)?)$"), "expected_reward", 1),
)
_EXPLORATION_NOTE = " · exploration pick"


def parse_reason(text: str) -> list[list[object]]:
    """The codes behind an old English reason (unknown phrases are dropped)."""
    explored = text.endswith(_EXPLORATION_NOTE)
    if explored:
        text = text[: -len(_EXPLORATION_NOTE)]
    codes: list[list[object]] = []
    for phrase in filter(None, (part.strip() for part in text.split(";"))):
        for pattern, code, group in _PHRASES:
            match = pattern.match(phrase)
            if match:
                codes.append([code, float(match.group(group)) if group else 1.0])
                break
    if explored:
        codes.append(["exploration_pick", 1.0])
    return codes


def _words(codes: list[list[object]]) -> str:
    names = {
        "style_match": "matches preferred style",
        "favourite_category": "a favourite category",
        "above_budget": "above budget",
        "curators_keep": "curators often keep or add it",
        "exploration_slot": "entered via an exploration slot",
    }
    phrases, explored = [], False
    for code, value in codes:
        if code == "taste_match":
            phrases.append(f"taste match {float(value):+.2f}")  # type: ignore[arg-type]
        elif code == "expected_reward":
            phrases.append(f"model expects reward {float(value):.2f}")  # type: ignore[arg-type]
        elif code == "exploration_pick":
            explored = True
        elif code in names:
            phrases.append(names[str(code)])
    return "; ".join(phrases) + (_EXPLORATION_NOTE if explored else "")


def upgrade() -> None:
    with op.batch_alter_table("proposed_items", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reasons", sa.JSON(), nullable=True))
    connection = op.get_bind()
    rows = connection.execute(sa.text("SELECT id, reason FROM proposed_items")).all()
    update = sa.text("UPDATE proposed_items SET reasons = :reasons WHERE id = :id").bindparams(
        sa.bindparam("reasons", type_=sa.JSON)
    )
    for row_id, reason in rows:
        connection.execute(update, {"reasons": parse_reason(reason or ""), "id": row_id})
    with op.batch_alter_table("proposed_items", schema=None) as batch_op:
        batch_op.drop_column("reason")


def downgrade() -> None:
    with op.batch_alter_table("proposed_items", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reason", sa.String(500), nullable=False, server_default=""))
    connection = op.get_bind()
    rows = connection.execute(sa.text("SELECT id, reasons FROM proposed_items")).all()
    update = sa.text("UPDATE proposed_items SET reason = :reason WHERE id = :id")
    for row_id, reasons in rows:
        codes = json.loads(reasons) if isinstance(reasons, str) else (reasons or [])
        connection.execute(update, {"reason": _words(codes)[:500], "id": row_id})
    with op.batch_alter_table("proposed_items", schema=None) as batch_op:
        batch_op.drop_column("reasons")
