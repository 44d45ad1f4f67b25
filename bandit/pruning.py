"""Action-space pruning: eligibility filters, a vectorised pre-score and exploration slots.

The logged chance that an item became a candidate is exact: the K - S best pre-scored
eligible items enter with probability 1, and S exploration slots are filled uniformly without
replacement from the other R eligible items, each of which enters with probability S / R.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard

import numpy as np

from bandit.catalog import CatalogIndex

STYLE_WEIGHT = 1.0
CATEGORY_WEIGHT = 1.0
POPULARITY_WEIGHT = 0.3
OVER_BUDGET_PENALTY = 0.5
EMBEDDING_WEIGHT = 1.0


@dataclass(frozen=True)
class CandidateSet:
    """Row indices of the candidates, their pre-scores and their inclusion probabilities."""

    indices: np.ndarray
    prescores: np.ndarray
    candidate_probability: np.ndarray
    exploration_slot: np.ndarray
    eligible_count: int


def eligibility_mask(
    catalog: CatalogIndex, context: Mapping[str, Any], exclude: Sequence[str]
) -> np.ndarray:
    """Items that may be proposed: in stock, within hard request constraints, not excluded."""
    mask = catalog.available.copy()
    categories = context.get("categories")
    if isinstance(categories, list) and categories:
        codes = [catalog.categories[c] for c in categories if c in catalog.categories]
        mask &= np.isin(catalog.category_codes, np.array(codes, dtype=np.int32))
    max_price = context.get("max_price")
    if _is_number(max_price):
        mask &= ~(catalog.price > float(max_price))
    if exclude:
        mask[catalog.indices(exclude)] = False
    return mask


def prescore(
    catalog: CatalogIndex, context: Mapping[str, Any], rows: np.ndarray | None = None
) -> np.ndarray:
    """A cheap linear affinity between the context and each item (or the given rows)."""
    select = slice(None) if rows is None else rows
    total = POPULARITY_WEIGHT * catalog.popularity[select]
    for part in prescore_parts(catalog, context, rows).values():
        total = total + part
    return np.asarray(total, dtype=float)


def prescore_parts(
    catalog: CatalogIndex, context: Mapping[str, Any], rows: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """The named terms of the pre-score, used both to rank and to explain."""
    select = slice(None) if rows is None else rows
    size = len(catalog) if rows is None else len(rows)
    parts: dict[str, np.ndarray] = {}
    style = context.get("preferred_style")
    if isinstance(style, str) and style in catalog.styles:
        parts["style"] = STYLE_WEIGHT * (catalog.style_codes[select] == catalog.styles[style])
    favourites = context.get("favorite_categories")
    if isinstance(favourites, list) and favourites:
        codes = np.array(
            [catalog.categories[c] for c in favourites if c in catalog.categories], dtype=np.int32
        )
        parts["category"] = CATEGORY_WEIGHT * np.isin(catalog.category_codes[select], codes)
    budget = context.get("budget")
    if _is_number(budget) and float(budget) > 0:
        over = np.nan_to_num(catalog.price[select] / float(budget) - 1.0, nan=0.0)
        parts["budget"] = -OVER_BUDGET_PENALTY * np.clip(over, 0.0, None)
    taste = context.get("taste")
    embeddings = catalog.embeddings
    if (
        embeddings is not None
        and isinstance(taste, list)
        and len(taste) == embeddings.shape[1]
        and all(_is_number(v) for v in taste)
    ):
        parts["taste"] = EMBEDDING_WEIGHT * (embeddings[select] @ np.asarray(taste, np.float32))
    return {name: np.asarray(values, dtype=float).reshape(size) for name, values in parts.items()}


def prune(
    catalog: CatalogIndex,
    context: Mapping[str, Any],
    exclude: Sequence[str],
    candidate_count: int,
    exploration_slot_share: float,
    rng: np.random.Generator,
) -> CandidateSet:
    """Cut the catalog to at most K candidates with honest inclusion probabilities."""
    eligible = np.flatnonzero(eligibility_mask(catalog, context, exclude))
    if eligible.size <= candidate_count:
        return CandidateSet(
            indices=eligible,
            prescores=prescore(catalog, context, eligible),
            candidate_probability=np.ones(eligible.size),
            exploration_slot=np.zeros(eligible.size, dtype=bool),
            eligible_count=int(eligible.size),
        )
    slots = min(candidate_count - 1, int(round(candidate_count * exploration_slot_share)))
    if exploration_slot_share > 0:
        slots = max(slots, 1)
    greedy_count = candidate_count - slots
    scores = prescore(catalog, context, eligible)
    order = np.argpartition(-scores, greedy_count - 1)
    greedy, rest = order[:greedy_count], order[greedy_count:]
    explored = rng.choice(rest, size=slots, replace=False) if slots else rest[:0]
    chosen = np.concatenate([greedy, explored])
    probability = np.concatenate([np.ones(greedy_count), np.full(slots, slots / rest.size)])
    return CandidateSet(
        indices=eligible[chosen],
        prescores=scores[chosen],
        candidate_probability=probability,
        exploration_slot=np.concatenate([np.zeros(greedy_count, bool), np.ones(slots, bool)]),
        eligible_count=int(eligible.size),
    )


def _is_number(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and np.isfinite(value)
