"""Uncertainty measures of a distribution, each normalised to [0, 1] (1 = most uncertain)."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

MEASURES = ("least_confidence", "margin", "ratio", "entropy")


def _sorted_distribution(probabilities: ArrayLike) -> np.ndarray:
    p = np.asarray(probabilities, dtype=float)
    if p.ndim != 1 or p.size == 0:
        raise ValueError("probabilities must be a non-empty 1-D array")
    if np.any(p < 0) or not np.isclose(p.sum(), 1.0, atol=1e-6):
        raise ValueError("probabilities must be non-negative and sum to 1")
    return np.sort(p)[::-1]


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
    values = {
        "least_confidence": (1.0 - p[0]) * n / (n - 1),
        "margin": 1.0 - (p[0] - p[1]),
        "ratio": p[1] / p[0],
        "entropy": -(nonzero * np.log2(nonzero)).sum() / np.log2(n),
    }
    return {name: min(1.0, max(0.0, float(value))) for name, value in values.items()}


def confidence_distribution(scores: ArrayLike, temperature: float) -> np.ndarray:
    """Softmax of the policy's estimated rewards: how strongly it prefers each candidate.

    The exploration pmf is not used here: under epsilon-greedy its top mass is the same
    constant for every request and says nothing about how sure the model is.
    """
    s = np.asarray(scores, dtype=float) / temperature
    s -= s.max()
    weights = np.exp(s)
    return weights / weights.sum()
