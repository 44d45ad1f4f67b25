"""Logged probabilities are the real selection probabilities, pruning included."""

from collections import Counter, defaultdict

import numpy as np
from scipy import stats

from bandit.engine import vw_format
from bandit.engine.config import PolicyConfig
from bandit.engine.policy import VWPolicy
from bandit.engine.recommender import Recommender
from tests.engine_helpers import small_catalog

SPORTY = {"segment": "student", "preferred_style": "sporty", "favorite_categories": ["top"]}


def _trained_recommender(items: int, config: PolicyConfig, seed: int) -> Recommender:
    catalog = small_catalog(items)
    policy = VWPolicy.fresh(config)
    shared = vw_format.shared_line(SPORTY)
    actions = [vw_format.action_line(row) for row in catalog.rows]
    for _ in range(30):  # make one item clearly preferred so the pmf is far from uniform
        policy.learn(shared, actions, 5, 1.0, 0.5)
        policy.learn(shared, actions, 2, 0.3, 0.5)
    return Recommender(catalog, config, policy, np.random.default_rng(seed))


def test_chi_square_first_position_frequencies_match_the_logged_pmf() -> None:
    # All 12 items are candidates (P(candidate) = 1), so the logged pmf is fixed per item.
    config = PolicyConfig(candidate_count=12, slate_size=1, algorithm="softmax", softmax_lambda=3)
    recommender = _trained_recommender(12, config, seed=3)
    draws = 4000
    counts: Counter[str] = Counter()
    logged: dict[str, float] = {}
    for _ in range(draws):
        pick = recommender.propose(SPORTY).slate[0]
        counts[pick.item_id] += 1
        logged[pick.item_id] = pick.probability
    pmf = recommender.propose(SPORTY).candidates
    expected = np.array([draws * c.pmf for c in pmf])
    observed = np.array([counts[c.item_id] for c in pmf])
    assert all(np.isclose(logged[i], c.pmf) for c in pmf for i in [c.item_id] if i in logged)
    assert expected.min() > 5, "chi-square needs expected counts above 5"
    _, p_value = stats.chisquare(observed, expected)
    assert p_value > 1e-3, f"observed {observed} vs expected {expected.round(1)}"


def test_inverse_logged_probability_sums_to_the_draw_count_for_every_item() -> None:
    """E[1{item chosen} / logged P] = 1 per draw when logged P = P(candidate) x P(chosen | set).

    That identity is exactly what off-policy evaluation relies on; it fails if P(candidate)
    were left out (the sum would be P(candidate) times too small for exploration-slot items).
    """
    config = PolicyConfig(candidate_count=8, slate_size=1, exploration_slot_share=0.25, epsilon=0.6)
    recommender = _trained_recommender(20, config, seed=4)
    draws = 6000
    weights: defaultdict[str, float] = defaultdict(float)
    slot_picks = 0
    for _ in range(draws):
        proposal = recommender.propose(SPORTY)
        pick = proposal.slate[0]
        weights[pick.item_id] += 1.0 / pick.probability
        slot_picks += int(pick.candidate_probability < 1)
    eligible = int(recommender.catalog.available.sum())
    assert len(weights) == eligible, "every eligible item must be proposable"
    assert slot_picks > 200
    # Summed over all items the estimate is draws x (number of items); each draw adds 1/p for
    # one item, and its standard error is sqrt(sum over draws of the squared weights) at most.
    ratios = np.array([w / draws for w in weights.values()])
    assert abs(ratios.mean() - 1.0) < 0.1, ratios.round(2)
    assert np.all((ratios > 0.5) & (ratios < 1.6)), ratios.round(2)
