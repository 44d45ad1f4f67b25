"""Pruning: eligibility, exploration slots and honest inclusion probabilities."""

from collections import Counter
from typing import Any

import numpy as np
import pytest

from bandit.engine.pruning import (
    CATEGORY_WEIGHT,
    STYLE_WEIGHT,
    eligibility_mask,
    prescore,
    prescore_parts,
    prescore_terms,
    prune,
)
from tests.engine_helpers import CONTEXT, small_catalog


def test_small_eligible_sets_are_kept_whole_with_probability_one() -> None:
    catalog = small_catalog(8)
    result = prune(catalog, CONTEXT, [], 10, 0.2, np.random.default_rng(0))
    assert sorted(result.indices) == list(range(8))
    assert np.all(result.candidate_probability == 1.0)


@pytest.mark.parametrize(
    "filters",
    [{}, {"categories": ["dress", "top"]}, {"max_price": 150}],
    ids=["no filters", "categories", "max price"],
)
@pytest.mark.parametrize("excluded", [0, 2], ids=["nothing", "two"])
def test_excluded_out_of_stock_and_filtered_items_are_never_candidates(
    filters: dict[str, object], excluded: int
) -> None:
    # A taste vector: without it the pre-scores tie in blocks and hide which rows were cut.
    context = {**CONTEXT, "taste": [1.0, 0.5, -0.5, 0.25], **filters}
    # The ruled-out rows are the best pre-scored ones, so a leak into the greedy picks shows:
    # the two best (among those the filters keep) out of stock, the next ones excluded.
    full = small_catalog(200)
    kept = eligibility_mask(full, context, [])
    best_first = [int(i) for i in np.argsort(-prescore(full, context)) if kept[i]]
    catalog = small_catalog(200, out_of_stock=tuple(best_first[:2]))
    exclude = [catalog.rows[i].item_id for i in best_first[2 : 2 + excluded]]
    ruled_out = {catalog.rows[i].item_id for i in best_first[: 2 + excluded]}
    rng = np.random.default_rng(1)
    for _ in range(50):
        result = prune(catalog, context, exclude, 20, 0.3, rng)
        chosen = [catalog.rows[i] for i in result.indices]
        if "categories" in filters:
            assert all(row.category in ("dress", "top") for row in chosen)
        if "max_price" in filters:
            assert all(row.price is not None and row.price <= 150 for row in chosen)
        assert not {r.item_id for r in chosen} & ruled_out
        assert np.isfinite(result.prescores).all()
        assert result.eligible_count == int(eligibility_mask(catalog, context, exclude).sum())


def test_top_prescored_items_enter_surely_and_the_rest_at_slots_over_remaining() -> None:
    catalog = small_catalog(100)
    rng = np.random.default_rng(2)
    result = prune(catalog, CONTEXT, [], 10, 0.3, rng)
    assert result.exploration_slot.sum() == 3
    assert np.all(result.candidate_probability[~result.exploration_slot] == 1.0)
    assert np.allclose(result.candidate_probability[result.exploration_slot], 3 / 93)


def test_every_eligible_item_can_become_a_candidate_at_its_logged_rate() -> None:
    catalog = small_catalog(60)
    rng = np.random.default_rng(3)
    draws = 3000
    counts: Counter[int] = Counter()
    logged: dict[int, float] = {}
    for _ in range(draws):
        result = prune(catalog, CONTEXT, [], 10, 0.3, rng)
        for index, probability in zip(result.indices, result.candidate_probability, strict=True):
            counts[int(index)] += 1
            logged[int(index)] = float(probability)
    eligible = int(eligibility_mask(catalog, CONTEXT, []).sum())
    assert len(counts) == eligible, "some eligible item never got a chance"
    for index, count in counts.items():
        p = logged[index]
        bound = 4.5 * np.sqrt(draws * p * (1 - p)) + 1
        assert abs(count - draws * p) <= bound, f"item {index}: {count} vs {draws * p:.1f}"


@pytest.mark.parametrize("share", [0.0, 0.1, 0.5])
def test_candidate_count_is_k(share: float) -> None:
    result = prune(small_catalog(300), CONTEXT, [], 25, share, np.random.default_rng(4))
    assert result.indices.size == 25
    assert len(set(result.indices.tolist())) == 25


def test_bonus_tables_kept_across_requests_score_as_a_fresh_catalog_and_as_defined() -> None:
    """The pre-score terms keep one bonus table per (style, favourite categories): a catalog
    that has served other requests scores each one exactly as a fresh catalog, and every
    (category, style) bonus is the style weight for the preferred style plus the category
    weight for a favourite (a category named twice, or unknown to the catalog, counts once
    or not at all), also when the kept tables were dropped for want of room."""
    contexts: list[dict[str, Any]] = [
        {**CONTEXT, "taste": [1.0, 0.5, -0.5, 0.25], "budget": 40.0},
        {"preferred_style": "sporty", "favorite_categories": ["top", "bag", "top"]},
        {"preferred_style": "none such", "favorite_categories": ["nothing", 3, None]},
        {"preferred_style": 7, "favorite_categories": []},
        {"favorite_categories": "dress"},
        CONTEXT,
    ]
    served = small_catalog(60)
    rows = np.arange(0, 60, 7)
    for round_ in range(3):
        if round_ == 2:
            served.bonus_tables.clear()  # as when BONUS_TABLES_KEPT is reached
        for context in contexts:
            fresh = small_catalog(60)
            assert np.array_equal(prescore(served, context), prescore(fresh, context))
            assert np.array_equal(prescore(served, context, rows), prescore(fresh, context, rows))
            parts, expected = (
                prescore_parts(served, context, rows),
                prescore_parts(fresh, context, rows),
            )
            assert parts.keys() == expected.keys()
            assert all(np.array_equal(parts[name], expected[name]) for name in parts)
            terms = prescore_terms(served, context)
            style = context.get("preferred_style")
            favourites = context.get("favorite_categories")
            favourites = favourites if isinstance(favourites, list) else []
            for category, c in served.categories.items():
                for name, s in served.styles.items():
                    want = STYLE_WEIGHT * (name == style) + CATEGORY_WEIGHT * (
                        category in favourites
                    )
                    assert terms.bonus[c * len(served.styles) + s] == want
    # The same (style code, favourite codes) twice is one table: the first and last contexts
    # share one, and so do the two without a known style or a favourites list.
    assert len(served.bonus_tables) == 4
