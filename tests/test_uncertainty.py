"""Uncertainty measures against hand-computed values."""

import math

import numpy as np
import pytest

from bandit import uncertainty

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
