"""Migration 0006: existing items become searchable, new ones follow, and it reverses cleanly."""

from __future__ import annotations

from sqlalchemy import create_engine, inspect, text

from bandit.db import migrate
from bandit.db.session import make_session_factory
from bandit.services.catalog_search import search_catalog

ITEM = (
    "INSERT INTO catalog_items (item_id, title, category, attributes, price, stock, active, "
    "updated_at) VALUES (:item_id, :title, 'sweater', :attributes, 50, 3, :yes, :now)"
)


def _insert(url: str, item_id: str, title: str, attributes: str) -> None:
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(
            text(ITEM),
            {"item_id": item_id, "title": title, "attributes": attributes, "yes": True,
             "now": "2026-12-01 10:00:00"},
        )  # fmt: skip
    engine.dispose()


def _found(url: str, query: str) -> list[str]:
    engine = create_engine(url)
    with make_session_factory(engine)() as session:
        found = [item.item_id for item in search_catalog(session, query).items]
    engine.dispose()
    return sorted(found)


def test_items_stored_before_the_migration_are_searchable_after_it(empty_url: str) -> None:
    migrate.upgrade(empty_url, "0005_reason_codes")
    _insert(empty_url, "old-1", "Cosy knit", '{"color": "grey", "style": "sporty"}')
    migrate.upgrade(empty_url)
    _insert(empty_url, "new-1", "Sporty grey hoodie", "{}")
    assert _found(empty_url, "grey sporty") == ["new-1", "old-1"]
    migrate.downgrade(empty_url, "0005_reason_codes")
    engine = create_engine(empty_url)
    tables = set(inspect(engine).get_table_names())
    columns = {c["name"] for c in inspect(engine).get_columns("catalog_items")}
    engine.dispose()
    assert "task_skips" not in tables and "catalog_fts" not in tables
    assert not {"image_url", "search_vector"} & columns
    migrate.upgrade(empty_url)
    assert _found(empty_url, "sporty grey") == ["new-1", "old-1"]
