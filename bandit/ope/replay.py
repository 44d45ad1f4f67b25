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
from bandit.ope.estimators import (
    DM,
    DR,
    IPS,
    SNIPS,
    Estimate,
    ReplayArrays,
    cluster_count,
    effective_sample_size,
)
from bandit.ope.intervals import IntervalSettings, ess_warning, mean_estimate
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
    if slate_length(log) == 1:
        return ("ips", "snips", "dm", "dr") if modelled else ("ips", "snips")
    names = ["sips", "rips", "cascade-dr"] if modelled else ["sips", "rips"]
    if log.marginal_propensity is not None and target is not None and target.marginal is not None:
        names.append("iips")
    return tuple(names)


def parse_estimators(
    text: str, log: ReplayLog | None = None, estimand: str = SLATE
) -> tuple[str, ...]:
    """`sips,rips,cascade-dr` as a tuple of names valid for the estimand, in the given order."""
    names = tuple(n.strip().lower() for n in text.split(",") if n.strip())
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


def _slate_estimate(
    name: str,
    arrays: slate.SlateArrays,
    options: ReplayOptions,
    intervals: IntervalSettings,
    position_weights: bool,
    slate_weights: slate.SlateWeights,
    groups: int,
) -> tuple[Estimate, np.ndarray]:
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
        terms, ess_weight = slate.sips_terms(arrays, weights), weights.slate
    elif name == "rips":
        terms, ess_weight = slate.rips_terms(arrays, weights), weights.prefix
    elif name == "cascade-dr":
        terms, ess_weight = slate.cascade_dr_terms(arrays, weights), weights.prefix
    elif name == "switch-dr":
        terms = slate.switch_dr_terms(arrays, weights, options.switch_threshold)
        ess_weight = np.where(weights.prefix <= options.switch_threshold, weights.prefix, 0.0)
    else:
        terms = slate.iips_terms(arrays, options.max_weight)
        assert arrays.marginal_target is not None and arrays.marginal_propensity is not None
        ess_weight = arrays.marginal_target / arrays.marginal_propensity
    ess = effective_sample_size(ess_weight, arrays.event)
    return mean_estimate(name, terms, arrays.event, ess, intervals, groups), terms


def _pi_estimate(
    log: ReplayLog,
    target: TargetDistribution,
    options: ReplayOptions,
    intervals: IntervalSettings,
    groups: int,
) -> tuple[Estimate, np.ndarray]:
    """The pseudo-inverse estimate, only where the logging policy's Gamma is known."""
    if options.logging != UNIFORM:
        raise ValueError(
            "estimators: pi needs the logging policy's slot-pair probabilities (Gamma), which "
            "a sequential log does not hold; if its slates were drawn uniformly at random "
            "without replacement, declare --logging uniform (checked against the propensities)"
        )
    weight = uniform_pi_weights(log, target, options.max_weight)
    terms = weight * log.reward
    ess = effective_sample_size(weight, log.event)
    return mean_estimate("pi", terms, log.event, ess, intervals, groups), terms


def _position_terms(name: str, arrays: ReplayArrays, max_weight: float | None) -> np.ndarray:
    """The per-row terms whose mean is the position estimator (SNIPS: its share of the ratio)."""
    weight = arrays.weight if max_weight is None else np.minimum(arrays.weight, max_weight)
    if name == "dm":
        assert arrays.q_target is not None
        return arrays.q_target
    if name == "dr":
        assert arrays.q_target is not None and arrays.q_logged is not None
        return arrays.q_target + weight * (arrays.reward - arrays.q_logged)
    terms = weight * arrays.reward
    if name == "snips" and weight.sum() > 0:
        terms = terms * (weight.size / weight.sum())
    return terms


def _position_estimate(
    name: str, arrays: ReplayArrays, options: ReplayOptions, intervals: IntervalSettings
) -> Estimate:
    settings: dict[str, Any] = {"level": options.level}
    if name != "dm":
        settings["max_weight"] = options.max_weight
    estimator = {"ips": IPS, "snips": SNIPS, "dm": DM, "dr": DR}[name](**settings)
    raw = estimator.estimate(arrays)
    low = float(np.clip(raw.ci_low, intervals.reward_low, intervals.reward_high))
    high = float(np.clip(raw.ci_high, intervals.reward_low, intervals.reward_high))
    return Estimate(raw.estimator, raw.value, low, high, raw.ess, raw.rows, raw.method)


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
    intervals = IntervalSettings(
        level=options.level,
        reward_low=float(log.reward.min()),
        reward_high=float(log.reward.max()),
        seed=options.seed,
    )
    per_position = options.estimand == POSITION or length == 1
    # Computed once: every slate estimator and the diagnostics read the same weights.
    weights = slate.slate_weights(arrays, options.max_weight)
    events = cluster_count(log.event)
    estimates: dict[str, Estimate] = {}
    terms: dict[str, np.ndarray] = {}
    for name in names:
        if name in ("ips", "snips", "dm", "dr"):
            estimates[name] = _position_estimate(name, position, options, intervals)
        elif name == "pi":
            estimates[name], terms[name] = _pi_estimate(log, target, options, intervals, events)
        else:
            estimates[name], terms[name] = _slate_estimate(
                name, arrays, options, intervals, per_position, weights, events
            )
    warnings = tuple(
        w for w in (ess_warning(n, e.ess) for n, e in estimates.items() if n != "dm") if w
    )
    preferred = "dr" if options.estimand == POSITION else default_estimator(log)
    fallback = "rips" if "rips" in estimates else names[0]  # without a reward model
    headline = preferred if preferred in estimates else fallback
    estimand = POSITION if options.estimand == POSITION and length > 1 else SLATE
    headline_terms = (
        terms[headline]
        if headline in terms
        else _position_terms(headline, position, options.max_weight)
    )
    checks = diagnostics(arrays, weights, _segments(log, segment_column))
    if not checks["mean_weight"]["consistent_with_1"]:
        warnings += (
            f"mean slate weight {checks['mean_weight']['mean']:.3f} is not about 1: check the "
            "propensities, or the target picks items the logging policy never could",
        )
    return ReplayReport(
        log.rows,
        target.name,
        estimates,
        estimand,
        headline,
        length,
        warnings,
        checks,
        per_source(log, headline_terms),
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
