"""Probability calibration: isotonic regression, and how well calibrated a predictor is.

Isotonic regression (pool-adjacent-violators, Zadrozny & Elkan 2002) maps raw scores to
probabilities by the monotone step function that minimises squared error on held-out labels.
Expected calibration error (Naeini et al. 2015) with B equal-width bins:

    ECE = sum_b (n_b / n) * |mean(y in b) - mean(p in b)|

and the Brier score is mean((p - y)^2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

RELIABILITY_BINS = 10


@dataclass(frozen=True)
class IsotonicMap:
    """A fitted monotone step map from raw score to probability."""

    # Upper edge of each block's raw scores, ascending, and the block's probability.
    edges: tuple[float, ...]
    values: tuple[float, ...]

    def __call__(self, raw: ArrayLike) -> np.ndarray:
        scores = np.asarray(raw, dtype=float)
        if not self.edges:
            return scores
        index = np.searchsorted(np.asarray(self.edges), scores, side="left")
        return np.asarray(self.values)[np.minimum(index, len(self.values) - 1)]

    def to_document(self) -> dict[str, Any]:
        """JSON-able form, stored with the model version."""
        return {"edges": list(self.edges), "values": list(self.values)}

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> IsotonicMap:
        """The map stored by `to_document`."""
        return cls(tuple(document["edges"]), tuple(document["values"]))


def fit_isotonic(raw: ArrayLike, labels: ArrayLike, prior_strength: float = 1.0) -> IsotonicMap:
    """Isotonic regression of 0/1 labels on raw scores (PAV), blocks shrunk towards the mean.

    The shrinkage (`prior_strength` pseudo-labels at the overall rate per block) keeps a
    small block from claiming probability exactly 0 or 1.
    """
    x = np.asarray(raw, dtype=float)
    y = np.asarray(labels, dtype=float)
    if x.size == 0:
        return IsotonicMap((), ())
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    sums: list[float] = []
    counts: list[float] = []
    tops: list[float] = []
    for xi, yi in zip(x.tolist(), y.tolist(), strict=True):
        sums.append(yi)
        counts.append(1.0)
        tops.append(xi)
        while len(sums) > 1 and sums[-2] / counts[-2] >= sums[-1] / counts[-1]:
            merged_sum, merged_count, merged_top = sums.pop(), counts.pop(), tops.pop()
            sums[-1] += merged_sum
            counts[-1] += merged_count
            tops[-1] = merged_top
    mean = float(y.mean())
    shrunk = (np.array(sums) + prior_strength * mean) / (np.array(counts) + prior_strength)
    # Shrinking blocks of different sizes could undo the order; restore it.
    values = np.maximum.accumulate(shrunk)
    return IsotonicMap(tuple(tops), tuple(float(v) for v in values))


def expected_calibration_error(
    probabilities: ArrayLike, labels: ArrayLike, bins: int = RELIABILITY_BINS
) -> float:
    """ECE over `bins` equal-width bins (see the module docstring)."""
    table = reliability_table(probabilities, labels, bins)
    n = sum(row["count"] for row in table)
    if n == 0:
        return float("nan")
    return float(sum(row["count"] / n * abs(row["observed"] - row["predicted"]) for row in table))


def brier_score(probabilities: ArrayLike, labels: ArrayLike) -> float:
    """Mean squared difference between predicted probability and the 0/1 outcome."""
    p = np.asarray(probabilities, dtype=float)
    y = np.asarray(labels, dtype=float)
    return float(np.mean((p - y) ** 2)) if p.size else float("nan")


def reliability_table(
    probabilities: ArrayLike, labels: ArrayLike, bins: int = RELIABILITY_BINS
) -> list[dict[str, float]]:
    """Per non-empty bin: its range, count, mean predicted probability and observed rate."""
    p = np.asarray(probabilities, dtype=float)
    y = np.asarray(labels, dtype=float)
    which = np.minimum((p * bins).astype(int), bins - 1)
    rows = []
    for b in range(bins):
        mask = which == b
        if mask.any():
            rows.append(
                {
                    "low": b / bins,
                    "high": (b + 1) / bins,
                    "count": int(mask.sum()),
                    "predicted": float(p[mask].mean()),
                    "observed": float(y[mask].mean()),
                }
            )
    return rows
