"""Slates of M items drawn without replacement, one policy decision per position."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SlateDraw:
    """Candidates chosen in slate order, each draw's probability and the pmf it came from."""

    chosen: np.ndarray
    position_probability: np.ndarray
    pmfs: tuple[np.ndarray, ...]


def draw_slate(
    pmf_over: Callable[[np.ndarray], np.ndarray],
    candidate_count: int,
    size: int,
    rng: np.random.Generator,
) -> SlateDraw:
    """Fill `size` positions; position j is a fresh policy decision over what is left.

    ``pmf_over(remaining)`` returns the policy's pmf over the candidate indices in
    ``remaining``; the item drawn at position j is logged with that pmf's mass, which is
    exactly P(item at j | the items placed at positions before j).
    """
    remaining = np.arange(candidate_count)
    chosen: list[int] = []
    probabilities: list[float] = []
    pmfs: list[np.ndarray] = []
    positions = min(size, candidate_count)
    for position in range(positions):
        pmf = np.asarray(pmf_over(remaining), dtype=float)
        pick = _draw(pmf, rng)
        chosen.append(int(remaining[pick]))
        probabilities.append(float(pmf[pick]))
        pmfs.append(pmf)
        if position + 1 < positions:  # the last pick leaves nothing to draw from
            remaining = np.delete(remaining, pick)
    return SlateDraw(np.array(chosen, dtype=np.int64), np.array(probabilities), tuple(pmfs))


def _draw(pmf: np.ndarray, rng: np.random.Generator) -> int:
    """One index drawn from `pmf`: numpy's `Generator.choice(n, p=pmf)` step by step.

    The same inverse-CDF draw on one `rng.random()`, so seeded streams pick as `choice` did,
    without its argument checks (a third of a propose's draw time); the pmfs here come
    normalised from the policy.
    """
    cdf = pmf.cumsum()
    cdf /= cdf[-1]
    return int(cdf.searchsorted(rng.random(), side="right"))
