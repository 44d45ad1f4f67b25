"""Evaluate a target on a log with chosen estimators: the one entry point for CLI and gates.

A promotion gate calls `evaluate(log, target)` for the challenger and the incumbent on the
same log and compares `estimates["dr"].ci_low` with the other's `value`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bandit.ope.estimators import (
    ESTIMATORS,
    NEEDS_REWARD_MODEL,
    Estimate,
    ReplayArrays,
)
from bandit.ope.log_format import ReplayLog
from bandit.ope.reward_model import RewardModelSettings, fit_reward_model
from bandit.ope.targets import TargetDistribution


@dataclass(frozen=True)
class ReplayReport:
    """Estimates of one target on one log."""

    rows: int
    target: str
    estimates: dict[str, Estimate] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """The document written to replay.json."""
        return {
            "rows": self.rows,
            "target": self.target,
            "estimators": {name: e.as_dict() for name, e in self.estimates.items()},
        }


def parse_estimators(text: str) -> tuple[str, ...]:
    """`ips,snips,dm,dr` as a tuple of known names, in the given order."""
    names = tuple(n.strip().lower() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in ESTIMATORS]
    if unknown or not names:
        raise ValueError(
            f"estimators: unknown {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(ESTIMATORS)}"
        )
    return names


def replay_arrays(
    log: ReplayLog,
    target: TargetDistribution,
    with_reward_model: bool,
    settings: RewardModelSettings,
) -> ReplayArrays:
    """The arrays estimators read, with cross-fitted reward predictions when asked."""
    q_logged = q_target = None
    if with_reward_model:
        support = target.require_support("DM and DR")
        vocabulary = max(target.vocabulary_size, len(log.actions))
        model = fit_reward_model(log, vocabulary, settings)
        q_logged = model.predict(np.arange(log.rows), log.action)
        predicted = model.predict(support.row, support.action)
        q_target = np.bincount(
            support.row, weights=support.probability * predicted, minlength=log.rows
        )
    return ReplayArrays(
        reward=log.reward,
        propensity=log.propensity,
        target_probability=target.logged_probability,
        cluster=log.event,
        q_logged=q_logged,
        q_target=q_target,
    )


def evaluate(
    log: ReplayLog,
    target: TargetDistribution,
    estimators: Sequence[str] = ("ips", "snips", "dm", "dr"),
    settings: RewardModelSettings | None = None,
    level: float = 0.95,
) -> ReplayReport:
    """Estimate the target's value per (event, position) with each named estimator."""
    settings = settings or RewardModelSettings()
    needs_model = any(name in NEEDS_REWARD_MODEL for name in estimators)
    arrays = replay_arrays(log, target, needs_model, settings)
    estimates = {name: ESTIMATORS[name](level=level).estimate(arrays) for name in estimators}
    return ReplayReport(log.rows, target.name, estimates)
