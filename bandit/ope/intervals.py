"""Intervals for estimates that are means of per-row terms, honest where weights are heavy.

Rows of one event (the positions of a slate) share a context, so every interval treats the
event as the unit: the normal interval uses the cluster-robust standard error, and where the
effective sample size is small (below `BOOTSTRAP_ESS`) it is widened to cover a percentile
bootstrap that resamples whole events (Field & Welsh, 2007, "Bootstrapping clustered data"),
which follows the skew of heavy-tailed weights instead of assuming symmetry; measured, neither
alone covered best for every estimator there (docs/replay.md). The interval, and the value,
are then clipped to the reward range: a target's value per position cannot lie outside it, so
this only removes impossible values (the estimator's own value is kept as `unclipped`).
Below `WARN_ESS` the report carries a warning: few logged slates speak for the target, and no
interval is trustworthy there.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from bandit.ope.estimators import Estimate, normal_quantile

BOOTSTRAP_ESS = 1000.0
NORMAL = "normal"
# Below BOOTSTRAP_ESS: each bound the farther of the normal interval's and the bootstrap's.
WIDER_OF_BOTH = "bootstrap+normal"
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


def event_sums(terms: np.ndarray, cluster: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each present event's sum of `terms` and its row count, in event-code order."""
    sums = np.bincount(cluster, weights=terms)
    counts = np.bincount(cluster).astype(float)
    present = counts > 0
    return sums[present], counts[present]


def bootstrap_of_sums(
    sums: np.ndarray, counts: np.ndarray, settings: IntervalSettings
) -> tuple[float, float]:
    """Percentile interval of sum(terms) / rows, resampling events (their term sums and row
    counts) with replacement; what `cluster_bootstrap` does, from the events' sums alone (so a
    partitioned log can ship those instead of its rows)."""
    rng = np.random.default_rng([settings.seed, 404])
    groups = sums.size
    means = np.empty(settings.resamples)
    for b in range(settings.resamples):
        pick = rng.integers(groups, size=groups)
        means[b] = sums[pick].sum() / counts[pick].sum()
    tail = (1.0 - settings.level) / 2
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(low), float(high)


def cluster_bootstrap(
    terms: np.ndarray, cluster: np.ndarray, settings: IntervalSettings
) -> tuple[float, float]:
    """Percentile interval of mean(terms), resampling whole clusters with replacement."""
    return bootstrap_of_sums(*event_sums(terms, cluster), settings)


def linearised_sums(a: np.ndarray, b: np.ndarray, counts: np.ndarray) -> tuple[float, np.ndarray]:
    """V = sum a / sum b and each event's sum of the linearised terms
    V + (n / sum b)(a_i - V b_i) from its sums A_g, B_g and row count n_g.

    Their mean is V and their centred sums (n / sum b)(A_g - V B_g) are the delta method's, so
    the normal interval of these terms is the ratio's delta-method interval and their
    bootstrap resamples events with the ratio's normaliser held at the whole log's."""
    total = float(b.sum())
    value = float(a.sum()) / total
    rows = float(counts.sum())
    return value, counts * value + (rows / total) * (a - value * b)


def mean_estimate(
    name: str,
    terms: np.ndarray,
    cluster: np.ndarray,
    ess: float,
    settings: IntervalSettings,
    value: float | None = None,
) -> Estimate:
    """The mean of `terms` (or `value`, their mean computed exactly elsewhere) with an
    event-clustered interval kept inside the reward range."""
    sums, counts = event_sums(terms, cluster)
    mean = float(terms.mean()) if value is None else value
    return sums_estimate(name, mean, sums, counts, ess, settings)


def sums_estimate(
    name: str,
    value: float,
    sums: np.ndarray,
    counts: np.ndarray,
    ess: float,
    settings: IntervalSettings,
) -> Estimate:
    """`mean_estimate` from the events' term sums and row counts (event-code order): the
    cluster-robust normal interval, widened below `BOOTSTRAP_ESS` to cover the bootstrap's
    too (each bound the farther of the two)."""
    groups = sums.size
    rows = float(counts.sum())
    z = normal_quantile(0.5 + settings.level / 2)
    centred = sums - counts * value
    correction = groups / max(groups - 1, 1)
    se = float(np.sqrt(correction * np.dot(centred, centred)) / rows)
    low, high = value - z * se, value + z * se
    method = NORMAL
    if ess < BOOTSTRAP_ESS and groups >= 2:
        # Neither interval covers better everywhere at a small ESS (docs/replay.md): the
        # bootstrap follows heavy-tailed weights (ips), the normal interval held better for
        # dr and snips; their union covers at least as often as either.
        boot_low, boot_high = bootstrap_of_sums(sums, counts, settings)
        low, high = min(low, boot_low), max(high, boot_high)
        method = WIDER_OF_BOTH
    return in_reward_range(Estimate(name, value, low, high, ess, int(rows), method), settings)


def in_reward_range(estimate: Estimate, settings: IntervalSettings) -> Estimate:
    """The estimate with its value and interval clipped to the observed reward range.

    A value per position cannot lie outside that range, but an importance-weighted estimate
    can (a few slates with huge weights): the value is then clipped too, and the estimator's
    own value kept as `unclipped` so that reports can say so. Clipping is monotone, so a
    value inside its interval stays inside the clipped interval."""
    low, high = settings.reward_low, settings.reward_high
    value = estimate.value
    outside = value < low or value > high  # False for NaN: an undefined value stays NaN
    return replace(
        estimate,
        value=float(np.clip(value, low, high)),
        ci_low=float(np.clip(estimate.ci_low, low, high)),
        ci_high=float(np.clip(estimate.ci_high, low, high)),
        unclipped=value if outside else None,
    )


def ess_warning(name: str, ess: float) -> str | None:
    """A warning when too few logged slates carry the target's weight (`ess` in slates)."""
    if ess >= WARN_ESS:
        return None
    return (
        f"{name}: effective sample size {ess:.1f} slates is below {WARN_ESS:.0f}; the target is "
        "far from the logging policy and this interval may not cover its value"
    )
