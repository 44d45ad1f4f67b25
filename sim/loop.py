"""Drive the real loop (rank, review, reward, learn) through the service layer."""

from __future__ import annotations

import heapq
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from bandit.db.models import Decision
from bandit.engine.vocabulary import DecisionStatus, Route
from bandit.services import accounts, decisions, learning, review, rewards
from bandit.services.delivery import delivered_slate
from bandit.services.learner_cache import LearnerCache
from bandit.services.review.double_review import FIRST_ROUND
from bandit.services.runtime import EngineRuntime
from sim.curators import SimulatedCurator, change_probability
from sim.world import TrueRewardModel


@dataclass(frozen=True)
class RoundStat:
    """What one simulated decision looked like against the truth."""

    index: int
    route: str
    mean_keep_probability: float
    preferred_share: float
    # For slates delivered with no review first (auto, or an audit): the chance a curator
    # would have changed it, which the simulator knows and the system must bound.
    true_override: float = float("nan")


@dataclass
class LoopSettings:
    """How the simulated world behaves around the loop."""

    decisions: int = 300
    learn_every: int = 25
    tasks_per_step: int = 2
    reward_share: float = 0.7
    leave_unreviewed: int = 0
    # Customers answer this many decisions after their slate went out (0: at once).
    outcome_delay: int = 0
    # Simulated time between requests; it paces curators with an hourly capacity and shifts.
    seconds_per_decision: float = 30.0
    shift_hours: float = 8.0


@dataclass(order=True)
class _DueOutcome:
    due_step: int
    # Ties answer in the order the decisions were logged.
    decision_id: int
    event_id: str = field(compare=False)
    # What the customer received is fixed at delivery, so the answer needs no re-read.
    received: list[str] = field(compare=False)
    profile: dict[str, Any] = field(compare=False)


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
    world = _World(truth, {c["customer_id"]: c for c in customers}, settings, rng)
    desk = _ReviewDesk(curators, curator_ids, settings, rng)
    stats: list[RoundStat] = []
    # One learner runs every pass, as in a deployment: it keeps catalog rows between passes.
    learner = LearnerCache()
    for step in range(settings.decisions):
        profile = customers[int(rng.integers(len(customers)))]
        with session_factory() as session:
            decision, _ = decisions.rank(
                session,
                runtime,
                # A seeded run must repeat: the event id picks the approval role (and any
                # double review), so it may not be a random uuid.
                decisions.RankRequest(context=dict(profile), event_id=f"sim-{step:07d}"),
            )
            session.commit()
            slate = [p.item_id for p in decision.proposed]
            chance = truth.keep_probability(profile, slate)
            unreviewed_first = decision.route == Route.AUTO or decision.audit
            override = (
                change_probability(curators, truth, profile, slate)
                if unreviewed_first
                else float("nan")
            )
            stats.append(
                RoundStat(
                    step,
                    decision.route,
                    float(chance.mean()),
                    float((chance >= 0.5).mean()),
                    override,
                )
            )
            if decision.status == DecisionStatus.DELIVERED:
                world.delivered(session, decision, profile, step)
            if step < settings.decisions - settings.leave_unreviewed:
                desk.work(session, world, step)
            world.answer_due(session, step)
        if (step + 1) % settings.learn_every == 0:
            with session_factory.begin() as session:
                learning.learn_pending(session, cache=learner)
        if on_step is not None:
            on_step(step)
    with session_factory.begin() as session:
        learning.learn_pending(session, cache=learner)
    return stats


class _World:
    """Customers: they answer a delivered slate with outcomes, possibly some decisions later."""

    def __init__(
        self,
        truth: TrueRewardModel,
        profiles: dict[str, dict[str, Any]],
        settings: LoopSettings,
        rng: np.random.Generator,
    ) -> None:
        self.truth = truth
        self.profiles = profiles
        self.settings = settings
        self.rng = rng
        self._waiting: list[_DueOutcome] = []

    def profile_of(self, decision: Decision) -> dict[str, Any]:
        return self.profiles.get(str(decision.context.get("customer_id")), dict(decision.context))

    def delivered(
        self, session: Session, decision: Decision, profile: dict[str, Any], step: int
    ) -> None:
        received = customer_received(decision)
        if self.settings.outcome_delay == 0:
            self._report(session, decision.event_id, received, profile)
        else:
            due = _DueOutcome(
                step + self.settings.outcome_delay,
                decision.id,
                decision.event_id,
                received,
                profile,
            )
            heapq.heappush(self._waiting, due)

    def answer_due(self, session: Session, step: int) -> None:
        while self._waiting and self._waiting[0].due_step <= step:
            due = heapq.heappop(self._waiting)
            self._report(session, due.event_id, due.received, due.profile)

    def _report(
        self, session: Session, event_id: str, received: list[str], profile: dict[str, Any]
    ) -> None:
        if self.rng.random() >= self.settings.reward_share:
            return
        if not received:
            return
        kept = self.rng.random(len(received)) < self.truth.keep_probability(profile, received)
        # One customer's answer about one delivered slate (kept these, returned those) is one
        # report, as a client would post it: one call and one transaction for its rewards.
        report = [
            (item_id, float(was_kept)) for item_id, was_kept in zip(received, kept, strict=True)
        ]
        rewards.record_rewards(session, event_id, report, source="simulator")
        session.commit()


def customer_received(decision: Decision) -> list[str]:
    """The items the customer got: the delivered slate as sent (a later correction does not
    reach a customer who already has it)."""
    return [entry["item_id"] for entry in delivered_slate(decision)]


class _ReviewDesk:
    """The curators: each reviews at its own pace, or `tasks_per_step` among them all."""

    def __init__(
        self,
        curators: Sequence[SimulatedCurator],
        curator_ids: dict[str, int],
        settings: LoopSettings,
        rng: np.random.Generator,
    ) -> None:
        self.curators = list(curators)
        self.curator_ids = curator_ids
        self.settings = settings
        self.rng = rng
        self.paced = any(c.tasks_per_hour is not None for c in curators)
        self.budget = {c.username: 0.0 for c in curators}
        self.shift = 0

    def work(self, session: Session, world: _World, step: int) -> None:
        clock_hours = step * self.settings.seconds_per_decision / 3600.0
        shift = int(clock_hours // self.settings.shift_hours)
        if shift != self.shift:
            self.shift = shift
            for curator in self.curators:
                curator.start_shift()
        if not self.paced:
            for _ in range(self.settings.tasks_per_step):
                curator = self.curators[int(self.rng.integers(len(self.curators)))]
                if not self._review_one(session, world, curator, step):
                    return
            return
        for index in self.rng.permutation(len(self.curators)):
            curator = self.curators[int(index)]
            pace = curator.tasks_per_hour if curator.tasks_per_hour is not None else 3600.0
            step_hours = self.settings.seconds_per_decision / 3600.0
            budget = self.budget[curator.username] + pace * step_hours
            while budget >= 1.0 and self._review_one(session, world, curator, step):
                budget -= 1.0
            # Unused capacity does not pile up while the queue is empty.
            self.budget[curator.username] = min(budget, 1.0)

    def _review_one(
        self, session: Session, world: _World, curator: SimulatedCurator, step: int
    ) -> bool:
        curator_id = self.curator_ids[curator.username]
        task = review.claim_next(session, curator_id)
        session.commit()
        if task is None:
            return False
        decision = task.decision
        profile = world.profile_of(decision)
        slate = [p.item_id for p in decision.proposed]
        alternates = [c["item_id"] for c in decision.candidates]
        verdicts, seconds = curator.review(world.truth, profile, slate, alternates)
        review.submit_review(
            session, task.id, curator_id, task.lease_token or "", verdicts, seconds
        )
        session.commit()
        # A second opinion copies the first task's route, but the slate went out once: after
        # the first review.
        if task.route == Route.REVIEW_BEFORE and task.review_round == FIRST_ROUND:
            world.delivered(session, decision, profile, step)
        return True
