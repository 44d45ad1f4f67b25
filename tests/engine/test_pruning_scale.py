"""The fast paths of pruning at catalog scale give exactly what the plain ones would."""

import numpy as np
import pytest

from bandit.engine import pruning
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
