"""Counterfactual tuning of exploration settings and review thresholds on one log.

Each grid point is a policy config. Its reward is estimated by replaying a VW policy with the
point's exploration settings over the log the way VW's `--explore_eval` does (it learns only
from the rows its own draw agrees with, so each exploration setting learns from the data it
would have collected, not from every logged row); points that differ only in routing share
that estimate. Points are ranked by the lower bound of the estimate's interval, and the
ranking says which points cannot be told apart from the best (their intervals reach its
lower bound). Its curator workload is computed from the logged confidence:
the routing rule applied to each event's logged uncertainty gives the share of events a
curator would see, the share held for review before output, and, among the events the point
would let out unreviewed, how often curators rejected the policy's items when they did review
them (review_before and apprentice send every event to a curator before output, review_after
every event after it). The confidence is the logging model's, so workload for a very different
model is an approximation (see docs/replay.md). Risk-controlled routing is refused: its auto
threshold is no setting to replay but chosen by each learn pass from verdicts still to come.
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
from bandit.ope.policy_target import explore_eval_target
from bandit.ope.replay import (
    POSITION,
    ReplayOptions,
    default_estimator,
    evaluate,
)
from bandit.ope.reward_model import RewardModelSettings

ROUTING_FIELDS = frozenset(
    {"routing_mode", "uncertainty_measure", "auto_threshold", "review_threshold"}
)
PER_POSITION_ONLY = ("ips", "snips", "dm", "dr")
TUNING_ESTIMATORS = ("auto", "ips", "snips", "dr", "sips", "rips", "cascade-dr", "switch-dr")
REJECTED = (CuratorVerdict.REMOVED, CuratorVerdict.SWAPPED)
NOT_REPLAYABLE = (
    "routing_mode: risk_controlled workload cannot be replayed from a config: its auto "
    "threshold is not a setting but is chosen by each learn pass from audited verdicts that "
    "come later, so any share reviewed would be made up; tune the exploration under another "
    "routing_mode (the reward estimate does not depend on routing), and measure risk-controlled "
    "routing with hitl simulate's [trust] study"
)


class GridError(ValueError):
    """The grid file is malformed; the message names the table and field."""


@dataclass(frozen=True)
class Objective:
    """How a recommendation is chosen: an estimator and optional workload limits."""

    estimator: str = "auto"  # the log's default: cascade-dr on slates, dr on one position
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
    indistinguishable: bool = False  # its interval reaches the recommended point's lower bound

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
            "indistinguishable_from_recommended": self.indistinguishable,
        }


def _or_none(value: float) -> float | None:
    return None if math.isnan(value) else value


def load_grid(path: Path) -> Grid:
    """Read a grid TOML: [base] fields, [grid] lists to combine, optional [objective]."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise GridError(f"grid: cannot read {path}: {error}") from error
    try:
        return _grid_from(document)
    except GridError as error:
        raise GridError(f"{path}: {error}") from error


def _grid_from(document: dict[str, Any]) -> Grid:
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
    for number, combination in enumerate(itertools.product(*axes.values()), start=1):
        settings = {**base, **dict(zip(axes, combination, strict=True))}
        try:
            points.append(config_from_mapping(settings))
        except (ConfigError, TypeError) as error:
            raise GridError(f"grid point {settings}: {error}") from error
        if points[-1].routing_mode == RoutingMode.RISK_CONTROLLED:
            raise GridError(f"grid point {number} {settings}: {NOT_REPLAYABLE}")
    try:
        objective = Objective(**document.get("objective", {}))
    except TypeError as error:
        raise GridError(f"objective: {error}") from error
    if objective.estimator not in TUNING_ESTIMATORS:
        raise GridError(f"objective.estimator: must be one of {', '.join(TUNING_ESTIMATORS)}")
    return Grid(tuple(points), objective)


def event_workload(log: ReplayLog, config: PolicyConfig) -> Workload:
    """The workload `config`'s routing would put on curators for the log's events (the rule of
    `bandit.engine.routing.route_for`)."""
    if config.routing_mode == RoutingMode.RISK_CONTROLLED:
        raise GridError(NOT_REPLAYABLE)
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
    if config.routing_mode in (RoutingMode.REVIEW_BEFORE, RoutingMode.APPRENTICE):
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
    log: ReplayLog, grid: Grid, settings: RewardModelSettings | None = None, seed: int = 0
) -> tuple[list[TunedPoint], TunedPoint | None]:
    """Every grid point ranked by its estimate's lower bound, and the recommended one (None if
    none fits); points whose interval reaches the recommended one's lower bound are marked
    indistinguishable from it."""
    estimator = grid.objective.estimator
    if estimator == "auto":
        estimator = default_estimator(log)
    # ips, snips and dr are per-position estimators: asked for by name, they get that estimand.
    options = ReplayOptions(estimand=POSITION) if estimator in PER_POSITION_ONLY else None
    estimates: dict[tuple[Any, ...], Estimate] = {}
    points = []
    for config in grid.points:
        key = _exploration_key(config)
        if key not in estimates:
            target = explore_eval_target(log, config, seed)
            report = evaluate(log, target, (estimator,), settings, options=options)
            estimates[key] = report.estimates[estimator]
        workload = event_workload(log, config)
        rejection = workload.unreviewed_rejection
        feasible = workload.review_share <= grid.objective.max_review_share and (
            math.isnan(rejection) or rejection <= grid.objective.max_unreviewed_rejection
        )
        points.append(TunedPoint(config, estimates[key], workload, feasible))
    ranked = sorted(
        points,
        key=lambda p: (
            -_sortable(p.estimate.ci_low),
            -_sortable(p.estimate.value),
            p.workload.review_share,
        ),
    )
    allowed = [p for p in ranked if p.feasible]
    best = allowed[0] if allowed else None
    if best is not None:
        bar, key = best.estimate.ci_low, _exploration_key(best.config)
        # Points sharing the best's exploration share its estimate: they differ in workload.
        ranked = [
            replace(
                p,
                indistinguishable=_exploration_key(p.config) != key and p.estimate.ci_high >= bar,
            )
            for p in ranked
        ]
        best = next(p for p in ranked if p.config is best.config and p.feasible)
    return ranked, best


def indistinguishable_message(ranked: list[TunedPoint], best: TunedPoint | None) -> str | None:
    """A sentence when other points cannot be told apart from the recommended one."""
    if best is None:
        return None
    others = [i + 1 for i, p in enumerate(ranked) if p.indistinguishable]
    if not others:
        return None
    names = ", ".join(f"#{i}" for i in others[:10])
    return (
        f"grid points {names} cannot be told apart from the recommended one on this log: their "
        "intervals reach its lower bound; collect more data or narrow the grid before choosing"
    )


def _sortable(value: float) -> float:
    return -math.inf if math.isnan(value) else value


def named(point: TunedPoint, name: str) -> PolicyConfig:
    """The point's config under a new name, ready to store as a version."""
    return replace(point.config, name=name)


# Grid points with the same key share one policy replay (the Dask path groups tasks by it).
exploration_key = _exploration_key
