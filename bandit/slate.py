"""Slates of M items drawn without replacement from the policy's pmf."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SlateDraw:
    """Candidate positions chosen, in slate order, with each draw's conditional probability."""

    chosen: np.ndarray
    position_probability: np.ndarray


def draw_slate(pmf: np.ndarray, size: int, rng: np.random.Generator) -> SlateDraw:
    """Draw `size` candidates one position at a time.

    At position j the pmf is renormalised over the candidates not yet placed:
    P(i at j | earlier picks) = pmf_i / (1 - sum of the earlier picks' pmf). If no mass is left
    on the remaining candidates (a greedy pmf), the draw is uniform over them and that
    uniform probability is what gets logged.
    """
    remaining = np.ones(pmf.size, dtype=bool)
    chosen: list[int] = []
    probabilities: list[float] = []
    for _ in range(min(size, pmf.size)):
        weights = np.where(remaining, pmf, 0.0)
        total = weights.sum()
        if total <= 1e-12:
            weights = remaining.astype(float)
            total = weights.sum()
        conditional = weights / total
        pick = int(rng.choice(pmf.size, p=conditional))
        chosen.append(pick)
        probabilities.append(float(conditional[pick]))
        remaining[pick] = False
    return SlateDraw(np.array(chosen, dtype=np.int64), np.array(probabilities))
