"""Slate estimators: the value of the target's own slates, from a log of sequential slates.

Notation. Event i shows a slate s_i = (a_i1, ..., a_iL); row (i, k) of the log holds position
k's reward r_ik, the logging policy's probability of a_ik given the items placed before it,
mu_ik = mu(a_ik | x_i, a_i<k), and the target's, pi_ik = pi(a_ik | x_i, a_i<k) (both choose
among the candidates still free at k, as `bandit.engine.slate.draw_slate` does). Ratios
rho_ik = pi_ik / mu_ik; the prefix weight w_i<=k = prod_{j<=k} rho_ij, the slate weight
W_i = w_i<=L. Every estimator below is a mean of per-row terms, so it is the estimated reward
per delivered position of the target's slates: V = E_x E_{s ~ pi(.|x)} [sum_k r_k] / Lbar,
Lbar the mean slate length (for slates of one length, the slate value divided by L). Being
sums of per-row terms, each maps over partitions of a log (sum the terms, add the counts).

| estimator | per-row term | assumption it needs besides right propensities |
|---|---|---|
| standard slate IPS (`sips`) | W_i r_ik | none (Swaminathan et al. 2017, Kiyohara et al. 2022) |
| reward-interaction IPS (`rips`) | w_i<=k r_ik | cascade: r_ik depends on a_i1..a_ik only |
| cascade DR (`cascade-dr`) | w_i<=k (r_ik - q_ik) + w_i<k qbar_ik | cascade |
| independent IPS (`iips`) | (pi^m_ik / mu^m_ik) r_ik | r_ik depends on (x, k, a_ik) only |
| pseudo-inverse (API) | (q_pi^T Gamma^+ 1_s)_i r_ik | slate reward additive over (position, item) |

q_ik = q(x_i, a_ik) a reward model's prediction for the logged item, qbar_ik =
sum_a pi(a | x_i, a_i<k) q(x_i, a); pi^m, mu^m the *marginal* probabilities that the item is
at position k, whatever came before. Cascade DR (Kiyohara, Saito, Matsuhiro, Narita, Shimizu
and Yamamoto, 2022, "Doubly robust off-policy evaluation for ranking policies under the
cascade behavior model", WSDM) is unbiased for any q; here q predicts the position's own
reward (a q that also predicted later positions' rewards would lower its variance further).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from bandit.ope.estimators import check_row_arrays


@dataclass(frozen=True)
class SlateArrays:
    """Per-row arrays of a slate log; marginals only for `iips`, q arrays only for DR."""

    event: np.ndarray  # event code per row, in [0, G)
    position: np.ndarray
    reward: np.ndarray
    propensity: np.ndarray  # mu(a_ik | x_i, a_i<k)
    target_probability: np.ndarray  # pi(a_ik | x_i, a_i<k)
    marginal_propensity: np.ndarray | None = None  # mu(a_ik at k | x_i)
    marginal_target: np.ndarray | None = None  # pi(a_ik at k | x_i)
    q_logged: np.ndarray | None = None
    q_target: np.ndarray | None = None

    def __post_init__(self) -> None:
        check_row_arrays(
            self,
            (
                "event",
                "position",
                "propensity",
                "target_probability",
                "marginal_propensity",
                "marginal_target",
                "q_logged",
                "q_target",
            ),
        )

    @property
    def ratio(self) -> np.ndarray:
        """Per-position ratios rho_ik = pi_ik / mu_ik."""
        return self.target_probability / self.propensity


@dataclass(frozen=True)
class SlateWeights:
    """The weights of every slate estimator, per row."""

    prefix: np.ndarray  # w_i<=k
    before: np.ndarray  # w_i<k (1 at the first position)
    slate: np.ndarray  # W_i, repeated on every row of event i


def prefix_products(
    event: np.ndarray, position: np.ndarray, values: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: the product of `values` over the event's positions up to and including the
    row's (prefix), before it (1 at the first position), and over the whole slate."""
    # Logs are usually written event by event, positions in order: then skip the sort, and
    # when every slate has the same length, multiply along the rows of an (events, L) grid.
    in_order = _in_slate_order(event, position)
    length = _common_length(event) if in_order else 0
    if length:
        grid = np.array(values, dtype=float).reshape(-1, length)
        prefix = np.cumprod(grid, axis=1)  # the same left-to-right products as the loop below
        before = np.ones_like(prefix)
        before[:, 1:] = prefix[:, :-1]
        return prefix.ravel(), before.ravel(), np.repeat(prefix[:, -1], length)
    order = None if in_order else np.lexsort((position, event))
    sorted_event = event if order is None else event[order]
    sorted_values = values if order is None else values[order]
    start = np.ones(sorted_event.size, dtype=bool)
    start[1:] = sorted_event[1:] != sorted_event[:-1]
    starts = np.flatnonzero(start)
    run = np.diff(np.append(starts, sorted_event.size))
    rank = np.arange(sorted_event.size) - np.repeat(starts, run)
    prefix = np.array(sorted_values, dtype=float)
    # One vectorised step per slate position: slates are short, logs are long.
    for k in range(1, int(rank.max(initial=0)) + 1):
        at = np.flatnonzero(rank == k)
        prefix[at] = prefix[at - 1] * sorted_values[at]
    before = np.ones(sorted_event.size)
    later = rank > 0
    before[later] = prefix[np.flatnonzero(later) - 1]
    whole = np.repeat(prefix[starts + run - 1], run)
    if order is None:
        return prefix, before, whole
    out = [np.empty(sorted_event.size) for _ in range(3)]
    for result, target in zip((prefix, before, whole), out, strict=True):
        target[order] = result
    return out[0], out[1], out[2]


def _common_length(event: np.ndarray) -> int:
    """L when rows in slate order hold every event as exactly L consecutive rows, else 0."""
    if event.size == 0:
        return 0
    length = int(np.argmax(event != event[0])) or event.size
    if event.size % length:
        return 0
    grid = event.reshape(-1, length)
    whole_rows = bool(np.all(grid[:, 0] == grid[:, -1]))
    return length if whole_rows and bool(np.all(grid[1:, 0] != grid[:-1, 0])) else 0


def _in_slate_order(event: np.ndarray, position: np.ndarray) -> bool:
    """Whether rows already run event by event, positions strictly increasing within each."""
    later_event = event[1:] > event[:-1]
    same_event = event[1:] == event[:-1]
    return bool(np.all(later_event | (same_event & (position[1:] > position[:-1]))))


def slate_weights(arrays: SlateArrays, max_weight: float | None = None) -> SlateWeights:
    """Prefix, previous-prefix and whole-slate weights; `max_weight` clips each of them."""
    prefix, before, whole = prefix_products(arrays.event, arrays.position, arrays.ratio)
    if max_weight is not None:
        prefix, before, whole = (np.minimum(w, max_weight) for w in (prefix, before, whole))
    return SlateWeights(prefix, before, whole)


def sips_terms(arrays: SlateArrays, weights: SlateWeights) -> np.ndarray:
    """Standard slate IPS: W_i r_ik (Swaminathan et al. 2017's 'standard IPS' on slates)."""
    return weights.slate * arrays.reward


def rips_terms(arrays: SlateArrays, weights: SlateWeights) -> np.ndarray:
    """Reward-interaction (cascade) IPS: w_i<=k r_ik (McInerney et al. 2020; Kiyohara 2022)."""
    return weights.prefix * arrays.reward


def cascade_dr_terms(arrays: SlateArrays, weights: SlateWeights) -> np.ndarray:
    """Cascade DR: w_i<=k (r_ik - q_ik) + w_i<k qbar_ik (Kiyohara et al. 2022, eq. for
    Cascade-DR with gamma = 1)."""
    if arrays.q_logged is None or arrays.q_target is None:
        raise ValueError("q_logged, q_target: cascade-dr needs the reward model's predictions")
    return weights.prefix * (arrays.reward - arrays.q_logged) + weights.before * arrays.q_target


def switch_dr_terms(arrays: SlateArrays, weights: SlateWeights, threshold: float) -> np.ndarray:
    """SWITCH-DR: the cascade-DR correction only where w_i<=k <= threshold, the reward model
    alone elsewhere (Wang, Agarwal and Dudik, 2017, "Optimal and adaptive off-policy evaluation
    in contextual bandits"; exactly theirs on one-position logs). Biased towards the model
    where weights are large, with far less variance."""
    if arrays.q_logged is None or arrays.q_target is None:
        raise ValueError("q_logged, q_target: switch-dr needs the reward model's predictions")
    trusted = weights.prefix <= threshold
    correction = np.where(trusted, weights.prefix * (arrays.reward - arrays.q_logged), 0.0)
    return correction + np.minimum(weights.before, threshold) * arrays.q_target


def iips_terms(arrays: SlateArrays, max_weight: float | None = None) -> np.ndarray:
    """Independent IPS: (pi^m_ik / mu^m_ik) r_ik with marginal probabilities (Li et al. 2018,
    "Offline evaluation of ranking policies with click models"; OBP's SlateIndependentIPS)."""
    if arrays.marginal_propensity is None or arrays.marginal_target is None:
        raise ValueError(
            "marginal_propensity, marginal_target: iips needs both policies' marginal "
            "probabilities of each item at its position"
        )
    weight = arrays.marginal_target / arrays.marginal_propensity
    if max_weight is not None:
        weight = np.minimum(weight, max_weight)
    return weight * arrays.reward


def pseudo_inverse_weight(
    target_marginal: np.ndarray, gamma: np.ndarray, group: np.ndarray, slate_cells: np.ndarray
) -> np.ndarray:
    """Per-event PI weights q_pi(x)^T Gamma_mu(x)^+ 1_s (Swaminathan, Krishnamurthy, Agarwal,
    Dudik, Langford, Jose and Zitouni, 2017, "Off-policy evaluation for slate recommendation").

    Contexts are grouped (events of one group share both policies): `target_marginal` (C, D)
    is the target's marginal probability of every (position, item) cell, D = L x m, cell
    (k, a) = k * m + a; `gamma` (C, D, D) the logging policy's E[1_s 1_s^T]; `group` (G,) each
    event's group; `slate_cells` (G, L) the cell of each logged (position, item). Unbiased when
    the slate reward is a sum of (position, item) terms (the linearity assumption), not
    otherwise.
    """
    projected = np.stack(
        [np.linalg.pinv(g, hermitian=True) @ q for g, q in zip(gamma, target_marginal, strict=True)]
    )
    return np.take_along_axis(projected[group], slate_cells, axis=1).sum(axis=1)


@lru_cache(maxsize=32)
def uniform_gamma(items: int, length: int) -> np.ndarray:
    """Gamma = E[1_s 1_s^T] of uniformly random slates of `length` distinct items of `items`.

    Cell (k, a) is index k * items + a. P(a at k) = 1/m; P(a at k, b at j) = 1/(m (m - 1))
    for k != j, a != b; zero for one item at two positions or two items at one position.
    """
    m, size = items, items * length
    gamma = np.zeros((size, size))
    pair = 1.0 / (m * (m - 1)) if m > 1 else 0.0
    for k in range(length):
        for j in range(length):
            block = np.full((m, m), pair)
            np.fill_diagonal(block, 0.0)
            if k == j:
                block = np.eye(m) / m
            gamma[k * m : (k + 1) * m, j * m : (j + 1) * m] = block
    return gamma


def uniform_pi_weight(
    target_marginal: np.ndarray, slate_cells: np.ndarray, items: int
) -> np.ndarray:
    """PI weights for a uniformly random logging policy (one Gamma for every event)."""
    length = slate_cells.shape[1]
    pinv = np.linalg.pinv(uniform_gamma(items, length), hermitian=True)
    projected = target_marginal @ pinv.T  # (G, D)
    return np.take_along_axis(projected, slate_cells, axis=1).sum(axis=1)
