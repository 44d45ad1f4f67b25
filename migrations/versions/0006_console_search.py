"""console search: item pictures, per-curator skips, full-text search over the catalog

Revision ID: 0006_console_search
Revises: 0008_trust
Create Date: 2026-12-01 09:10:00.000000

- `catalog_items.image_url`: a picture of the item (http(s) URL or a path under the media
  folder); items without one get a generated picture.
- `task_skips`: a curator's skipped tasks, so "next" serves them after everything else.
- Catalog text search. PostgreSQL: a stored generated `tsvector` over title, brand, colour,
  material, category, style and item id ('simple' configuration: no stemming, so a partial word
  typed by a curator matches as a prefix), with a GIN index. SQLite: an FTS5 table holding the
  same text, kept in step with `catalog_items` by triggers.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_console_search"
down_revision: str | None = "0008_trust"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The searchable fields, the same on both backends.
# Punctuation becomes spaces before parsing, as SQLite's unicode61 tokenizer does, so both
# backends see the same words (PostgreSQL's parser would otherwise drop "<b>x</b>" as markup
# and keep "sku-12" whole).
_PG_DOCUMENT = (
    "to_tsvector('simple', regexp_replace("
    "coalesce(title, '') || ' ' || coalesce(category, '') || ' ' || "
    "coalesce(attributes->>'brand', '') || ' ' || coalesce(attributes->>'color', '') || ' ' || "
    "coalesce(attributes->>'material', '') || ' ' || coalesce(attributes->>'style', '') || ' ' || "
    "item_id, '[^[:alnum:]]+', ' ', 'g'))"
)
_SQLITE_VALUES = (
    "{row}.id, {row}.item_id, {row}.title, {row}.category, "
    "coalesce(json_extract({row}.attributes, '$.brand'), ''), "
    "coalesce(json_extract({row}.attributes, '$.color'), ''), "
    "coalesce(json_extract({row}.attributes, '$.material'), ''), "
    "coalesce(json_extract({row}.attributes, '$.style'), '')"
)
_SQLITE_COLUMNS = "rowid, item_id, title, category, brand, color, material, style"


def upgrade() -> None:
    with op.batch_alter_table("catalog_items", schema=None) as batch_op:
        batch_op.add_column(sa.Column("image_url", sa.String(length=2000), nullable=True))
    op.create_table(
        "task_skips",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("curator_id", sa.Integer(), nullable=False),
        sa.Column("skipped_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["task_id"], ["review_tasks.id"]),
        sa.ForeignKeyConstraint(["curator_id"], ["curators.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("task_id", "curator_id"),
    )
    op.create_index("ix_task_skips_curator", "task_skips", ["curator_id", "skipped_at"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"ALTER TABLE catalog_items ADD COLUMN search_vector tsvector "
            f"GENERATED ALWAYS AS ({_PG_DOCUMENT}) STORED"
        )
        op.execute(
            "CREATE INDEX ix_catalog_items_search ON catalog_items USING gin (search_vector)"
        )
        return
    op.execute(
        "CREATE VIRTUAL TABLE catalog_fts USING fts5("
        "item_id, title, category, brand, color, material, style, "
        "tokenize = 'unicode61 remove_diacritics 2')"
    )
    op.execute(
        f"INSERT INTO catalog_fts ({_SQLITE_COLUMNS}) "
        f"SELECT {_SQLITE_VALUES.format(row='catalog_items')} FROM catalog_items"
    )
    op.execute(
        "CREATE TRIGGER catalog_fts_insert AFTER INSERT ON catalog_items BEGIN "
        f"INSERT INTO catalog_fts ({_SQLITE_COLUMNS}) VALUES ({_SQLITE_VALUES.format(row='new')}); "
        "END"
    )
    op.execute(
        "CREATE TRIGGER catalog_fts_update AFTER UPDATE ON catalog_items BEGIN "
        "DELETE FROM catalog_fts WHERE rowid = old.id; "
        f"INSERT INTO catalog_fts ({_SQLITE_COLUMNS}) VALUES ({_SQLITE_VALUES.format(row='new')}); "
        "END"
    )
    op.execute(
        "CREATE TRIGGER catalog_fts_delete AFTER DELETE ON catalog_items BEGIN "
        "DELETE FROM catalog_fts WHERE rowid = old.id; "
        "END"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_catalog_items_search")
        op.execute("ALTER TABLE catalog_items DROP COLUMN IF EXISTS search_vector")
    else:
        for trigger in ("catalog_fts_insert", "catalog_fts_update", "catalog_fts_delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS catalog_fts")
    op.drop_index("ix_task_skips_curator", table_name="task_skips")
    op.drop_table("task_skips")
    with op.batch_alter_table("catalog_items", schema=None) as batch_op:
        batch_op.drop_column("image_url")
