"""Intervals for estimates that are means of per-row terms, honest where weights are heavy.

Rows of one event (the positions of a slate) share a context, so every interval treats the
event as the unit: the normal interval uses the cluster-robust standard error, and where the
effective sample size is small (below `BOOTSTRAP_ESS`) the interval is a percentile bootstrap
that resamples whole events (Field & Welsh, 2007, "Bootstrapping clustered data"), which
follows the skew of heavy-tailed weights instead of assuming symmetry. Either interval is then
intersected with the reward range: a target's value per position cannot lie outside it, so
this only removes impossible values. Below `WARN_ESS` the report carries a warning: few logged
slates speak for the target, and no interval is trustworthy there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bandit.ope.estimators import Estimate, cluster_count, normal_quantile, standard_error

BOOTSTRAP_ESS = 1000.0
WARN_ESS = 100.0
BOOTSTRAP_RESAMPLES = 400


@dataclass(frozen=True)
class IntervalSettings:
    """Interval level, the reward range the value lies in, and the bootstrap's seed."""

    level: float = 0.95
    reward_low: float = -np.inf
    reward_high: float = np.inf
    seed: int = 0
    resamples: int = BOOTSTRAP_RESAMPLES

    def __post_init__(self) -> None:
        if not 0.5 <= self.level < 1.0:
            raise ValueError(f"level: must be in [0.5, 1); got {self.level}")
        if self.resamples < 50:
            raise ValueError(f"resamples: must be at least 50; got {self.resamples}")


def cluster_bootstrap(
    terms: np.ndarray, cluster: np.ndarray, settings: IntervalSettings
) -> tuple[float, float]:
    """Percentile interval of mean(terms), resampling whole clusters with replacement."""
    sums = np.bincount(cluster, weights=terms)
    counts = np.bincount(cluster).astype(float)
    present = counts > 0
    sums, counts = sums[present], counts[present]
    rng = np.random.default_rng([settings.seed, 404])
    groups = sums.size
    means = np.empty(settings.resamples)
    for b in range(settings.resamples):
        pick = rng.integers(groups, size=groups)
        means[b] = sums[pick].sum() / counts[pick].sum()
    tail = (1.0 - settings.level) / 2
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(low), float(high)


def mean_estimate(
    name: str,
    terms: np.ndarray,
    cluster: np.ndarray,
    ess: float,
    settings: IntervalSettings,
    groups: int | None = None,
) -> Estimate:
    """The mean of `terms` with an event-clustered interval kept inside the reward range;
    `groups`, the number of distinct events, is counted when not given."""
    value = float(terms.mean())
    groups = cluster_count(cluster) if groups is None else groups
    if ess < BOOTSTRAP_ESS and groups >= 2:
        low, high = cluster_bootstrap(terms, cluster, settings)
        method = "bootstrap"
    else:
        z = normal_quantile(0.5 + settings.level / 2)
        se = standard_error(terms - value, cluster, groups)
        low, high = value - z * se, value + z * se
        method = "normal"
    low = float(np.clip(low, settings.reward_low, settings.reward_high))
    high = float(np.clip(high, settings.reward_low, settings.reward_high))
    return Estimate(name, value, low, high, ess, terms.size, method=method)


def ess_warning(name: str, ess: float) -> str | None:
    """A warning when too few logged slates carry the target's weight (`ess` in slates)."""
    if ess >= WARN_ESS:
        return None
    return (
        f"{name}: effective sample size {ess:.1f} slates is below {WARN_ESS:.0f}; the target is "
        "far from the logging policy and this interval may not cover its value"
    )
