"""Catalog text search: any word order, prefixes, every field, relevance and fit, paging."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.orm import Session

from bandit.db.models import CatalogItem
from bandit.services import catalog_store
from bandit.services.catalog_search import query_words, search_catalog


def _item(item_id: str, title: str, category: str, **attributes: Any) -> dict[str, Any]:
    price = attributes.pop("price", 50.0)
    stock = attributes.pop("stock", 3)
    return {
        "item_id": item_id, "title": title, "category": category, "price": price,
        "stock": stock, "active": True, "attributes": attributes, "embedding": None,
        "image_url": None,
    }  # fmt: skip


@pytest.fixture
def catalog(session: Session) -> Session:
    rows = [
        _item("sku-1", "Trail hoodie", "sweater", color="grey", style="sporty", brand="Kestrel"),
        _item("sku-2", "Grey sporty runner", "sneakers", color="grey", style="sporty", price=200),
        _item("sku-3", "City blazer", "jacket", color="navy", style="classic", brand="Nordlys"),
        _item("sku-4", "Wool scarf", "scarf", color="grey", style="classic", material="wool"),
        _item("sku-5", "Sold-out grey tee", "top", color="grey", style="sporty", stock=0),
        _item("AB.77", "Plain tee", "top", color="white", style="minimalist"),
    ]
    catalog_store.upsert_items(session, rows)
    session.commit()
    return session


def ids(items: list[CatalogItem]) -> list[str]:
    return [item.item_id for item in items]


def test_words_match_in_any_order_and_across_fields(catalog: Session) -> None:
    forward = search_catalog(catalog, "grey sporty").items
    backward = search_catalog(catalog, "sporty grey").items
    # sku-1 has "grey" only as a colour and "sporty" only as a style; sku-5 is out of stock.
    assert sorted(ids(forward)) == sorted(ids(backward)) == ["sku-1", "sku-2"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("kest", ["sku-1"]),  # brand, as a prefix
        ("NAVY", ["sku-3"]),  # colour, any case
        ("wool", ["sku-4"]),  # material
        ("jacket", ["sku-3"]),  # category
        ("classic", ["sku-3", "sku-4"]),  # style
        ("ab.77", ["AB.77"]),  # item id, punctuation and all
        ("sku-3", ["sku-3"]),
        ("tee minimalist", ["AB.77"]),
        ("grey nothing-like-this", []),  # every word must match
        ('"*) OR (', []),  # operators typed by a curator are plain text, not syntax
    ],
)
def test_each_field_is_searchable(catalog: Session, query: str, expected: list[str]) -> None:
    assert sorted(ids(search_catalog(catalog, query).items)) == sorted(expected)


def test_items_that_fit_the_customer_come_first(catalog: Session) -> None:
    customer = {"budget": 100.0, "preferred_style": "sporty", "favorite_categories": ["sweater"]}
    assert ids(search_catalog(catalog, "grey", customer=customer).items)[0] == "sku-1"
    pricey = {"budget": 500.0, "preferred_style": "classic", "favorite_categories": ["scarf"]}
    assert ids(search_catalog(catalog, "grey", customer=pricey).items)[0] == "sku-4"


def test_category_filter_and_paging(catalog: Session) -> None:
    assert ids(search_catalog(catalog, "grey", category="scarf").items) == ["sku-4"]
    first = search_catalog(catalog, "grey", per_page=2)
    second = search_catalog(catalog, "grey", page=2, per_page=2)
    assert first.has_more and not second.has_more
    assert len(first.items) == 2 and len(second.items) == 1
    assert not set(ids(first.items)) & set(ids(second.items))


def test_search_follows_catalog_updates(catalog: Session) -> None:
    item = catalog_store.items_by_id(catalog, ["sku-3"])["sku-3"]
    item.title = "Harbour parka"
    catalog.commit()
    assert ids(search_catalog(catalog, "parka").items) == ["sku-3"]
    assert ids(search_catalog(catalog, "blazer").items) == []


def test_query_words() -> None:
    assert query_words("  Grey,  sporty!! ") == ["grey", "sporty"]
    assert query_words("") == []
