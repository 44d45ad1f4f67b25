"""Drive the real loop (rank, review, reward, learn) through the service layer."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from bandit.db.models import Decision
from bandit.runtime import EngineRuntime
from bandit.services import accounts, decisions, learning, review, rewards
from bandit.services.decisions import DELIVERED_TAGS
from sim.curators import SimulatedCurator
from sim.world import TrueRewardModel


@dataclass(frozen=True)
class RoundStat:
    """What one simulated decision looked like against the truth."""

    index: int
    route: str
    mean_keep_probability: float
    preferred_share: float


@dataclass
class LoopSettings:
    """How the simulated world behaves around the loop."""

    decisions: int = 300
    learn_every: int = 25
    tasks_per_step: int = 2
    reward_share: float = 0.7
    leave_unreviewed: int = 0


def ensure_curator_ids(session: Session, curators: Sequence[SimulatedCurator]) -> dict[str, int]:
    """Database ids of the simulated curators, creating accounts they can never log in to."""
    ids = {}
    for curator in curators:
        row = accounts.find_curator(session, curator.username)
        if row is None:
            row = accounts.add_curator(session, curator.username, secrets.token_urlsafe(24))
        ids[curator.username] = row.id
    session.commit()
    return ids


def run_loop(
    session_factory: sessionmaker[Session],
    runtime: EngineRuntime,
    truth: TrueRewardModel,
    customers: Sequence[dict[str, Any]],
    curators: Sequence[SimulatedCurator],
    settings: LoopSettings,
    rng: np.random.Generator,
    on_step: Callable[[int], None] | None = None,
) -> list[RoundStat]:
    """Run `settings.decisions` decisions and return per-decision statistics."""
    with session_factory() as session:
        curator_ids = ensure_curator_ids(session, curators)
    profiles = {c["customer_id"]: c for c in customers}
    stats: list[RoundStat] = []
    for step in range(settings.decisions):
        profile = customers[int(rng.integers(len(customers)))]
        with session_factory() as session:
            decision, _ = decisions.rank(
                session, runtime, decisions.RankRequest(context=dict(profile))
            )
            slate = [p.item_id for p in decision.proposed]
            chance = truth.keep_probability(profile, slate)
            stats.append(
                RoundStat(step, decision.route, float(chance.mean()), float((chance >= 0.5).mean()))
            )
            if decision.status == decisions.DELIVERED:
                _report_outcomes(session, truth, profile, decision, settings, rng)
            if step < settings.decisions - settings.leave_unreviewed:
                for _ in range(settings.tasks_per_step):
                    curator = curators[int(rng.integers(len(curators)))]
                    if not _review_one(
                        session, truth, profiles, curator, curator_ids, settings, rng
                    ):
                        break
        if (step + 1) % settings.learn_every == 0:
            with session_factory() as session:
                learning.learn_pending(session)
        if on_step is not None:
            on_step(step)
    with session_factory() as session:
        learning.learn_pending(session)
    return stats


def _review_one(
    session: Session,
    truth: TrueRewardModel,
    profiles: dict[str, dict[str, Any]],
    curator: SimulatedCurator,
    curator_ids: dict[str, int],
    settings: LoopSettings,
    rng: np.random.Generator,
) -> bool:
    curator_id = curator_ids[curator.username]
    task = review.claim_next(session, curator_id)
    if task is None:
        return False
    decision = task.decision
    profile = profiles.get(str(decision.context.get("customer_id")), dict(decision.context))
    slate = [p.item_id for p in decision.proposed]
    alternates = [c["item_id"] for c in decision.candidates]
    verdicts, seconds = curator.review(truth, profile, slate, alternates)
    review.submit_review(session, task.id, curator_id, task.lease_token or "", verdicts, seconds)
    if task.route == "review_before":
        _report_outcomes(session, truth, profile, decision, settings, rng)
    return True


def _report_outcomes(
    session: Session,
    truth: TrueRewardModel,
    profile: dict[str, Any],
    decision: Decision,
    settings: LoopSettings,
    rng: np.random.Generator,
) -> None:
    if rng.random() >= settings.reward_share:
        return
    delivered = [f.item_id for f in decision.final_slate if f.tag in DELIVERED_TAGS]
    if not delivered:
        return
    kept = rng.random(len(delivered)) < truth.keep_probability(profile, delivered)
    for item_id, was_kept in zip(delivered, kept, strict=True):
        rewards.record_reward(
            session, decision.event_id, float(was_kept), item_id, source="simulator"
        )
