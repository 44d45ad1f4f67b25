"""Uncertainty measures against hand-computed values."""

import math

import numpy as np
import pytest

from bandit.engine import uncertainty
from bandit.engine.vocabulary import COMMITTEE_MEASURES

# p = (0.5, 0.3, 0.2), n = 3
HAND = {
    "least_confidence": (1 - 0.5) * 3 / 2,
    "margin": 1 - (0.5 - 0.3),
    "ratio": 0.3 / 0.5,
    "entropy": -(0.5 * math.log2(0.5) + 0.3 * math.log2(0.3) + 0.2 * math.log2(0.2)) / math.log2(3),
}


@pytest.mark.parametrize("measure", sorted(HAND))
def test_measure_matches_hand_computation(measure: str) -> None:
    value = getattr(uncertainty, measure)([0.2, 0.5, 0.3])
    assert value == pytest.approx(HAND[measure])


@pytest.mark.parametrize("measure", uncertainty.MEASURES)
def test_certain_distribution_scores_zero_and_uniform_scores_one(measure: str) -> None:
    function = getattr(uncertainty, measure)
    assert function([1.0, 0.0, 0.0, 0.0]) == pytest.approx(0.0)
    assert function([0.25] * 4) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("probabilities", "message"),
    [([], "non-empty"), ([0.5, 0.6], "sum to 1"), ([1.2, -0.2], "non-negative")],
    ids=["empty", "sum-above-one", "negative"],
)
def test_invalid_distributions_are_refused(probabilities: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        uncertainty.least_confidence(probabilities)


def test_confidence_distribution_prefers_higher_scores() -> None:
    p = uncertainty.confidence_distribution(np.array([0.9, 0.1, 0.1]), temperature=0.1)
    assert p.sum() == pytest.approx(1.0)
    assert p[0] > 0.99
    flat = uncertainty.confidence_distribution(np.zeros(5), temperature=0.1)
    assert uncertainty.all_measures(flat)["least_confidence"] == pytest.approx(1.0)


# A committee of N = 5 over n = 4 actions voting (3, 1, 1, 0): shares v = (0.6, 0.2, 0.2, 0);
# m = min(N, n) = 4.
VOTES = [0.6, 0.2, 0.2, 0.0]
COMMITTEE_HAND = {
    "committee_disagreement": (1 - 0.6) / (1 - 1 / 4),
    "vote_entropy": -(0.6 * math.log2(0.6) + 2 * 0.2 * math.log2(0.2)) / math.log2(4),
}


@pytest.mark.parametrize("measure", sorted(COMMITTEE_HAND))
def test_committee_measure_matches_hand_computation(measure: str) -> None:
    assert getattr(uncertainty, measure)(VOTES, members=5) == pytest.approx(COMMITTEE_HAND[measure])


@pytest.mark.parametrize("measure", COMMITTEE_MEASURES)
def test_unanimous_committee_scores_zero_and_an_even_split_scores_one(measure: str) -> None:
    function = getattr(uncertainty, measure)
    assert function([1.0, 0.0, 0.0], members=5) == pytest.approx(0.0)
    assert function([0.25] * 4, members=4) == pytest.approx(1.0)
    # 3 members over 10 actions can at most split three ways.
    assert function([1 / 3] * 3 + [0.0] * 7, members=3) == pytest.approx(1.0)


def test_committee_votes_invert_vw_bag_floor_by_hand() -> None:
    # Shares (0.6, 0.2, 0.2, 0) with epsilon 0.2 over n = 4: floor f = 0.05. VW's projection
    # lowers each voted share by tau and lifts the unvoted one to f: 0.6 + 0.2 + 0.2 - 3 tau
    # + 0.05 = 1, so tau = 0.05/3 and the pmf is (0.6 - tau, 0.2 - tau, 0.2 - tau, 0.05).
    tau = 0.05 / 3
    pmf = [0.6 - tau, 0.2 - tau, 0.2 - tau, 0.05]
    assert uncertainty.committee_votes(pmf, epsilon=0.2) == pytest.approx(VOTES)


def test_committee_votes_read_from_a_real_bag_are_whole_member_votes() -> None:
    from bandit.engine import vw_format
    from bandit.engine.config import PolicyConfig
    from bandit.engine.policy import VWPolicy
    from tests.engine_helpers import CONTEXT, small_catalog

    catalog = small_catalog(12)
    shared = vw_format.shared_line(CONTEXT)
    actions = [vw_format.action_line(row) for row in catalog.rows]
    policy = VWPolicy.fresh(PolicyConfig(algorithm="bag", bag_size=7, epsilon=0.3))
    rng = np.random.default_rng(0)
    for _ in range(80):
        pmf, _ = policy.score(shared, actions)
        chosen = int(rng.choice(len(actions), p=pmf))
        reward = float(rng.random() < (0.9 if chosen % 3 == 0 else 0.3))
        policy.learn(shared, actions, chosen, reward, float(pmf[chosen]))
    votes = uncertainty.committee_votes(policy.score(shared, actions)[0], epsilon=0.3) * 7
    # Ties split a member's vote, so allow halves; anything else means the inversion is wrong.
    assert votes.sum() == pytest.approx(7.0)
    assert np.allclose(votes * 2, np.round(votes * 2), atol=1e-3), votes
