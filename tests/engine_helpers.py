"""Small catalogs and contexts for engine tests."""

from __future__ import annotations

import numpy as np

from bandit.engine.catalog import CatalogIndex, CatalogRow

STYLES = ("classic", "bohemian", "sporty")
CATEGORIES = ("dress", "top", "shoes", "bag")


def small_catalog(items: int, out_of_stock: tuple[int, ...] = (), seed: int = 0) -> CatalogIndex:
    """`items` rows with styles, categories, prices and 4-d embeddings."""
    rng = np.random.default_rng(seed)
    return CatalogIndex(
        CatalogRow(
            item_id=f"item-{i}",
            title=f"Item {i}",
            category=CATEGORIES[i % len(CATEGORIES)],
            attributes={"style": STYLES[i % len(STYLES)], "color": "red" if i % 2 else "blue"},
            embedding=[float(v) for v in rng.normal(size=4)],
            price=float(20 + i),
            stock=0 if i in out_of_stock else 5,
        )
        for i in range(items)
    )


CONTEXT = {"segment": "student", "preferred_style": "bohemian", "favorite_categories": ["dress"]}
