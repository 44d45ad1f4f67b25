"""The fast paths of pruning at catalog scale give exactly what the plain ones would."""

import numpy as np
import pytest

from bandit.engine import pruning
from bandit.engine.catalog import CatalogIndex, CatalogRow
from bandit.engine.pruning import top_indices


def _scores(kind: str, size: int, rng: np.random.Generator) -> np.ndarray:
    scores = rng.normal(size=size)
    if kind == "mostly_ineligible":
        scores[rng.random(size) < 0.97] = -np.inf
    elif kind == "ascending":
        scores = np.sort(scores)
    elif kind == "all_ineligible_but_few":
        scores[:] = -np.inf
        scores[rng.choice(size, 120, replace=False)] = rng.normal(size=120)
    elif kind == "discrete":
        # Few distinct values plus a small continuous part, like the pre-score's bonuses.
        scores = rng.integers(0, 3, size) + 0.01 * rng.random(size)
    return scores


@pytest.mark.parametrize("kind", ["normal", "mostly_ineligible", "ascending", "discrete",
                                  "all_ineligible_but_few"])  # fmt: skip
@pytest.mark.parametrize("size", [1_000, 60_000, 300_000])
def test_top_indices_is_the_set_argpartition_gives(kind: str, size: int) -> None:
    rng = np.random.default_rng(size)
    for count in (1, 95, 100):
        scores = _scores(kind, size, rng)
        expected = np.argpartition(scores, size - count)[size - count :]
        got = top_indices(scores, count)
        assert got.size == count and len(set(got.tolist())) == count
        # Same multiset of scores (the set itself may differ only among exact ties).
        assert np.array_equal(np.sort(scores[got]), np.sort(scores[expected]))


@pytest.mark.parametrize("eligible_share", [0.9, 0.2])
def test_exploration_draws_are_uniform_over_the_pool_in_both_paths(eligible_share: float) -> None:
    """Rejection from the whole catalog (big pools) and listing the pool (small ones)."""
    rng = np.random.default_rng(11)
    size, count, draws = 400, 5, 6000
    mask = rng.random(size) < eligible_share
    taken = np.flatnonzero(mask)[:10]
    pool = mask.copy()
    pool[taken] = False
    pool_size = int(pool.sum())
    counts = np.zeros(size)
    for _ in range(draws):
        drawn = pruning._uniform_sample(mask, taken, count, pool_size, rng)
        assert len(set(drawn.tolist())) == count
        counts[drawn] += 1
    assert counts[~pool].sum() == 0, "drew an ineligible or already-taken row"
    p = count / pool_size
    expected = draws * p
    bound = 4.5 * np.sqrt(draws * p * (1 - p)) + 1
    assert np.all(np.abs(counts[pool] - expected) <= bound)


@pytest.fixture(scope="module")
def large_catalog() -> CatalogIndex:
    """Past the grouped layout's threshold: 13 categories x 6 styles in shuffled rows."""
    rng = np.random.default_rng(21)
    size = pruning.GROUPED_LAYOUT_MIN_ROWS + 10_000
    categories, styles = rng.integers(0, 13, size), rng.integers(0, 6, size)
    embeddings, prices = rng.normal(size=(size, 8)), rng.uniform(5, 300, size)
    stock = (rng.random(size) > 0.1).astype(int)
    return CatalogIndex(
        CatalogRow(
            f"i{i}",
            f"Item {i}",
            f"cat{categories[i]}",
            {"style": f"style{styles[i]}", "popularity": float(i % 97) / 97},
            embeddings[i].tolist(),
            None if i % 501 == 0 else float(prices[i]),
            int(stock[i]),
        )
        for i in range(size)
    )


GROUPED_CONTEXTS = {
    "every term": {
        "preferred_style": "style2",
        "favorite_categories": ["cat1", "cat7"],
        "budget": 80.0,
        "taste": [0.4, -0.3, 0.2, 0.0, 0.5, -0.1, 0.3, 0.2],
    },
    "no taste": {"preferred_style": "style0", "budget": 150.0},
    "row filters": {
        "favorite_categories": ["cat3"],
        "categories": ["cat3", "cat4", "cat5"],
        "max_price": 120.0,
        "taste": [0.1] * 8,
    },
}


@pytest.mark.parametrize("learned", [False, True])
@pytest.mark.parametrize("exclude", [0, 40])
@pytest.mark.parametrize("name", list(GROUPED_CONTEXTS))
def test_grouped_layout_keeps_the_best_eligible_items_by_the_plain_prescore(
    large_catalog: CatalogIndex, name: str, exclude: int, learned: bool
) -> None:
    """Against `prescore` in catalog order (the reference formula): the greedy candidates are
    the top of the eligible rows, every logged pre-score is the item's own, and a learning
    pass's new affinity (the layout's base copied again) moves the top as it should."""
    context = GROUPED_CONTEXTS[name]
    rng = np.random.default_rng(exclude)
    affinity = np.zeros(len(large_catalog))
    if learned:
        affinity[rng.choice(len(large_catalog), 300, replace=False)] = 5.0
        large_catalog.learned_affinity = affinity
    excluded = [f"i{i}" for i in rng.choice(len(large_catalog), exclude, replace=False)]
    try:
        result = pruning.prune(large_catalog, context, excluded, 100, 0.1, rng)
        reference = pruning.prescore(large_catalog, context)
    finally:
        large_catalog.learned_affinity = np.zeros(len(large_catalog))
    mask = pruning.eligibility_mask(large_catalog, context, excluded)
    greedy = result.indices[~result.exploration_slot]
    assert greedy.size == 90 and mask[result.indices].all()
    others = np.setdiff1d(np.flatnonzero(mask), greedy)
    # float32 sums in another order differ in the last bits: ties within 1e-5 may swap.
    assert reference[others].max() <= reference[greedy].min() + 1e-5
    assert np.allclose(result.prescores, reference[result.indices], atol=1e-5)
    # A learned boost of 5 outweighs the other terms: the eligible boosted items lead.
    boosted = np.flatnonzero(affinity * mask)
    share = np.isin(greedy, boosted).mean()
    assert share >= 0.8 * min(1.0, boosted.size / greedy.size) and (learned or share == 0)
