"""The pseudo-inverse slate estimator (`pi`) on a log whose logging policy was uniform.

The pseudo-inverse estimator (Swaminathan, Krishnamurthy, Agarwal, Dudik, Langford, Jose and
Zitouni, 2017, "Off-policy evaluation for slate recommendation", NeurIPS) weights event i's
slate reward by W_i = q_pi(x_i)^T Gamma_mu(x_i)^+ 1_{s_i}: q_pi the target's marginal
probability of every (position, item) cell, Gamma_mu = E_mu[1_s 1_s^T] the logging policy's
slot-pair probabilities, 1_s the logged slate's cells. It is unbiased when the slate reward
is additive, a sum of one term per (position, item), and only then.

A sequential log holds mu's conditional probabilities along the logged slate, not Gamma. When
the logging policy filled the L positions uniformly at random without replacement from the
event's m candidates, Gamma is known: blocks I / m on the diagonal (one position) and
(J - I) / (m (m - 1)) off it. Then w(k, a) = (m - 1) q(k, a) + u_a solves Gamma w = q_pi,
and every solution gives the same W on every slate uniform logging can draw:

    W_i = (m - 1) sum_k q(k, s_ik) + ((m - 1) sum_k p(s_ik) - (L - 1) m) / (m - L)   (m > L)
    W_i = (m - 1) sum_k q(k, s_ik) + 2 - m                                          (m = L)

with q(k, a) the target's chance of a at position k and p(a) = sum_k q(k, a) its chance of
showing a anywhere; one position gives m q, plain IPS. Each row's term is W_i r_ik, so the
mean is the reward per delivered position, like every slate estimator here
(`bandit.ope.slate`; tests check W against the pseudo-inverse of the enumerated Gamma).
"""

from __future__ import annotations

import numpy as np

from bandit.ope.log_format import LogFormatError, ReplayLog
from bandit.ope.targets import TargetDistribution, TargetError

UNIFORM = "uniform"
LOGGING_POLICIES = (UNIFORM,)
PROPENSITY_TOLERANCE = 1e-9  # relative: 1 / (m - k) written as a double and read back


class UniformLoggingError(LogFormatError):
    """The log does not show the declared uniform logging policy; names the row and column."""


def uniform_sizes(log: ReplayLog) -> tuple[np.ndarray, np.ndarray]:
    """(m, L) per event: candidates at its first position and its slate length.

    Checks the declaration: positions 0..L-1 in every event, m - k candidates at position k,
    and every row's propensity 1 / (m - k) (1 / (m - k + 1) counting positions from 1).
    """
    if log.candidates is None:
        raise UniformLoggingError(
            "pi with uniform logging needs the log's candidates table "
            "(FILE.candidates.parquet or .csv) to know each event's m candidates"
        )
    events = int(log.event.max()) + 1
    length = np.bincount(log.event, minlength=events)
    last = np.zeros(events, dtype=np.int64)
    np.maximum.at(last, log.event, log.position)
    gap = np.flatnonzero(last[log.event] != length[log.event] - 1)
    if gap.size:
        row = int(gap[0])
        raise UniformLoggingError(
            f"row {row + 1}, column position: event {log.event_ids[int(log.event[row])].as_py()!r} "
            "does not fill positions 0, 1, ..., L-1, which uniform logging's Gamma assumes"
        )
    offered = np.bincount(log.candidates.row, minlength=log.rows)
    first = np.flatnonzero(log.position == 0)
    items = np.zeros(events, dtype=np.int64)
    items[log.event[first]] = offered[first]
    per_row = items[log.event]
    free = per_row - log.position
    wrong = np.flatnonzero(offered != free)
    if wrong.size:
        row = int(wrong[0])
        raise UniformLoggingError(
            f"row {row + 1}, column position: {offered[row]} candidates at position "
            f"{log.position[row]}, not the {free[row]} left of the event's {per_row[row]} by a "
            "draw without replacement"
        )
    expected = 1.0 / free
    off = np.flatnonzero(np.abs(log.propensity - expected) > PROPENSITY_TOLERANCE * expected)
    if off.size:
        row = int(off[0])
        raise UniformLoggingError(
            f"row {row + 1}, column propensity: {log.propensity[row]:.6g} is not "
            f"1/(m - k + 1) = 1/{free[row]} of uniform logging (m = {per_row[row]} "
            f"candidates, position k = {log.position[row] + 1} counted from 1); "
            "the logging policy was not uniform, so pi's Gamma is unknown"
        )
    return items, length


def uniform_pi_weights(
    log: ReplayLog, target: TargetDistribution, max_weight: float | None = None
) -> np.ndarray:
    """W_i per row (repeated over the event's rows), from the closed form above."""
    items, length = uniform_sizes(log)
    if target.marginal is None:
        raise TargetError(
            f"target {target.name!r}: pi needs the target's marginal probability of each "
            "logged item at its position (a marginal_probability column in the target file)"
        )
    events = items.size
    own = np.bincount(log.event, weights=target.marginal, minlength=events)
    weight = (items - 1) * own + 2.0 - items  # m = L, and the base of m > L
    partial = items > length  # 1 < L < m also needs p(a), the chance of a anywhere
    needs_inclusion = partial & (length > 1)
    if needs_inclusion.any() and target.inclusion is None:
        raise TargetError(
            f"target {target.name!r}: pi on slates of L < m positions needs the target's "
            "probability of showing each logged item anywhere in its slate (an "
            "inclusion_probability column in the target file)"
        )
    inclusion = (
        own
        if target.inclusion is None
        else np.bincount(log.event, weights=target.inclusion, minlength=events)
    )
    m, k = items[partial], length[partial]
    weight[partial] = (m - 1) * own[partial] + ((m - 1) * inclusion[partial] - (k - 1) * m) / (
        m - k
    )
    if max_weight is not None:
        np.minimum(weight, max_weight, out=weight)
    return weight[log.event]
