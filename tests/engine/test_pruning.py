"""Pruning: eligibility, exploration slots and honest inclusion probabilities."""

from collections import Counter

import numpy as np
import pytest

from bandit.engine.pruning import eligibility_mask, prescore, prune
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
