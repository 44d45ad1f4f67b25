"""Explanations name the features that really drive a score, under every reduction."""

import numpy as np
import pytest

from bandit.engine import explain, vw_format
from bandit.engine.config import ALGORITHMS, PolicyConfig
from bandit.engine.policy import VWPolicy
from bandit.engine.recommender import Recommender
from tests.engine_helpers import CONTEXT, small_catalog

CATALOG = small_catalog(12)
SHARED = vw_format.shared_line(CONTEXT)
ACTIONS = [vw_format.action_line(row) for row in CATALOG.rows]


def _trained(algorithm: str) -> VWPolicy:
    """Reward 1 exactly for bohemian items (every third item), 0 otherwise."""
    policy = VWPolicy.fresh(PolicyConfig(algorithm=algorithm))
    rng = np.random.default_rng(0)
    for _ in range(150):
        pmf, _ = policy.score(SHARED, ACTIONS)
        chosen = int(rng.choice(len(ACTIONS), p=pmf))
        reward = float(CATALOG.rows[chosen].attributes["style"] == "bohemian")
        policy.learn(SHARED, ACTIONS, chosen, reward, float(pmf[chosen]))
    return policy


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_the_learned_driver_tops_the_explanation_on_every_reduction(algorithm: str) -> None:
    policy = _trained(algorithm)
    bohemian = [row for row in CATALOG.rows if row.attributes["style"] == "bohemian"]
    for why in explain.explain(policy, CONTEXT, bohemian[:3]):
        assert why, "a learned item must have a reason"
        # The id feature may share the credit (each item is its own feature too), but the
        # style that decides the reward must be among the top reasons, pushing the score up.
        weights = {c.feature: c.weight for c in why}
        assert weights.get("style=bohemian (item)", 0.0) > 0.1, why


def test_contributions_are_score_differences_computed_by_hand() -> None:
    policy = _trained("epsilon_greedy")
    row = CATALOG.rows[1]
    (why,) = explain.explain(policy, CONTEXT, [row], top=50)
    full = policy.score(SHARED, [vw_format.action_line(row)])[1][0]
    features = vw_format.item_features(row)
    for contribution in why:
        if contribution.feature.endswith("(item)"):
            name = contribution.feature.removesuffix(" (item)")
            kept = [f for f in features if f.split(":", 1)[0] != name]
            line = f"|{vw_format.ITEM_NAMESPACE} " + " ".join(kept)
            without = policy.score(SHARED, [line])[1][0]
            assert contribution.weight == pytest.approx(full - without, abs=1e-4)


def test_proposals_carry_explanations_for_each_slate_item() -> None:
    config = PolicyConfig(candidate_count=8, slate_size=3)
    recommender = Recommender(CATALOG, config, _trained("epsilon_greedy"), np.random.default_rng(1))
    proposal = recommender.propose(CONTEXT, explain=True)
    assert len(proposal.slate) == 3
    for item in proposal.slate:
        assert len(item.why) <= explain.TOP_FEATURES
        assert all(isinstance(f, str) and isinstance(w, float) for f, w in item.why)


def test_explanations_computed_later_equal_those_computed_with_the_proposal() -> None:
    config = PolicyConfig(candidate_count=8, slate_size=3)
    policy = _trained("epsilon_greedy")
    recommender = Recommender(CATALOG, config, policy, np.random.default_rng(1))
    eager = recommender.propose(CONTEXT, explain=True)
    assert eager.explained and any(item.why for item in eager.slate)
    lazy = recommender.propose(CONTEXT)
    assert not lazy.explained and all(item.why == () for item in lazy.slate)
    later = recommender.explanations(CONTEXT, [item.item_id for item in eager.slate])
    assert later == [item.why for item in eager.slate]
    assert recommender.explanations(CONTEXT, ["no-such-item"]) == [()]
