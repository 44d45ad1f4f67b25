"""The risk-controlled auto threshold: automate only what a finite-sample bound allows.

Evidence is reviewed slates (audits and ordinary reviews) with the approval model's slate
score s_i, whether a curator changed the slate (y_i in {0, 1}) and the inverse of the logged
probability that the slate was reviewed (w_i = 1 / audit probability for an audit, 1 for a
slate that routing sent to review anyway).

For a threshold t the override rate of slates that would be auto-delivered is estimated by
the weighted (Horvitz-Thompson / Hajek) mean over evidence with s_i >= t. Its upper bound is
the one-sided Clopper-Pearson bound at level 1 - delta (delta = 1 - confidence_level) on the
Kish effective sample n_eff = (sum w)^2 / sum w^2 with k_eff = rate * n_eff overrides:

    UCB(t) = BetaInv(1 - delta; k_eff + 1, n_eff - k_eff)

(exact for equal weights; an approximation for mixed weights). Thresholds are tested in a
fixed sequence from the top of a fixed grid down (Learn then Test, Angelopoulos et al. 2021):
each test at level delta, stopping at the first t whose bound exceeds the target, which
controls the probability of choosing any threshold with true rate above the target at delta
without a multiplicity correction. The sequence starts at the highest grid point above which
lie at least n_min evidence slates and an estimated 5 n_min slates of the stream (the sum of
their weights, capped at half the whole evidence's), where n_min = ceil(log delta /
log(1 - target)) is the smallest sample that could ever pass (45 clean slates at 5% and 90%).
A first test on only n_min slates passes only if every one of them is clean, so a top whose
true rate is 2-3% fails it most of the time and ends the sequence before any lower threshold
is tried (tests/engine/test_risk_control.py measures what the larger start gains).
The start depends on the scores and weights alone, never on the
verdicts, so each test keeps its level. With too little evidence the first tested threshold
fails (or none is testable) and nothing is automated.

The bound pools the window as one population. When curators drift (grow stricter), the
window's older reviews make the rate look lower than what the current curators would change,
and the promise is then missed more often than 1 - confidence against the current rate
(docs/trust.md gives the figures). The optional drift guard (`guarded_choice`) also runs the
sequence on the newer half of the window alone and keeps the higher of the two thresholds:
both must allow it. It only ever automates less, so the level under a stationary window is
kept; the price is automation where evidence is thin.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

# A fixed grid, so the sequence of hypotheses does not depend on the data.
THRESHOLD_GRID = tuple(round(1.0 - i / 100, 2) for i in range(100))
# The first test covers this many times the smallest sample that could pass (see above).
START_EVIDENCE_FACTOR = 5
# What the chosen threshold's bound was computed over.
WHOLE_WINDOW = "window"
NEWER_HALF = "newer half"


@dataclass(frozen=True)
class ThresholdTest:
    """One step of the fixed sequence."""

    threshold: float
    n: int
    n_effective: float
    overrides: int
    rate: float
    bound: float
    passed: bool


@dataclass(frozen=True)
class ThresholdChoice:
    """The lowest threshold the evidence allows (None: automate nothing) and why."""

    threshold: float | None
    target: float
    confidence_level: float
    evidence: int
    tests: tuple[ThresholdTest, ...]
    # WHOLE_WINDOW, or NEWER_HALF when the drift guard's run on the newer half decided.
    evidence_scope: str = WHOLE_WINDOW

    @property
    def chosen(self) -> ThresholdTest | None:
        """The test of the chosen threshold, or the failed first one."""
        passed = [t for t in self.tests if t.passed]
        return passed[-1] if passed else (self.tests[0] if self.tests else None)

    def to_document(self) -> dict[str, Any]:
        """JSON-able summary (the chosen step and the first failing one)."""
        chosen = self.chosen
        failed = next((t for t in self.tests if not t.passed), None)
        return {
            "threshold": self.threshold,
            "target": self.target,
            "confidence_level": self.confidence_level,
            "evidence": self.evidence,
            "evidence_scope": self.evidence_scope,
            "chosen": None if chosen is None else chosen.__dict__,
            "first_failure": None if failed is None else failed.__dict__,
        }


def minimum_evidence(max_override_rate: float, confidence_level: float) -> int:
    """The fewest slates, all unchanged, whose bound can reach the target."""
    return int(np.ceil(np.log(1 - confidence_level) / np.log(1 - max_override_rate)))


def start_weight(
    max_override_rate: float, confidence_level: float, weights: np.ndarray, factor: float
) -> float:
    """The estimated number of stream slates above the first threshold the sequence tests."""
    smallest = minimum_evidence(max_override_rate, confidence_level)
    return min(factor * smallest, float(weights.sum()) / 2)


def upper_bound(overrides: float, n: float, confidence_level: float) -> float:
    """One-sided Clopper-Pearson upper bound on a rate (fractional counts allowed)."""
    if n <= 0:
        return 1.0
    if overrides >= n:
        return 1.0
    return float(stats.beta.ppf(confidence_level, overrides + 1.0, n - overrides))


@dataclass(frozen=True)
class RateInterval:
    """A weighted rate with its two-sided interval (see `rate_interval`)."""

    n: int
    overrides: int
    rate: float | None
    low: float
    high: float
    strata: int  # distinct inclusion probabilities in the sample


def lower_bound(overrides: float, n: float, confidence_level: float) -> float:
    """One-sided Clopper-Pearson lower bound on a rate (fractional counts allowed)."""
    if n <= 0 or overrides <= 0:
        return 0.0
    return float(stats.beta.ppf(1.0 - confidence_level, overrides, n - overrides + 1.0))


def rate_interval(
    overridden: ArrayLike, probabilities: ArrayLike, confidence_level: float
) -> RateInterval:
    """The override rate of the slates a sample was drawn from, each sampled slate drawn with
    its logged `probabilities`, and a two-sided interval at `confidence_level`.

    The rate is the Hajek mean (weights 1 / probability). The slates drawn with one
    probability form a stratum, standing for an estimated n_h / p_h slates; the interval is
    the strata's exact Clopper-Pearson intervals, each at level 1 - (1 - confidence) / H for H
    strata (Bonferroni), combined with those shares. With one probability it is the exact
    binomial interval. Pooling the strata into one effective sample (Kish's, or Korn and
    Graubard's) is narrower but missed above the truth 9% of the time at 90% where a noisy week
    was audited least (docs/trust.md); the strata's bounds hold wherever they are tested.
    """
    y = np.asarray(overridden, dtype=float)
    p = np.asarray(probabilities, dtype=float)
    if y.size == 0:
        return RateInterval(0, 0, None, 0.0, 1.0, 0)
    shares = np.unique(p)
    stream = np.array([(p == share).sum() / share for share in shares])
    stream_shares = stream / stream.sum()
    tail = 1.0 - (1.0 - confidence_level) / (2 * shares.size)
    rate = low = high = 0.0
    for weight, share in zip(stream_shares, shares, strict=True):
        stratum = y[p == share]
        k, n = float(stratum.sum()), float(stratum.size)
        rate += weight * k / n
        low += weight * lower_bound(k, n, tail)
        high += weight * upper_bound(k, n, tail)
    return RateInterval(
        int(y.size), int(y.sum()), float(rate), float(low), float(min(high, 1.0)), int(shares.size)
    )


def choose_threshold(
    scores: ArrayLike,
    overridden: ArrayLike,
    weights: ArrayLike,
    max_override_rate: float,
    confidence_level: float,
    grid: tuple[float, ...] = THRESHOLD_GRID,
    start_factor: float = START_EVIDENCE_FACTOR,
) -> ThresholdChoice:
    """Fixed-sequence test from the top of `grid` down (see the module docstring)."""
    s = np.asarray(scores, dtype=float)
    y = np.asarray(overridden, dtype=float)
    w = np.asarray(weights, dtype=float)
    tests = []
    chosen = None
    n_min = minimum_evidence(max_override_rate, confidence_level)
    start = start_weight(max_override_rate, confidence_level, w, start_factor)
    for threshold in grid:
        mask = s >= threshold
        n = int(mask.sum())
        wm = w[mask]
        if n < n_min or wm.sum() < start:
            continue
        rate = float((wm * y[mask]).sum() / wm.sum())
        n_eff = float(wm.sum() ** 2 / (wm**2).sum())
        bound = upper_bound(rate * n_eff, n_eff, confidence_level)
        passed = bound <= max_override_rate
        tests.append(ThresholdTest(threshold, n, n_eff, int(y[mask].sum()), rate, bound, passed))
        if not passed:
            break
        chosen = threshold
    return ThresholdChoice(chosen, max_override_rate, confidence_level, int(s.size), tuple(tests))


def guarded_choice(
    scores: ArrayLike,
    overridden: ArrayLike,
    weights: ArrayLike,
    max_override_rate: float,
    confidence_level: float,
) -> ThresholdChoice:
    """`choose_threshold` on the whole window and on its newer half (the arrays' first half:
    newest first), keeping the higher threshold; None when either allows none. The choice
    returned is the one that decided, so its tests are the bound that holds it back."""
    s = np.asarray(scores, dtype=float)
    y = np.asarray(overridden, dtype=float)
    w = np.asarray(weights, dtype=float)
    whole = choose_threshold(s, y, w, max_override_rate, confidence_level)
    if whole.threshold is None:
        return whole
    half = s.size // 2
    newer = replace(
        choose_threshold(s[:half], y[:half], w[:half], max_override_rate, confidence_level),
        evidence_scope=NEWER_HALF,
    )
    if newer.threshold is None or newer.threshold > whole.threshold:
        return newer
    return whole
