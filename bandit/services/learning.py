"""The one learner: turns verdicts and rewards not yet learned into VW updates, exactly once.

Curator verdicts on the policy's own picks become rounds with reward 1 (kept) or 0 (removed,
swapped out), at the probability the policy had for that pick. Client and default rewards
become rounds on the policy's own delivered picks. Items a curator swapped in were never
chosen by the policy: their rewards are stored and marked processed but never given to VW
as if the policy had chosen them.

Marking rows learned and saving the new model version happen in one transaction, and the
model version number is unique, so a crash or a second learner can neither skip nor repeat
a signal.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from bandit.db.models import CuratorAction, Decision, Outcome, utcnow
from bandit.db.session import is_postgresql
from bandit.engine import vw_format
from bandit.engine.catalog import CatalogRow
from bandit.engine.policy import VWPolicy
from bandit.engine.records import LoggedRound
from bandit.engine.vocabulary import CuratorVerdict, RoutingMode
from bandit.services import apprentice, configs, model_store
from bandit.services.catalog_store import as_row, items_by_id
from bandit.services.delivery import decision_config, policy_items_delivered
from bandit.services.rewards import assign_default_rewards

CURATOR_REWARD: dict[str, float] = {
    CuratorVerdict.KEPT: 1.0,
    CuratorVerdict.REMOVED: 0.0,
    CuratorVerdict.SWAPPED: 0.0,
}
# Any constant works as long as every learner takes the same one.
LEARNER_LOCK_KEY = 820_417_113


@dataclass(frozen=True)
class LearnReport:
    """What one learning pass did."""

    rounds_learned: int
    verdicts: int
    rewards: int
    rewards_not_fed: int
    defaults_assigned: int
    model_version: int | None
    imitation_rounds: int = 0


def learn_pending(session: Session, now: datetime | None = None) -> LearnReport:
    """Learn every pending verdict and reward once and save a model version. Flushes; the
    learner commits the pass, its model version and the learned marks in one transaction."""
    now = now or utcnow()
    if is_postgresql(session):
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LEARNER_LOCK_KEY})
    defaults = assign_default_rewards(session, now)
    actions = session.scalars(
        select(CuratorAction)
        # Second opinions of double review measure agreement; learning them would count twice.
        .where(CuratorAction.learned_at.is_(None), CuratorAction.agreement_only.is_(False))
        .order_by(CuratorAction.id)
    ).all()
    outcomes = session.scalars(
        select(Outcome).where(Outcome.learned_at.is_(None)).order_by(Outcome.id)
    ).all()
    decisions = _decisions(
        session, {a.decision_id for a in actions} | {o.decision_id for o in outcomes}
    )
    rounds = []
    for action in actions:
        decision = decisions[action.decision_id]
        config = decision_config(session, decision)
        offered = offered_at(decision, action.position)
        apprentice.record_choice(session, decision, action, config, offered)
        # In apprentice mode the human chose every item: nothing there is a bandit draw.
        if config.routing_mode != RoutingMode.APPRENTICE:
            rounds.append(_verdict_round(decision, action))
    not_fed = 0
    for outcome in outcomes:
        outcome_rounds = _outcome_rounds(decisions[outcome.decision_id], outcome)
        outcome.fed_to_policy = bool(outcome_rounds)
        not_fed += 0 if outcome_rounds else 1
        rounds.extend(outcome_rounds)
    session.flush()
    imitation = apprentice.pending_rounds(session, now)
    version = None
    if rounds or imitation:
        config_row, config = configs.active_config(session)
        previous = model_store.latest_model(session)
        policy = model_store.policy_from(previous, config)
        catalog = _catalog_rows(session, rounds + imitation)
        lines: dict[str, str] = {}
        apply_rounds(policy, rounds, catalog, lines)
        apply_rounds(policy, imitation, catalog, lines)
        saved = model_store.save_model(
            session, policy, config_row, len(rounds) + len(imitation), previous, note="learned"
        )
        version = saved.version
    for action in actions:
        action.learned_at = now
    for outcome in outcomes:
        outcome.learned_at = now
    session.flush()
    return LearnReport(
        rounds_learned=len(rounds),
        verdicts=len(actions),
        rewards=len(outcomes),
        rewards_not_fed=not_fed,
        defaults_assigned=defaults,
        model_version=version,
        imitation_rounds=len(imitation),
    )


def apply_rounds(
    policy: VWPolicy,
    rounds: Iterable[LoggedRound],
    catalog: dict[str, CatalogRow],
    action_lines: dict[str, str] | None = None,
) -> int:
    """Feed rounds to the policy; returns how many it learned (rounds on lost items skip).

    `action_lines` caches each item's VW text across rounds (and across calls, if the caller
    keeps it for the same catalog).
    """
    lines = {} if action_lines is None else action_lines
    learned = 0
    for round_ in rounds:
        offered = [i for i in round_.offered_item_ids if i in catalog]
        if round_.chosen_item_id not in offered:
            continue
        for item_id in offered:
            if item_id not in lines:
                lines[item_id] = vw_format.action_line(catalog[item_id])
        policy.learn(
            vw_format.shared_line(round_.context),
            [lines[i] for i in offered],
            offered.index(round_.chosen_item_id),
            round_.reward,
            round_.probability,
        )
        learned += 1
    return learned


def _decisions(session: Session, ids: set[int]) -> dict[int, Decision]:
    if not ids:
        return {}
    return {d.id: d for d in session.scalars(select(Decision).where(Decision.id.in_(ids)))}


def offered_at(decision: Decision, position: int) -> tuple[str, ...]:
    """The candidates still available when the policy filled `position`."""
    earlier = {p.item_id for p in decision.proposed if p.position < position}
    return tuple(c["item_id"] for c in decision.candidates if c["item_id"] not in earlier)


def _round(decision: Decision, position: int, reward: float, source: str) -> LoggedRound:
    proposed = next(p for p in decision.proposed if p.position == position)
    return LoggedRound(
        event_id=decision.event_id,
        context=decision.context,
        offered_item_ids=offered_at(decision, position),
        chosen_item_id=proposed.item_id,
        position=position,
        probability=proposed.position_probability,
        reward=reward,
        source=source,
    )


def _verdict_round(decision: Decision, action: CuratorAction) -> LoggedRound:
    return _round(decision, action.position, CURATOR_REWARD[action.verdict], "curator")


def _outcome_rounds(decision: Decision, outcome: Outcome) -> list[LoggedRound]:
    if outcome.after_default:
        return []
    policy_positions = {p.item_id: p.position for p in decision.proposed}
    delivered_by_policy = policy_items_delivered(decision)
    if outcome.item_key and not outcome.is_default:
        targets = [outcome.item_key] if outcome.item_key in delivered_by_policy else []
    else:
        targets = delivered_by_policy
    source = "default" if outcome.is_default else "client"
    return [_round(decision, policy_positions[i], outcome.value, source) for i in targets]


def _catalog_rows(session: Session, rounds: list[LoggedRound]) -> dict[str, CatalogRow]:
    needed = {i for r in rounds for i in r.offered_item_ids}
    return {item_id: as_row(item) for item_id, item in items_by_id(session, needed).items()}
