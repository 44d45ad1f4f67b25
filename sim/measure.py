"""What a simulated run achieved, read back from the database it logged to, against the truth."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session, defer, selectinload

from bandit.db.models import CuratorAction, Decision, RiskThreshold
from bandit.engine.vocabulary import Route
from bandit.services import rounds
from sim.loop import RoundStat, customer_received
from sim.world import TrueRewardModel


@dataclass(frozen=True)
class RunMeasures:
    """Per-decision arrays, in decision order."""

    reward: np.ndarray  # expected items kept of what the customer received (0 if still held)
    oracle: np.ndarray  # expected items kept of the best possible slate of the same size
    automated: np.ndarray  # went out with no curator involved
    curator_seconds: np.ndarray
    held: np.ndarray  # still waiting for a curator when the run ended
    confidence: np.ndarray  # the policy's confidence, which routing compares with thresholds
    # Trust: the true chance a curator would change each auto-delivered or audited slate
    # (nan otherwise), audits, and the override bound in force when each decision was made.
    true_override: np.ndarray | None = None
    audit: np.ndarray | None = None
    bound: np.ndarray | None = None
    # Logged rounds by reward source, as `bandit.services.rounds` defines them.
    rounds_by_source: dict[str, int] | None = None

    def summary(self, bins: int) -> dict[str, Any]:
        """Totals and binned series for the report."""
        count = self.reward.size
        chunks = np.array_split(np.arange(count), min(bins, count))
        regret = np.cumsum(self.oracle - self.reward)
        return {
            "decisions": int(count),
            "reward_per_decision": float(self.reward.mean()),
            "oracle_per_decision": float(self.oracle.mean()),
            "cumulative_regret": float(regret[-1]),
            "automation_rate": float(self.automated.mean()),
            "curator_minutes_per_1000": float(self.curator_seconds.sum() / 60 / count * 1000),
            "held_at_end": int(self.held.sum()),
            "series": {
                "decision_end": [int(c[-1]) + 1 for c in chunks],
                "reward_per_1000": [float(self.reward[c].mean() * 1000) for c in chunks],
                "automation_rate": [float(self.automated[c].mean()) for c in chunks],
                "curator_minutes_per_1000": [
                    float(self.curator_seconds[c].sum() / 60 / c.size * 1000) for c in chunks
                ],
                "cumulative_regret": [float(regret[c[-1]]) for c in chunks],
                "median_confidence": [float(np.median(self.confidence[c])) for c in chunks],
                "cumulative_reward": [float(np.cumsum(self.reward)[c[-1]]) for c in chunks],
                "cumulative_oracle": [float(np.cumsum(self.oracle)[c[-1]]) for c in chunks],
                **self._trust_series(chunks),
            },
            "logged_rounds_by_source": self.rounds_by_source or {},
        }

    def _trust_series(self, chunks: list[np.ndarray]) -> dict[str, list[float | None]]:
        if self.true_override is None or self.bound is None:
            return {}
        return {
            "true_override_auto": [_nanmean(self.true_override[c]) for c in chunks],
            "override_bound": [_last(self.bound[c]) for c in chunks],
        }


def _nanmean(values: np.ndarray) -> float | None:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else None


def _last(values: np.ndarray) -> float | None:
    finite = values[np.isfinite(values)]
    return float(finite[-1]) if finite.size else None


def measure_run(
    session: Session,
    truth: TrueRewardModel,
    catalog: pd.DataFrame,
    stats: Sequence[RoundStat] = (),
) -> RunMeasures:
    """Score every logged decision of a run against the true reward model."""
    eligible = (catalog["stock"].to_numpy() > 0) & catalog.get(
        "active", pd.Series(True, index=catalog.index)
    ).to_numpy(dtype=bool)
    seconds = dict(
        session.execute(
            select(CuratorAction.decision_id, func.sum(CuratorAction.seconds_spent)).group_by(
                CuratorAction.decision_id
            )
        ).all()
    )
    bounds = dict(session.execute(select(RiskThreshold.model_version, RiskThreshold.bound)).all())
    audits: list[bool] = []
    bound: list[float] = []
    rows: list[tuple[float, float, bool, float, bool, float]] = []
    # The slate sizes in one query, and not the bulky candidate lists nor the pmfs.
    every_decision = select(Decision).options(
        selectinload(Decision.proposed), defer(Decision.candidates), defer(Decision.position_pmfs)
    )
    for decision in session.scalars(every_decision.order_by(Decision.id)):
        audits.append(bool(decision.audit))
        measured = bounds.get(decision.model_version)  # None: that pass tested no threshold
        bound.append(np.nan if measured is None else float(measured))
        profile = decision.context
        slate_size = len(decision.proposed)
        chance = truth.keep_probability_all(profile)[eligible]
        best = float(np.sort(chance)[-slate_size:].sum()) if slate_size else 0.0
        held = decision.delivered_at is None
        received = [] if held else customer_received(decision)
        reward = float(truth.keep_probability(profile, received).sum()) if received else 0.0
        rows.append(
            (
                reward,
                best,
                decision.route == Route.AUTO,
                float(seconds.get(decision.id, 0)),
                held,
                float(decision.uncertainty.get("confidence", 0.0)),
            )
        )
    table = np.array(rows, dtype=float).reshape(-1, 6)
    override = np.array([s.true_override for s in stats], dtype=float)
    sources = Counter(str(r.reward_source) for r in rounds.logged_rounds(session))
    return RunMeasures(
        true_override=override if override.size == len(rows) else None,
        audit=np.array(audits, dtype=bool),
        bound=np.array(bound, dtype=float),
        rounds_by_source=dict(sorted(sources.items())),
        reward=table[:, 0],
        oracle=table[:, 1],
        automated=table[:, 2].astype(bool),
        curator_seconds=table[:, 3],
        held=table[:, 4].astype(bool),
        confidence=table[:, 5],
    )
