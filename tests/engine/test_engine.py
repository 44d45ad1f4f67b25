"""The engine's proposals: logged probabilities match how often items are really proposed."""

from collections import Counter, defaultdict

import numpy as np
import pytest

from bandit.engine import vw_format
from bandit.engine.config import PolicyConfig
from bandit.engine.policy import VWPolicy
from bandit.engine.recommender import NoEligibleItems, Recommender
from bandit.engine.vocabulary import ReasonCode
from tests.engine_helpers import CONTEXT, small_catalog

# item-5 (sporty top) pre-scores highest for this context, so it is always a sure candidate.
SPORTY = {"segment": "student", "preferred_style": "sporty", "favorite_categories": ["top"]}
CONFIG = PolicyConfig(candidate_count=8, slate_size=3, exploration_slot_share=0.25, epsilon=0.3)


def _recommender(seed: int, trained_item: int | None = 5) -> Recommender:
    catalog = small_catalog(40)
    policy = VWPolicy.fresh(CONFIG)
    if trained_item is not None:
        shared = vw_format.shared_line(SPORTY)
        actions = [vw_format.action_line(row) for row in catalog.rows]
        for _ in range(30):
            policy.learn(shared, actions, trained_item, 1.0, 0.5)
    return Recommender(catalog, CONFIG, policy, np.random.default_rng(seed))


def test_slate_has_distinct_items_with_probabilities_and_reasons() -> None:
    proposal = _recommender(0).propose(CONTEXT, exclude=["item-1"])
    ids = [item.item_id for item in proposal.slate]
    assert len(ids) == 3 == len(set(ids))
    assert "item-1" not in ids
    for item in proposal.slate:
        assert 0 < item.probability <= item.position_probability <= 1
        assert item.probability == pytest.approx(
            item.candidate_probability * item.position_probability
        )
        codes = dict(item.reasons)
        assert codes[ReasonCode.EXPECTED_REWARD] == pytest.approx(item.score)
        assert (ReasonCode.EXPLORATION_PICK in codes) == item.explored
        assert set(codes) <= set(ReasonCode)
    assert len(proposal.position_pmfs) == 3
    assert [len(pmf) for pmf in proposal.position_pmfs] == [8, 7, 6]
    assert all(sum(pmf) == pytest.approx(1.0) for pmf in proposal.position_pmfs)
    assert set(proposal.uncertainty) == {"least_confidence", "margin", "ratio", "entropy"}


def test_first_position_frequencies_match_logged_probabilities() -> None:
    recommender = _recommender(1)
    draws = 3000
    counts: Counter[str] = Counter()
    logged: defaultdict[str, set[float]] = defaultdict(set)
    for _ in range(draws):
        first = recommender.propose(SPORTY, slate_size=1).slate[0]
        counts[first.item_id] += 1
        logged[first.item_id].add(round(first.probability, 9))
    for item_id, count in counts.items():
        # With a fixed greedy set and a fixed top item, each item's logged P is constant.
        (p,) = logged[item_id]
        bound = 4.5 * np.sqrt(draws * p * (1 - p)) + 1
        assert abs(count - draws * p) <= bound, f"{item_id}: seen {count}, logged {draws * p:.1f}"
    assert counts.most_common(1)[0][0] == "item-5"


def test_untrained_policy_is_maximally_uncertain_and_routes_to_review() -> None:
    proposal = _recommender(2, trained_item=None).propose(CONTEXT)
    assert proposal.uncertainty["least_confidence"] == pytest.approx(1.0)
    assert proposal.route == "review_before"


def test_nothing_eligible_is_a_clear_error() -> None:
    with pytest.raises(NoEligibleItems):
        _recommender(3).propose({**CONTEXT, "categories": ["no-such-category"]})
