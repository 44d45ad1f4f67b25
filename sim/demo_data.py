"""A synthetic fashion catalog and customer base, deterministic for a seed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

CATEGORIES = {
    # category: (base price, formality)
    "dress": (80, 0.6),
    "top": (35, 0.3),
    "blouse": (55, 0.6),
    "jeans": (70, 0.2),
    "trousers": (75, 0.7),
    "skirt": (50, 0.5),
    "jacket": (120, 0.6),
    "coat": (180, 0.7),
    "sweater": (65, 0.3),
    "sneakers": (90, 0.1),
    "boots": (140, 0.4),
    "bag": (110, 0.5),
    "scarf": (30, 0.4),
}
STYLES = ("classic", "bohemian", "minimalist", "sporty", "edgy", "romantic")
COLORS = ("black", "white", "navy", "beige", "red", "olive", "pink", "grey", "camel", "denim")
MATERIALS = ("cotton", "linen", "wool", "silk", "denim", "leather", "jersey", "cashmere")
BRANDS = {
    "Atelier North": 1.6,
    "Maison Lune": 2.2,
    "Harbor & Pine": 1.0,
    "Kestrel": 0.8,
    "Verde Studio": 1.2,
    "Oak Street": 0.7,
    "Nordlys": 1.4,
    "Blue Fern": 0.9,
}
SEGMENTS = {
    # segment: (budget, favoured categories, favoured colours)
    "student": (60, ("top", "jeans", "sneakers", "sweater"), ("black", "denim", "white")),
    "professional": (160, ("blouse", "trousers", "jacket", "coat"), ("navy", "grey", "camel")),
    "parent": (90, ("jeans", "sweater", "sneakers", "top"), ("beige", "navy", "olive")),
    "trendsetter": (140, ("dress", "boots", "skirt", "bag"), ("red", "pink", "black")),
    "outdoor": (110, ("jacket", "boots", "sweater", "coat"), ("olive", "camel", "grey")),
}
AGE_BANDS = ("18-24", "25-34", "35-44", "45-54", "55+")
EMBEDDING_DIM = 8


@dataclass(frozen=True)
class DemoWorld:
    """The generated catalog and customers."""

    catalog: pd.DataFrame
    customers: list[dict[str, Any]]


def embedding_projection(seed: int) -> np.ndarray:
    """The fixed map from (style one-hot, formality) to item embeddings for a seed."""
    return np.random.default_rng([seed, 1]).normal(size=(len(STYLES) + 1, EMBEDDING_DIM))


def generate_catalog(items: int, seed: int) -> pd.DataFrame:
    """`items` catalog rows with attributes, prices, stock and 8 embedding columns."""
    if items < 1:
        raise ValueError("items must be at least 1")
    rng = np.random.default_rng([seed, 0])
    categories = list(CATEGORIES)
    brand_names = list(BRANDS)
    category = rng.choice(categories, size=items)
    style = rng.choice(STYLES, size=items)
    color = rng.choice(COLORS, size=items)
    material = rng.choice(MATERIALS, size=items)
    brand = rng.choice(brand_names, size=items)
    base = np.array([CATEGORIES[c][0] for c in category], dtype=float)
    tier = np.array([BRANDS[b] for b in brand])
    price = np.round(base * tier * rng.lognormal(0.0, 0.25, size=items), 2)
    formality = np.clip(
        np.array([CATEGORIES[c][1] for c in category]) + rng.normal(0, 0.1, size=items), 0, 1
    )
    latent = np.column_stack(
        [(style[:, None] == np.array(STYLES)[None, :]).astype(float), formality]
    )
    embedding = latent @ embedding_projection(seed) + rng.normal(0, 0.15, (items, EMBEDDING_DIM))
    stock = rng.poisson(6, size=items)
    stock[rng.random(items) < 0.05] = 0
    frame = pd.DataFrame(
        {
            "item_id": [f"sku-{seed}-{i:06d}" for i in range(items)],
            "title": [
                f"{c.title()} {m} {s} {cat}"
                for c, m, s, cat in zip(color, material, style, category, strict=True)
            ],
            "category": category,
            "style": style,
            "color": color,
            "material": material,
            "brand": brand,
            "price": price,
            "stock": stock,
            "popularity": np.round(rng.beta(2, 5, size=items), 3),
        }
    )
    for d in range(EMBEDDING_DIM):
        frame[f"emb_{d}"] = np.round(embedding[:, d], 4)
    return frame


def generate_customers(customers: int, seed: int) -> list[dict[str, Any]]:
    """`customers` profiles: segment, age band, style, favourite categories, budget, taste."""
    if customers < 1:
        raise ValueError("customers must be at least 1")
    rng = np.random.default_rng([seed, 2])
    projection = embedding_projection(seed)
    segments = list(SEGMENTS)
    profiles = []
    for index in range(customers):
        segment = segments[int(rng.integers(len(segments)))]
        budget, favoured, _colors = SEGMENTS[segment]
        style_index = int(rng.integers(len(STYLES)))
        formality = float(
            np.clip(rng.normal(0.6 if segment == "professional" else 0.35, 0.1), 0, 1)
        )
        latent = np.zeros(len(STYLES) + 1)
        latent[style_index] = 1.0
        latent[-1] = formality
        taste = latent @ projection
        taste = taste / np.linalg.norm(taste)
        profiles.append(
            {
                "customer_id": f"cust-{seed}-{index:05d}",
                "segment": segment,
                "age_band": AGE_BANDS[int(rng.integers(len(AGE_BANDS)))],
                "preferred_style": STYLES[style_index],
                "favorite_categories": sorted(
                    str(c) for c in rng.choice(favoured, size=2, replace=False)
                ),
                "budget": float(round(budget * rng.lognormal(0, 0.2))),
                "taste": [round(float(v), 4) for v in taste],
            }
        )
    return profiles


def generate(items: int, customers: int, seed: int) -> DemoWorld:
    """The catalog and the customers for one seed."""
    return DemoWorld(generate_catalog(items, seed), generate_customers(customers, seed))


def context_for(profile: dict[str, Any]) -> dict[str, Any]:
    """The request context a client service would send for this customer."""
    return {key: value for key, value in profile.items()}
