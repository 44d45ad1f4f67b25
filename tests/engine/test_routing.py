"""Routing by confidence, mode and the two thresholds."""

import pytest

from bandit.engine.config import PolicyConfig
from bandit.engine.routing import route_for
from bandit.engine.vocabulary import Route

PARTIAL = PolicyConfig(routing_mode="partial", auto_threshold=0.95, review_threshold=0.6)


@pytest.mark.parametrize(
    ("confidence", "expected"),
    [
        (0.99, Route.AUTO),
        (0.95, Route.AUTO),
        (0.94, Route.REVIEW_AFTER),
        (0.6, Route.REVIEW_AFTER),
        (0.59, Route.REVIEW_BEFORE),
    ],
)
def test_partial_mode_bands(confidence: float, expected: str) -> None:
    assert route_for(confidence, PARTIAL) == expected


@pytest.mark.parametrize("mode", [Route.REVIEW_BEFORE, Route.REVIEW_AFTER])
def test_fixed_modes_ignore_confidence(mode: str) -> None:
    config = PolicyConfig(routing_mode=mode)
    assert {route_for(c, config) for c in (0.0, 0.5, 1.0)} == {mode}


def test_lowering_the_upper_threshold_sends_fewer_decisions_to_review() -> None:
    confidences = [i / 100 for i in range(101)]
    strict = PolicyConfig(auto_threshold=0.99, review_threshold=0.5)
    relaxed = PolicyConfig(auto_threshold=0.8, review_threshold=0.5)
    reviewed = [
        sum(route_for(c, cfg) != Route.AUTO for c in confidences) for cfg in (strict, relaxed)
    ]
    assert reviewed[1] < reviewed[0]


def test_the_route_uses_the_committee_measure_the_config_names() -> None:
    import numpy as np

    from bandit.engine.policy import VWPolicy
    from bandit.engine.recommender import Recommender
    from tests.engine_helpers import CONTEXT, small_catalog

    config = PolicyConfig(
        algorithm="bag",
        bag_size=4,
        uncertainty_measure="committee_disagreement",
        auto_threshold=0.9,
        review_threshold=0.4,
    )
    recommender = Recommender(
        small_catalog(30), config, VWPolicy.fresh(config), np.random.default_rng(0)
    )
    proposal = recommender.propose(CONTEXT)
    assert proposal.confidence == pytest.approx(1 - proposal.uncertainty["committee_disagreement"])
    assert proposal.route == route_for(proposal.confidence, config)
    assert {"committee_disagreement", "vote_entropy"} <= set(proposal.uncertainty)
