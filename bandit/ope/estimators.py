"""Off-policy estimators over column arrays: IPS, SNIPS, DM and DR, with intervals and ESS.

Every estimator is a frozen dataclass whose fields are its settings, and `estimate` is pure,
vectorised numpy over the rows. Notation, per row i (one (event, position) of the log):
r_i the logged reward, mu_i the logging policy's probability of the logged action a_i,
pi_i = pi(a_i | x_i) the target's, w_i = pi_i / mu_i, q_i = q(x_i, a_i) a reward model's
prediction for the logged action and qbar_i = sum_a pi(a | x_i) q(x_i, a) its expectation
under the target.

Intervals here are normal approximations on the per-row terms whose mean is the estimate
(`hitl replay` and `bandit.ope.replay.evaluate` do not use these classes' intervals: they take
the same terms through `bandit.ope.intervals`, a cluster bootstrap below an ESS of 1,000). Rows of
one event (the positions of one slate) are not independent, so when event codes are given the
variance is the cluster-robust (sandwich) one over events: Var = G / (G - 1) * sum_g S_g^2 / n^2
with S_g the sum of centred terms of event g.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from statistics import NormalDist

import numpy as np


@dataclass(frozen=True)
class ReplayArrays:
    """The per-row arrays every estimator reads; q arrays only for DM and DR."""

    reward: np.ndarray
    propensity: np.ndarray
    target_probability: np.ndarray
    cluster: np.ndarray | None = None
    q_logged: np.ndarray | None = None
    q_target: np.ndarray | None = None

    def __post_init__(self) -> None:
        check_row_arrays(
            self, ("propensity", "target_probability", "cluster", "q_logged", "q_target")
        )

    @cached_property
    def weight(self) -> np.ndarray:
        """Importance weights pi_i / mu_i (computed once: every estimator reads them)."""
        return self.target_probability / self.propensity

    @cached_property
    def groups(self) -> int | None:
        """Number of distinct clusters (None without clusters), counted once."""
        return None if self.cluster is None else cluster_count(self.cluster)


def check_row_arrays(record: object, names: tuple[str, ...]) -> None:
    """Every named array of `record` (None allowed) has one value per reward row, and there
    are rows at all; the message names the first array that does not."""
    reward: np.ndarray = getattr(record, "reward")  # noqa: B009
    for name in names:
        value = getattr(record, name)
        if value is not None and value.shape != reward.shape:
            raise ValueError(f"{name}: shape {value.shape} differs from reward's {reward.shape}")
    if reward.size == 0:
        raise ValueError("reward: no rows to estimate from")


@dataclass(frozen=True)
class Estimate:
    """An estimated value of the target with its interval and effective sample size."""

    estimator: str
    value: float
    ci_low: float
    ci_high: float
    ess: float
    rows: int
    method: str = "normal"  # how the interval was made: normal or bootstrap
    # The estimator's own value when it fell outside the observed reward range; `value` (and
    # the interval) are then clipped to that range (`bandit.ope.intervals.in_reward_range`).
    unclipped: float | None = None

    def as_dict(self) -> dict[str, float | None]:
        """The JSON fields of replay.json (`unclipped` null unless the value was clipped)."""
        return {
            "value": self.value,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "ess": self.ess,
            "unclipped": self.unclipped,
        }


def _check_level(level: float) -> None:
    if not 0.5 <= level < 1.0:
        raise ValueError(f"level: must be in [0.5, 1); got {level}")


def _check_clip(max_weight: float | None) -> None:
    if max_weight is not None and not max_weight > 0:
        raise ValueError(f"max_weight: must be positive or None; got {max_weight}")


def _clipped(weight: np.ndarray, max_weight: float | None) -> np.ndarray:
    return weight if max_weight is None else np.minimum(weight, max_weight)


def cluster_count(cluster: np.ndarray) -> int:
    """Number of distinct cluster codes."""
    return int(np.count_nonzero(np.bincount(cluster)))


def standard_error(
    centred: np.ndarray, cluster: np.ndarray | None, groups: int | None = None
) -> float:
    """Standard error of a mean from its centred per-row terms, cluster-robust over events;
    `groups`, the number of distinct clusters, is counted when not given."""
    n = centred.size
    if cluster is None:
        return float(np.sqrt(np.dot(centred, centred) / max(n - 1, 1) / n))
    sums = np.bincount(cluster, weights=centred)
    groups = cluster_count(cluster) if groups is None else groups
    correction = groups / max(groups - 1, 1)
    return float(np.sqrt(correction * np.dot(sums, sums)) / n)


def effective_sample_size(weight: np.ndarray, cluster: np.ndarray | None = None) -> float:
    """Kish's effective sample size (sum w)^2 / sum w^2, in events when clustered; 0 when no
    row has weight.

    With event codes, each event counts once with the mean weight of its rows, so the ESS is
    a number of slates (at most the event count, equal to it when every weight is 1), the unit
    of the thresholds that pick the interval and the warning (docs/replay.md).
    """
    if cluster is not None:
        counts = np.bincount(cluster)
        present = counts > 0
        weight = np.bincount(cluster, weights=weight)[present] / counts[present]
    total = float(weight.sum())
    squares = float(np.dot(weight, weight))
    return 0.0 if squares == 0 else total * total / squares


def normal_quantile(probability: float) -> float:
    """The standard normal quantile (within 1 ulp of scipy.stats' norm.ppf; importing SciPy
    cost `hitl replay` ~0.6 s of CPU for this one number)."""
    return NormalDist().inv_cdf(probability)


def _interval(name: str, value: float, se: float, ess: float, n: int, level: float) -> Estimate:
    z = normal_quantile(0.5 + level / 2)
    return Estimate(name, value, value - z * se, value + z * se, ess, n)


def _mean_estimate(
    name: str, terms: np.ndarray, arrays: ReplayArrays, ess: float, level: float
) -> Estimate:
    value = float(terms.mean())
    se = standard_error(terms - value, arrays.cluster, arrays.groups)
    return _interval(name, value, se, ess, terms.size, level)


@dataclass(frozen=True)
class IPS:
    """Inverse propensity scoring: V = 1/n sum_i w_i r_i.

    Unbiased when mu_i > 0 wherever pi puts mass (Horvitz & Thompson, 1952, "A generalization
    of sampling without replacement from a finite universe"; Precup, Sutton & Singh, 2000,
    "Eligibility traces for off-policy policy evaluation"). `max_weight` clips w (biased,
    lower variance).
    """

    level: float = 0.95
    max_weight: float | None = None

    def __post_init__(self) -> None:
        _check_level(self.level)
        _check_clip(self.max_weight)

    def estimate(self, arrays: ReplayArrays) -> Estimate:
        """The IPS estimate with its interval and ESS."""
        weight = _clipped(arrays.weight, self.max_weight)
        terms = weight * arrays.reward
        ess = effective_sample_size(weight, arrays.cluster)
        return _mean_estimate("ips", terms, arrays, ess, self.level)


@dataclass(frozen=True)
class SNIPS:
    """Self-normalised IPS: V = sum_i w_i r_i / sum_i w_i.

    Biased but consistent, bounded by the reward range, and usually far less variable than IPS
    (Swaminathan & Joachims, 2015, "The self-normalized estimator for counterfactual
    learning"). The interval uses the delta method: the terms w_i (r_i - V) / mean(w).
    """

    level: float = 0.95
    max_weight: float | None = None

    def __post_init__(self) -> None:
        _check_level(self.level)
        _check_clip(self.max_weight)

    def estimate(self, arrays: ReplayArrays) -> Estimate:
        """The SNIPS estimate with its delta-method interval and ESS."""
        weight = _clipped(arrays.weight, self.max_weight)
        ess = effective_sample_size(weight, arrays.cluster)
        total = float(weight.sum())
        if total == 0.0:
            # The target never picks a logged action: the data say nothing about it.
            nan = float("nan")
            return Estimate("snips", nan, nan, nan, 0.0, arrays.reward.size)
        value = float(np.dot(weight, arrays.reward) / total)
        linearised = weight * (arrays.reward - value) * (weight.size / total)
        se = standard_error(linearised, arrays.cluster, arrays.groups)
        return _interval("snips", value, se, ess, weight.size, self.level)


@dataclass(frozen=True)
class DM:
    """Direct method: V = 1/n sum_i qbar_i, the reward model's value of the target.

    No importance weights, so low variance, but biased wherever the reward model is wrong
    (Dudík, Langford & Li, 2011, "Doubly robust policy evaluation and learning"). The interval
    covers sampling noise of the contexts only, not the model's bias; ESS is the number of
    events (of rows without event codes).
    """

    level: float = 0.95

    def __post_init__(self) -> None:
        _check_level(self.level)

    def estimate(self, arrays: ReplayArrays) -> Estimate:
        """The DM estimate with its interval."""
        if arrays.q_target is None:
            raise ValueError("q_target: DM needs the reward model's predictions")
        n = arrays.q_target.size if arrays.groups is None else arrays.groups
        return _mean_estimate("dm", arrays.q_target, arrays, float(n), self.level)


@dataclass(frozen=True)
class DR:
    """Doubly robust: V = 1/n sum_i [qbar_i + w_i (r_i - q_i)].

    Unbiased when the propensities are right, and of lower variance than IPS when the reward
    model is good (Dudík, Langford & Li, 2011, "Doubly robust policy evaluation and learning").
    q comes from K-fold cross-fitting, so no row's prediction saw its own reward
    (Chernozhukov et al., 2018, "Double/debiased machine learning").
    """

    level: float = 0.95
    max_weight: float | None = None

    def __post_init__(self) -> None:
        _check_level(self.level)
        _check_clip(self.max_weight)

    def estimate(self, arrays: ReplayArrays) -> Estimate:
        """The DR estimate with its interval and the ESS of its weights."""
        if arrays.q_target is None or arrays.q_logged is None:
            raise ValueError("q_target, q_logged: DR needs the reward model's predictions")
        weight = _clipped(arrays.weight, self.max_weight)
        terms = arrays.q_target + weight * (arrays.reward - arrays.q_logged)
        ess = effective_sample_size(weight, arrays.cluster)
        return _mean_estimate("dr", terms, arrays, ess, self.level)


ESTIMATORS = {"ips": IPS, "snips": SNIPS, "dm": DM, "dr": DR}
NEEDS_REWARD_MODEL = frozenset({"dm", "dr"})
