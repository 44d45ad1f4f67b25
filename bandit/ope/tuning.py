"""Counterfactual tuning of exploration settings and review thresholds on one log.

Each grid point is a policy config. Its reward is estimated by replaying a VW policy with the
point's exploration settings over the log (the policy-config target); points that differ only
in routing share that estimate. Its curator workload is computed from the logged confidence:
the routing rule applied to each event's logged uncertainty gives the share of events a
curator would see, the share held for review before output, and, among the events the point
would let out unreviewed, how often curators rejected the policy's items when they did review
them. The confidence is the logging model's, so workload for a very different model is an
approximation (see docs/replay.md).
"""

from __future__ import annotations

import itertools
import math
import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from bandit.engine.config import ConfigError, PolicyConfig, config_from_mapping
from bandit.engine.vocabulary import CuratorVerdict, RoutingMode
from bandit.ope.estimators import Estimate
from bandit.ope.log_format import ReplayLog
from bandit.ope.policy_target import progressive_policy_target
from bandit.ope.replay import evaluate
from bandit.ope.reward_model import RewardModelSettings

ROUTING_FIELDS = frozenset(
    {"routing_mode", "uncertainty_measure", "auto_threshold", "review_threshold"}
)
TUNING_ESTIMATORS = ("ips", "snips", "dr")
REJECTED = (CuratorVerdict.REMOVED, CuratorVerdict.SWAPPED)


class GridError(ValueError):
    """The grid file is malformed; the message names the table and field."""


@dataclass(frozen=True)
class Objective:
    """How a recommendation is chosen: an estimator and optional workload limits."""

    estimator: str = "dr"
    max_review_share: float = 1.0
    max_unreviewed_rejection: float = 1.0


@dataclass(frozen=True)
class Grid:
    """The configs to try and the objective."""

    points: tuple[PolicyConfig, ...]
    objective: Objective


@dataclass(frozen=True)
class Workload:
    """Curator workload of one routing setting on the log's events."""

    review_share: float
    blocking_share: float
    unreviewed_rejection: float  # NaN when no such event was ever reviewed


@dataclass(frozen=True)
class TunedPoint:
    """One grid point's estimated reward and workload."""

    config: PolicyConfig
    estimate: Estimate
    workload: Workload
    feasible: bool

    def as_json(self) -> dict[str, Any]:
        """The point as written to tune.json."""
        return {
            "config": self.config.to_document(),
            "estimate": {"estimator": self.estimate.estimator, **self.estimate.as_dict()},
            "workload": {
                "review_share": self.workload.review_share,
                "blocking_share": self.workload.blocking_share,
                "unreviewed_rejection": _or_none(self.workload.unreviewed_rejection),
            },
            "feasible": self.feasible,
        }


def _or_none(value: float) -> float | None:
    return None if math.isnan(value) else value


def load_grid(path: Path) -> Grid:
    """Read a grid TOML: [base] fields, [grid] lists to combine, optional [objective]."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise GridError(f"grid: cannot read {path}: {error}") from error
    unknown = sorted(set(document) - {"base", "grid", "objective"})
    if unknown:
        raise GridError(f"grid: unknown table [{unknown[0]}]")
    base = document.get("base", {})
    axes = document.get("grid", {})
    if not axes:
        raise GridError("grid: the [grid] table must list at least one field to vary")
    known = {f.name for f in fields(PolicyConfig)}
    for name, values in axes.items():
        if name not in known:
            raise GridError(f"grid.{name}: not a policy config field")
        if not isinstance(values, list) or not values:
            raise GridError(f"grid.{name}: must be a non-empty list of values")
    points = []
    for combination in itertools.product(*axes.values()):
        settings = {**base, **dict(zip(axes, combination, strict=True))}
        try:
            points.append(config_from_mapping(settings))
        except (ConfigError, TypeError) as error:
            raise GridError(f"grid point {settings}: {error}") from error
    try:
        objective = Objective(**document.get("objective", {}))
    except TypeError as error:
        raise GridError(f"objective: {error}") from error
    if objective.estimator not in TUNING_ESTIMATORS:
        raise GridError(f"objective.estimator: must be one of {', '.join(TUNING_ESTIMATORS)}")
    return Grid(tuple(points), objective)


def event_workload(log: ReplayLog, config: PolicyConfig) -> Workload:
    """The workload `config`'s routing would put on curators for the log's events."""
    measured = log.column(f"uncertainty_{config.uncertainty_measure}")
    logged_confidence = log.column("confidence")
    if measured is not None:
        confidence = 1.0 - measured.astype(float)
    elif logged_confidence is not None:
        # Only the logging config's own confidence is known: use it for every measure.
        confidence = logged_confidence.astype(float)
    else:
        raise GridError("log: column confidence is needed to estimate curator workload")
    first = np.unique(log.event, return_index=True)[1]  # a decision's route is per event
    event_confidence = confidence[first]
    if config.routing_mode == RoutingMode.REVIEW_BEFORE:
        reviewed = blocking = np.ones(first.size, dtype=bool)
    elif config.routing_mode == RoutingMode.REVIEW_AFTER:
        reviewed, blocking = np.ones(first.size, dtype=bool), np.zeros(first.size, dtype=bool)
    else:
        reviewed = event_confidence < config.auto_threshold
        blocking = event_confidence < config.review_threshold
    verdicts = log.column("curator_verdict")
    rejection = float("nan")
    if verdicts is not None:
        unreviewed_row = ~reviewed[np.searchsorted(log.event[first], log.event)]
        has_verdict = np.array([v is not None and v == v for v in verdicts], dtype=bool)
        seen = unreviewed_row & has_verdict
        if seen.any():
            rejection = float(np.isin(verdicts[seen].astype(str), REJECTED).mean())
    return Workload(float(reviewed.mean()), float(blocking.mean()), rejection)


def _exploration_key(config: PolicyConfig) -> tuple[Any, ...]:
    return tuple(
        (f.name, getattr(config, f.name))
        for f in fields(PolicyConfig)
        if f.name not in ROUTING_FIELDS and f.name != "name"
    )


def tune(
    log: ReplayLog, grid: Grid, settings: RewardModelSettings | None = None
) -> tuple[list[TunedPoint], TunedPoint | None]:
    """Every grid point ranked by estimated reward, and the recommended one (None if none fits)."""
    estimator = grid.objective.estimator
    estimates: dict[tuple[Any, ...], Estimate] = {}
    points = []
    for config in grid.points:
        key = _exploration_key(config)
        if key not in estimates:
            target = progressive_policy_target(log, config)
            report = evaluate(log, target, (estimator,), settings)
            estimates[key] = report.estimates[estimator]
        workload = event_workload(log, config)
        rejection = workload.unreviewed_rejection
        feasible = workload.review_share <= grid.objective.max_review_share and (
            math.isnan(rejection) or rejection <= grid.objective.max_unreviewed_rejection
        )
        points.append(TunedPoint(config, estimates[key], workload, feasible))
    ranked = sorted(points, key=lambda p: (-_sortable(p.estimate.value), p.workload.review_share))
    allowed = [p for p in ranked if p.feasible]
    return ranked, (allowed[0] if allowed else None)


def _sortable(value: float) -> float:
    return -math.inf if math.isnan(value) else value


def named(point: TunedPoint, name: str) -> PolicyConfig:
    """The point's config under a new name, ready to store as a version."""
    return replace(point.config, name=name)


# Grid points with the same key share one policy replay (the Dask path groups tasks by it).
exploration_key = _exploration_key
