"""Evaluate a target on a log with chosen estimators: the one entry point for CLI and gates.

Two estimands (docs/replay.md):
- `slate` (the default): the reward per delivered position of the target's *own* slates.
  Estimators `sips`, `rips`, `cascade-dr`, `switch-dr`, `iips` (`bandit.ope.slate`) and, on a
  log declared uniformly logged, `pi` (`bandit.ope.pseudo_inverse`). On logs of one position
  per event every estimator of the `position` family estimates it too.
- `position`: each position scored as the target choosing among the candidates given the
  logged earlier picks (`ips`, `snips`, `dm`, `dr`, `switch-dr`); named explicitly only.

`default_estimator(log)` is the headline a gate compares: `dr` on one-position logs,
`cascade-dr` on slate logs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from bandit.ope import slate
from bandit.ope.diagnostics import diagnostics
from bandit.ope.estimators import Estimate, ReplayArrays, effective_sample_size
from bandit.ope.intervals import (
    IntervalSettings,
    ess_warning,
    event_sums,
    linearised_sums,
    sums_estimate,
)
from bandit.ope.log_format import CONTEXT_PREFIX, ReplayLog
from bandit.ope.pseudo_inverse import LOGGING_POLICIES, UNIFORM, uniform_pi_weights
from bandit.ope.reward_choice import per_source
from bandit.ope.reward_model import RewardModelSettings, fit_reward_model
from bandit.ope.targets import TargetDistribution

SLATE = "slate"
POSITION = "position"
ESTIMANDS = (SLATE, POSITION)
SLATE_ESTIMATORS = ("sips", "rips", "cascade-dr", "switch-dr", "iips", "pi")
POSITION_ESTIMATORS = ("ips", "snips", "dm", "dr", "switch-dr")
NEEDS_REWARD_MODEL = frozenset({"dm", "dr", "cascade-dr", "switch-dr"})
DEFAULT_SWITCH_THRESHOLD = 10.0


@dataclass(frozen=True)
class ReplayOptions:
    """Estimand, weight clipping, SWITCH-DR's threshold, the interval settings and the logging
    policy when the user declares it (`uniform`: what `pi` needs)."""

    estimand: str = SLATE
    max_weight: float | None = None
    switch_threshold: float = DEFAULT_SWITCH_THRESHOLD
    level: float = 0.95
    seed: int = 0
    logging: str | None = None

    def __post_init__(self) -> None:
        if self.estimand not in ESTIMANDS:
            raise ValueError(f"estimand: one of {', '.join(ESTIMANDS)}; got {self.estimand!r}")
        if self.logging is not None and self.logging not in LOGGING_POLICIES:
            raise ValueError(f"logging: one of {', '.join(LOGGING_POLICIES)}; got {self.logging!r}")
        if self.max_weight is not None and not self.max_weight > 0:
            raise ValueError(f"clip: the maximum weight must be positive; got {self.max_weight}")
        if not self.switch_threshold > 0:
            raise ValueError(f"switch threshold: must be positive; got {self.switch_threshold}")


@dataclass(frozen=True)
class ReplayReport:
    """Estimates of one target on one log, the estimand they estimate and any warnings."""

    rows: int
    target: str
    estimates: dict[str, Estimate] = field(default_factory=dict)
    estimand: str = SLATE
    headline: str = "dr"
    slate_length: int = 1
    warnings: tuple[str, ...] = ()
    diagnostics: dict[str, Any] | None = None
    per_source: dict[str, dict[str, float]] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """The document written to replay.json."""
        return {
            "rows": self.rows,
            "target": self.target,
            "estimand": self.estimand,
            "slate_length": self.slate_length,
            "headline": self.headline,
            "estimators": {
                name: {**e.as_dict(), "interval": e.method} for name, e in self.estimates.items()
            },
            "warnings": list(self.warnings),
            "per_source": self.per_source,
        }


def slate_length(log: ReplayLog) -> int:
    """The longest slate of the log (positions per event)."""
    return int(np.bincount(log.event).max())


def default_estimator(log: ReplayLog) -> str:
    """The headline estimator for this log: `dr` for one position, else `cascade-dr`."""
    return "dr" if slate_length(log) == 1 else "cascade-dr"


def default_estimators(log: ReplayLog, target: TargetDistribution | None = None) -> tuple[str, ...]:
    """What `hitl replay` reports when no estimator is named."""
    modelled = target is None or target.support is not None  # DM/DR need the whole target
    marginals = (
        log.marginal_propensity is not None and target is not None and target.marginal is not None
    )
    return defaults_for(slate_length(log), modelled, marginals)


def defaults_for(length: int, modelled: bool, marginals: bool) -> tuple[str, ...]:
    """The default estimators for a log of slates of up to `length` positions, a target with
    a full distribution (`modelled`) and marginal probabilities on both sides (`marginals`)."""
    if length == 1:
        return ("ips", "snips", "dm", "dr") if modelled else ("ips", "snips")
    names = ["sips", "rips", "cascade-dr"] if modelled else ["sips", "rips"]
    if marginals:
        names.append("iips")
    return tuple(names)


def parse_estimators(
    text: str,
    log: ReplayLog | None = None,
    estimand: str = SLATE,
    one_position: bool | None = None,
) -> tuple[str, ...]:
    """`sips,rips,cascade-dr` as a tuple of names valid for the estimand, in the given order;
    `one_position` (else read from `log`) allows the per-position names under `slate`."""
    names = tuple(n.strip().lower() for n in text.split(",") if n.strip())
    if one_position is None:
        one_position = log is not None and slate_length(log) == 1
    allowed = (
        POSITION_ESTIMATORS
        if estimand == POSITION
        else SLATE_ESTIMATORS + (POSITION_ESTIMATORS if one_position else ())
    )
    unknown = [n for n in names if n not in allowed]
    if unknown or not names:
        hint = ""
        if estimand == SLATE and any(n in POSITION_ESTIMATORS for n in unknown):
            hint = (
                "; ips, snips, dm and dr score each position given the logged earlier picks, "
                "not the target's own slates: ask for them with --estimand position"
            )
        raise ValueError(
            f"estimators: unknown {', '.join(unknown) or '(none given)'} for the {estimand} "
            "estimand; choose from "
            f"{', '.join(dict.fromkeys(allowed))}{hint}"
        )
    return names


def _reward_predictions(
    log: ReplayLog, target: TargetDistribution, settings: RewardModelSettings
) -> tuple[np.ndarray, np.ndarray]:
    support = target.require_support("DM and DR")
    vocabulary = max(target.vocabulary_size, len(log.actions))
    model = fit_reward_model(log, vocabulary, settings)
    q_logged = model.predict(np.arange(log.rows), log.action)
    weighted = model.predict(support.row, support.action)
    np.multiply(weighted, support.probability, out=weighted)
    q_target = np.bincount(support.row, weights=weighted, minlength=log.rows)
    return q_logged, q_target


def replay_arrays(
    log: ReplayLog,
    target: TargetDistribution,
    with_reward_model: bool,
    settings: RewardModelSettings,
) -> ReplayArrays:
    """The per-position arrays, with cross-fitted reward predictions when asked."""
    q_logged = q_target = None
    if with_reward_model:
        q_logged, q_target = _reward_predictions(log, target, settings)
    return ReplayArrays(
        reward=log.reward,
        propensity=log.propensity,
        target_probability=target.logged_probability,
        cluster=log.event,
        q_logged=q_logged,
        q_target=q_target,
    )


@dataclass(frozen=True)
class Terms:
    """One estimator's per-row terms: its value is sum(a) / sum(b) (b = 1 when None) and its
    ESS Kish's over the events' mean `ess_weight` (the event count when None, as for DM)."""

    a: np.ndarray
    b: np.ndarray | None = None
    ess_weight: np.ndarray | None = None


@dataclass(frozen=True)
class LogTerms:
    """Every named estimator's terms on one log (or one partition), and what the report's
    checks read."""

    terms: dict[str, Terms]
    arrays: slate.SlateArrays
    weights: slate.SlateWeights


def _slate_terms(
    name: str,
    arrays: slate.SlateArrays,
    options: ReplayOptions,
    position_weights: bool,
    slate_weights: slate.SlateWeights,
) -> Terms:
    if position_weights:  # each position its own round: the weight is its own ratio
        ratio = (
            arrays.ratio
            if options.max_weight is None
            else np.minimum(arrays.ratio, options.max_weight)
        )
        weights = slate.SlateWeights(ratio, np.ones_like(ratio), ratio)
    else:
        weights = slate_weights
    # Every ESS is in slates: Kish's over each event's mean weight (docs/replay.md).
    if name == "sips":
        return Terms(slate.sips_terms(arrays, weights), None, weights.slate)
    if name == "rips":
        return Terms(slate.rips_terms(arrays, weights), None, weights.prefix)
    if name == "cascade-dr":
        return Terms(slate.cascade_dr_terms(arrays, weights), None, weights.prefix)
    if name == "switch-dr":
        terms = slate.switch_dr_terms(arrays, weights, options.switch_threshold)
        trusted = weights.prefix <= options.switch_threshold
        return Terms(terms, None, np.where(trusted, weights.prefix, 0.0))
    terms = slate.iips_terms(arrays, options.max_weight)
    assert arrays.marginal_target is not None and arrays.marginal_propensity is not None
    return Terms(terms, None, arrays.marginal_target / arrays.marginal_propensity)


def _pi_terms(log: ReplayLog, target: TargetDistribution, options: ReplayOptions) -> Terms:
    """The pseudo-inverse's terms, only where the logging policy's Gamma is known."""
    if options.logging != UNIFORM:
        raise ValueError(
            "estimators: pi needs the logging policy's slot-pair probabilities (Gamma), which "
            "a sequential log does not hold; if its slates were drawn uniformly at random "
            "without replacement, declare --logging uniform (checked against the propensities)"
        )
    weight = uniform_pi_weights(log, target, options.max_weight)
    return Terms(weight * log.reward, None, weight)


def _position_terms(name: str, arrays: ReplayArrays, max_weight: float | None) -> Terms:
    """ips (w r), snips (w r over w), dm (qbar) and dr (qbar + w (r - q)) per position."""
    weight = arrays.weight if max_weight is None else np.minimum(arrays.weight, max_weight)
    if name == "dm":
        assert arrays.q_target is not None
        return Terms(arrays.q_target)
    if name == "dr":
        assert arrays.q_target is not None and arrays.q_logged is not None
        return Terms(arrays.q_target + weight * (arrays.reward - arrays.q_logged), None, weight)
    return Terms(weight * arrays.reward, weight if name == "snips" else None, weight)


def estimator_terms(
    log: ReplayLog,
    target: TargetDistribution,
    names: Sequence[str],
    settings: RewardModelSettings,
    options: ReplayOptions,
) -> LogTerms:
    """Each named estimator's per-row terms on the log (no validation of the names)."""
    needs_model = any(name in NEEDS_REWARD_MODEL for name in names)
    position = replay_arrays(log, target, needs_model, settings)
    arrays = slate.SlateArrays(
        event=log.event,
        position=log.position,
        reward=log.reward,
        propensity=log.propensity,
        target_probability=target.logged_probability,
        marginal_propensity=log.marginal_propensity,
        marginal_target=target.marginal,
        q_logged=position.q_logged,
        q_target=position.q_target,
    )
    per_position = options.estimand == POSITION or slate_length(log) == 1
    # Computed once: every slate estimator and the diagnostics read the same weights.
    weights = slate.slate_weights(arrays, options.max_weight)
    terms: dict[str, Terms] = {}
    for name in names:
        if name in ("ips", "snips", "dm", "dr"):
            terms[name] = _position_terms(name, position, options.max_weight)
        elif name == "pi":
            terms[name] = _pi_terms(log, target, options)
        else:
            terms[name] = _slate_terms(name, arrays, options, per_position, weights)
    return LogTerms(terms, arrays, weights)


def events_estimate(
    name: str,
    a: np.ndarray,
    b: np.ndarray | None,
    counts: np.ndarray,
    ess: float,
    intervals: IntervalSettings,
) -> Estimate:
    """The estimate sum a / sum b from its events' sums of a and b (b = rows when None) and
    row counts, with the interval `bandit.ope.intervals` picks for its ESS (SNIPS: of its
    linearised terms)."""
    if b is None:
        return sums_estimate(name, float(a.sum() / counts.sum()), a, counts, ess, intervals)
    if b.sum() == 0.0:
        # The target never picks a logged action: the data say nothing about it.
        nan = float("nan")
        return Estimate(name, nan, nan, nan, 0.0, int(counts.sum()))
    value, linearised = linearised_sums(a, b, counts)
    return sums_estimate(name, value, linearised, counts, ess, intervals)


def terms_estimate(
    name: str, terms: Terms, event: np.ndarray, intervals: IntervalSettings
) -> Estimate:
    """The estimate of one estimator's per-row terms, clustered by event."""
    a, counts = event_sums(terms.a, event)
    b = None if terms.b is None else event_sums(terms.b, event)[0]
    ess = (
        float(counts.size)
        if terms.ess_weight is None
        else effective_sample_size(terms.ess_weight, event)
    )
    return events_estimate(name, a, b, counts, ess, intervals)


def headline_of(names: Sequence[str], estimand: str, length: int) -> str:
    """The estimator a report leads with: the estimand's default if it was computed, else
    `rips` (no reward model), else the first named."""
    preferred = "dr" if estimand == POSITION or length == 1 else "cascade-dr"
    if preferred in names:
        return preferred
    return "rips" if "rips" in names else names[0]


def estimand_of(options: ReplayOptions, length: int) -> str:
    """The estimand a report states: `position` when asked on a slate log, else `slate`."""
    return POSITION if options.estimand == POSITION and length > 1 else SLATE


def report_warnings(estimates: dict[str, Estimate], mean_weight: dict[str, Any]) -> tuple[str, ...]:
    """ESS warnings (every estimator but dm), clipped values and the mean-weight check's."""
    warnings = tuple(
        w for w in (ess_warning(n, e.ess) for n, e in estimates.items() if n != "dm") if w
    )
    warnings += tuple(
        f"{name}: its estimate {e.unclipped:.4f} lies outside the log's reward range and is "
        f"reported clipped to {e.value:.4f}: a few heavily weighted slates carry it, so it says "
        "little about the target"
        for name, e in estimates.items()
        if e.unclipped is not None
    )
    if not mean_weight["consistent_with_1"]:
        warnings += (
            f"mean slate weight {mean_weight['mean']:.3f} is not about 1: check the "
            "propensities, or the target picks items the logging policy never could",
        )
    return warnings


def interval_settings(options: ReplayOptions, reward: np.ndarray) -> IntervalSettings:
    """The intervals' level, seed and the observed reward range they are kept inside."""
    return IntervalSettings(
        level=options.level,
        reward_low=float(reward.min()),
        reward_high=float(reward.max()),
        seed=options.seed,
    )


def headline_share(terms: Terms) -> np.ndarray:
    """Per-row shares of the value (they sum to value x rows): a, scaled by rows / sum b."""
    if terms.b is None or terms.b.sum() == 0.0:
        return terms.a
    return terms.a * (terms.b.size / terms.b.sum())


def evaluate(
    log: ReplayLog,
    target: TargetDistribution,
    estimators: Sequence[str] | None = None,
    settings: RewardModelSettings | None = None,
    level: float = 0.95,
    options: ReplayOptions | None = None,
    segment_column: str | None = None,
) -> ReplayReport:
    """Estimate the target's value with each named estimator (default: the log's defaults)."""
    settings = settings or RewardModelSettings()
    options = options or ReplayOptions(level=level)
    length = slate_length(log)
    names = tuple(estimators) if estimators else default_estimators(log, target)
    # Validates the names against the estimand.
    parse_estimators(",".join(names), log, options.estimand)
    computed = estimator_terms(log, target, names, settings, options)
    intervals = interval_settings(options, log.reward)
    estimates = {
        name: terms_estimate(name, computed.terms[name], log.event, intervals) for name in names
    }
    headline = headline_of(names, options.estimand, length)
    checks = diagnostics(computed.arrays, computed.weights, _segments(log, segment_column))
    return ReplayReport(
        log.rows,
        target.name,
        estimates,
        estimand_of(options, length),
        headline,
        length,
        report_warnings(estimates, checks["mean_weight"]),
        checks,
        per_source(log, headline_share(computed.terms[headline])),
    )


def _segments(log: ReplayLog, column: str | None) -> tuple[str, np.ndarray, list[str]] | None:
    """(column, code per row, names) of the context column to break the value down by."""
    names = [n for n in log.rounds.column_names if n.startswith(CONTEXT_PREFIX)]
    if column is None:
        column = next((n for n in names if n == f"{CONTEXT_PREFIX}segment"), None)
        if column is None:
            return None
    elif column not in log.rounds.column_names:
        column = f"{CONTEXT_PREFIX}{column}"
        if column not in log.rounds.column_names:
            raise ValueError(f"segment: the log has no column {column}")
    values = log.rounds.column(column).cast(pa.string()).fill_null("(empty)")
    encoded = pc.dictionary_encode(values).combine_chunks()
    codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    return column, codes, [str(v) for v in encoded.dictionary.to_pylist()]
