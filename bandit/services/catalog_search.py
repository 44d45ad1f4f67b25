"""Full-text search over the catalog, one interface over PostgreSQL and SQLite.

The words of a query are matched in any order, each as a word prefix (so "grey spo" finds
"sporty grey"), against title, brand, colour, material, category, style and item id. Every
word must match. PostgreSQL uses the `search_vector` column (a generated `tsvector`, GIN
indexed) and `ts_rank`; SQLite uses the `catalog_fts` FTS5 table and its bm25 rank; both are
maintained by migration 0006. Every result holds every word; among them, items that fit the
customer (within budget, preferred style, favourite category: a point each) come first, and
within the same fit the more relevant text (more of the words, in shorter fields) wins.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Float, Integer, case, func, literal, literal_column, select, text
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from bandit.db.models import CatalogItem
from bandit.db.session import is_postgresql

MAX_WORDS = 8
# The words a curator types: letters and digits; everything else separates words.
_WORD = re.compile(r"[^\W_]+", re.UNICODE)


@dataclass(frozen=True)
class SearchPage:
    """One page of search results and whether more follow."""

    items: list[CatalogItem]
    page: int
    per_page: int
    has_more: bool


def query_words(query: str) -> list[str]:
    """The lower-cased words of a query, at most MAX_WORDS."""
    return [word.lower() for word in _WORD.findall(query)][:MAX_WORDS]


def _fit(customer: Mapping[str, Any]) -> ColumnElement[Any]:
    """How well an item fits the customer: one point each for budget, style and category."""
    points: list[ColumnElement[Any]] = []
    budget = customer.get("budget")
    if isinstance(budget, int | float) and not isinstance(budget, bool):
        points.append(case((CatalogItem.price <= float(budget), 1.0), else_=0.0))
    style = customer.get("preferred_style")
    if isinstance(style, str) and style:
        style_of = CatalogItem.attributes["style"].as_string()
        points.append(case((style_of == style, 1.0), else_=0.0))
    favourites = customer.get("favorite_categories")
    if isinstance(favourites, list) and favourites:
        names = [str(name) for name in favourites]
        points.append(case((CatalogItem.category.in_(names), 1.0), else_=0.0))
    total: ColumnElement[Any] = literal(0.0, Float)
    for point in points:
        total = total + point
    return total


def search_catalog(
    session: Session,
    query: str,
    *,
    category: str | None = None,
    customer: Mapping[str, Any] | None = None,
    page: int = 1,
    per_page: int = 20,
) -> SearchPage:
    """Items in stock matching every word of `query`, best first, one page of them."""
    words = query_words(query)
    page = max(1, page)
    if not words:
        return SearchPage([], page, per_page, False)
    if is_postgresql(session):
        terms = " & ".join(f"{word}:*" for word in words)
        tsquery = func.to_tsquery("simple", terms)
        vector = literal_column("catalog_items.search_vector", TSVECTOR)
        relevance: ColumnElement[Any] = func.ts_rank(vector, tsquery)
        statement = select(CatalogItem).where(vector.op("@@")(tsquery))
    else:
        # FTS5 query syntax: each word quoted (no operators from user text), with a prefix star.
        terms = " AND ".join('"' + word.replace('"', '""') + '"*' for word in words)
        matches = (
            select(
                literal_column("rowid", Integer).label("item_row"),
                literal_column("bm25(catalog_fts)", Float).label("bm25"),
            )
            .select_from(text("catalog_fts"))
            .where(text("catalog_fts MATCH :terms").bindparams(terms=terms))
            .subquery()
        )
        # bm25 is lower-is-better; negate so both backends sort "higher is more relevant".
        relevance = -matches.c.bm25
        statement = select(CatalogItem).join(matches, matches.c.item_row == CatalogItem.id)
    statement = statement.where(CatalogItem.active.is_(True), CatalogItem.stock > 0)
    if category:
        statement = statement.where(CatalogItem.category == category)
    statement = statement.order_by(
        _fit(customer or {}).desc(), relevance.desc(), CatalogItem.title, CatalogItem.item_id
    )
    rows = list(session.scalars(statement.offset((page - 1) * per_page).limit(per_page + 1)))
    return SearchPage(rows[:per_page], page, per_page, len(rows) > per_page)
