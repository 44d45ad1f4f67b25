"""Uncertainty measures of a distribution, each normalised to [0, 1] (1 = most uncertain)."""

from __future__ import annotations

import functools

import numpy as np
from numpy.typing import ArrayLike

from bandit.engine.vocabulary import DISTRIBUTION_MEASURES, Measure

MEASURES = DISTRIBUTION_MEASURES
# Measures of a bag's committee: only a `bag` policy has one.

# The reductions that .sum(), .min() and .max() call, without their Python wrappers: a
# request's measures are a dozen calls on 100 numbers, where the wrappers cost as much.
_sum, _min, _max = np.add.reduce, np.minimum.reduce, np.maximum.reduce


def _sorted_distribution(probabilities: ArrayLike) -> np.ndarray:
    p = np.asarray(probabilities, dtype=float)
    if p.ndim != 1 or p.size == 0:
        raise ValueError("probabilities must be a non-empty 1-D array")
    # np.isclose(sum, 1, atol=1e-6) written out: the call costs more than the measures.
    if _min(p) < 0 or abs(float(_sum(p)) - 1.0) > 1e-6 + 1e-5:
        raise ValueError("probabilities must be non-negative and sum to 1")
    descending = p.copy()  # np.sort(p) is this copy sorted in place
    descending.sort()
    return descending[::-1]


@functools.lru_cache(maxsize=256)
def _log2(n: int) -> float:
    return float(np.log2(n))


def least_confidence(probabilities: ArrayLike) -> float:
    """(1 - p1) * n / (n - 1)."""
    p = _sorted_distribution(probabilities)
    n = p.size
    return 0.0 if n == 1 else float((1.0 - p[0]) * n / (n - 1))


def margin(probabilities: ArrayLike) -> float:
    """1 - (p1 - p2)."""
    p = _sorted_distribution(probabilities)
    return 0.0 if p.size == 1 else float(1.0 - (p[0] - p[1]))


def ratio(probabilities: ArrayLike) -> float:
    """p2 / p1."""
    p = _sorted_distribution(probabilities)
    return 0.0 if p.size == 1 else float(p[1] / p[0])


def entropy(probabilities: ArrayLike) -> float:
    """-sum p log2 p / log2 n."""
    p = _sorted_distribution(probabilities)
    if p.size == 1:
        return 0.0
    nonzero = p[p > 0]
    return float(-(nonzero * np.log2(nonzero)).sum() / np.log2(p.size))


def all_measures(probabilities: ArrayLike) -> dict[str, float]:
    """Every measure, clipped into [0, 1] against rounding (the distribution is checked once)."""
    p = _sorted_distribution(probabilities)
    n = p.size
    if n == 1:
        return dict.fromkeys(MEASURES, 0.0)
    nonzero = p[p > 0]
    # Python floats: the same double arithmetic as numpy's scalars, a fraction of the cost.
    first, second = float(p[0]), float(p[1])
    values = (
        (Measure.LEAST_CONFIDENCE, (1.0 - first) * n / (n - 1)),
        (Measure.MARGIN, 1.0 - (first - second)),
        (Measure.RATIO, second / first),
        (Measure.ENTROPY, float(-_sum(nonzero * np.log2(nonzero))) / _log2(n)),
    )
    return {name: min(1.0, max(0.0, value)) for name, value in values}


def confidence_distribution(scores: ArrayLike, temperature: float) -> np.ndarray:
    """Softmax of the policy's estimated rewards: how strongly it prefers each candidate.

    The exploration pmf is not used here: under epsilon-greedy its top mass is the same
    constant for every request and says nothing about how sure the model is.
    """
    s = np.asarray(scores, dtype=float) / temperature
    s -= _max(s)
    weights = np.exp(s, out=s)
    return weights / _sum(weights)


def committee_votes(pmf: ArrayLike, epsilon: float) -> np.ndarray:
    """The bag members' vote shares over the actions, read back from VW's bag pmf.

    VW's bag gives each of its N members' top action a vote of 1/N (a member whose top scores
    tie splits its vote), then enforces the floor f = epsilon / n by projection: every share
    v becomes p = max(v - tau, f) with one shift tau chosen so the pmf sums to 1. The inverse
    on the actions above the floor (the voted set A) is v_a = p_a + (1 - sum_{b in A} p_b) / |A|,
    and v = 0 elsewhere. An action whose vote was pushed down to the floor reads as 0 votes.
    """
    p = np.asarray(pmf, dtype=float)
    voted = p > epsilon / p.size + 1e-6
    if not voted.any():
        return np.full(p.size, 1.0 / p.size)
    shares = np.zeros(p.size)
    shares[voted] = p[voted] + (1.0 - p[voted].sum()) / voted.sum()
    return np.clip(shares, 0.0, None) / np.clip(shares, 0.0, None).sum()


def committee_disagreement(shares: ArrayLike, members: int) -> float:
    """Share of members not voting for the top pick, (1 - v1) / (1 - 1/m), m = min(N, n)."""
    v = np.asarray(shares, dtype=float)
    m = min(members, v.size)
    return 0.0 if m <= 1 else float(np.clip((1.0 - v.max()) / (1.0 - 1.0 / m), 0.0, 1.0))


def vote_entropy(shares: ArrayLike, members: int) -> float:
    """-sum v log2 v / log2 m over the vote shares v, m = min(N, n)."""
    v = np.asarray(shares, dtype=float)
    m = min(members, v.size)
    if m <= 1:
        return 0.0
    nonzero = v[v > 0]
    return float(np.clip(-(nonzero * np.log2(nonzero)).sum() / np.log2(m), 0.0, 1.0))


def committee_measures(pmf: ArrayLike, members: int, epsilon: float) -> dict[str, float]:
    """Both committee measures of a bag policy's pmf."""
    shares = committee_votes(pmf, epsilon)
    return {
        Measure.COMMITTEE_DISAGREEMENT: committee_disagreement(shares, members),
        Measure.VOTE_ENTROPY: vote_entropy(shares, members),
    }
