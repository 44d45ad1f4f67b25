"""The one learner: turns the logged rounds not yet learned into VW updates, exactly once.

What the policy learns is defined in one place, `bandit.services.rounds`: one round per
delivered (event, position) whose reward is the customer's outcome, a curator's verdict as a
proxy where no customer outcome can exist, or the config's default. Curator verdicts are
also processed here as approval labels, never as customer rewards. Items a curator swapped
in were never chosen by the policy: their rewards are stored and marked processed but never
given to VW as if the policy had chosen them.

Marking rows learned and saving the new model version happen in one transaction, and the
model version number is unique, so a crash or a second learner can neither skip nor repeat
a signal.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, text
from sqlalchemy.orm import Session, defer, selectinload

from bandit.db.models import CuratorAction, Decision, ImitationExample, Outcome, utcnow
from bandit.db.session import is_postgresql
from bandit.engine import vw_format
from bandit.engine.catalog import CatalogRow
from bandit.engine.policy import VWPolicy
from bandit.engine.records import LoggedRound
from bandit.engine.vocabulary import RewardSource, RoutingMode
from bandit.services import apprentice, configs, lessons, model_store, rounds, trust
from bandit.services.delivery import decision_config
from bandit.services.learner_cache import LearnerCache
from bandit.services.rewards import assign_default_rewards
from bandit.services.trust import TrustReport

# Any constant works as long as every learner takes the same one.
LEARNER_LOCK_KEY = 820_417_113
# The rounds the all-curators lessons leave out: curator proxies and every imitation round.
CURATOR_MADE = frozenset({RewardSource.CURATOR_PROXY, apprentice.IMITATION_SOURCE})


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
    # The bandit rounds this pass fed to VW (the equality test compares them with the export).
    rounds: tuple[LoggedRound, ...] = ()
    # The approval model and threshold of this pass (None when no verdict came in).
    trust: TrustReport | None = None


def learn_pending(
    session: Session, now: datetime | None = None, cache: LearnerCache | None = None
) -> LearnReport:
    """Learn every pending verdict and reward once and save a model version. Flushes; the
    learner commits the pass, its model version and the learned marks in one transaction.

    A learner that runs pass after pass passes the same `cache` to each (catalog rows and
    action lines, checked against the catalog revision every pass).
    """
    now = now or utcnow()
    if is_postgresql(session):
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LEARNER_LOCK_KEY})
    cache = cache if cache is not None else LearnerCache()
    cache.start_pass(session)
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
    chosen_by: list[tuple[ImitationExample, int]] = []
    for action in actions:
        decision = decisions[action.decision_id]
        example = apprentice.record_choice(
            session, decision, action, decision_config(session, decision)
        )
        if example is not None:
            chosen_by.append((example, action.curator_id))
    in_order = sorted(decisions.values(), key=lambda d: (d.created_at, d.id))
    # Only the rounds whose reward row (outcome or verdict) is one this pass read as pending,
    # and so marks learned below. On PostgreSQL (READ COMMITTED) the rounds' own read can see
    # a reward committed since: its round waits for the next pass, which reads and marks it.
    read_outcomes, read_actions = {o.id for o in outcomes}, {a.id for a in actions}
    resolved = [
        r
        for r in rounds.resolve_decisions(session, in_order, pending_only=True)
        if r.outcome_id in read_outcomes or r.action_id in read_actions
    ]
    learnable = [r.round for r in resolved]
    fed = {r.outcome_id for r in resolved if r.outcome_id is not None and r.reward_is_row_value}
    not_fed = 0
    for outcome in outcomes:
        outcome.fed_to_policy = outcome.id in fed
        not_fed += 0 if outcome.fed_to_policy else 1
    session.flush()
    examples = apprentice.pending_examples(session, now)
    imitation = [round_ for _, round_ in examples]
    version = None
    trust_report = None
    if learnable or imitation or actions:
        config_row, config = configs.active_config(session)
        previous = model_store.latest_model(session)
        policy = model_store.policy_from(previous, config)
        catalog = cache.rows(
            session, {i for r in learnable + imitation for i in r.offered_item_ids}
        )
        probe = lessons.take_probe(session, actions, cache) if actions else None
        lines = cache.action_lines
        apply_rounds(policy, learnable, catalog, lines)
        apply_rounds(policy, imitation, catalog, lines)
        saved = model_store.save_model(
            session, policy, config_row, len(learnable) + len(imitation), previous, note="learned"
        )
        version = saved.version
        if probe is not None:
            # What curator feedback changed: the same pass without the rounds curators made,
            # all of them and each curator's own.
            pass_rounds = learnable + imitation

            def learn_without(left_out: frozenset[int]) -> VWPolicy:
                without = model_store.policy_from(previous, config)
                try:
                    kept = [r for i, r in enumerate(pass_rounds) if i not in left_out]
                    apply_rounds(without, kept, catalog, lines)
                except BaseException:
                    without.close()
                    raise
                return without

            makers = _round_makers(resolved, examples, actions, chosen_by)
            team_out = frozenset(
                i for i, r in enumerate(pass_rounds) if r.reward_source in CURATOR_MADE
            )
            changes = lessons.measure_changes(probe, policy, makers, team_out, learn_without)
            contexts = {d.id: d.context for d in decisions.values()}
            taught = lessons.taught_directions(pass_rounds, makers, team_out)
            lessons.record_lessons(session, probe, changes, actions, contexts, version, now, taught)
        if actions:
            # Curator verdicts are approval labels: the approval model learns from them here,
            # in the same transaction, and is saved with the same model version.
            approval, state, trust_report = trust.update_approval(
                session,
                actions,
                decisions,
                lambda d: _learns_approval(session, d),
                previous,
                config,
                cache,
            )
            saved.approval_bytes, saved.approval_state = approval.to_bytes(), state
            trust.record_threshold(session, version, trust_report, state, now)
            approval.close()
        elif previous is not None:
            saved.approval_bytes = previous.approval_bytes
            saved.approval_state = previous.approval_state
    for action in actions:
        action.learned_at = now
    for outcome in outcomes:
        outcome.learned_at = now
    session.flush()
    return LearnReport(
        rounds_learned=len(learnable),
        verdicts=len(actions),
        rewards=len(outcomes),
        rewards_not_fed=not_fed,
        defaults_assigned=defaults,
        model_version=version,
        imitation_rounds=len(imitation),
        rounds=tuple(learnable),
        trust=trust_report,
    )


def apply_rounds(
    policy: VWPolicy,
    rounds: Iterable[LoggedRound],
    catalog: dict[str, CatalogRow],
    action_lines: dict[str, str] | None = None,
) -> int:
    """Feed rounds to the policy; returns how many it learned (rounds on lost items skip).

    `action_lines` caches each item's VW text across rounds (and across calls, if the caller
    keeps it for the same catalog). Consecutive rounds with the same context object (the
    positions of one decision) format its shared line once: contexts are values here.
    """
    lines = {} if action_lines is None else action_lines
    learned = 0
    context: object = None
    shared = ""
    for round_ in rounds:
        offered = round_.offered_item_ids
        if not all(map(catalog.__contains__, offered)):
            offered = tuple(i for i in offered if i in catalog)
        if round_.chosen_item_id not in offered:
            continue
        if not all(map(lines.__contains__, offered)):
            for item_id in offered:
                if item_id not in lines:
                    lines[item_id] = vw_format.action_line(catalog[item_id])
        if round_.context is not context:  # a decision's positions share its context
            context, shared = round_.context, vw_format.shared_line(round_.context)
        policy.learn(
            shared,
            list(map(lines.__getitem__, offered)),
            offered.index(round_.chosen_item_id),
            round_.reward,
            round_.probability,
        )
        learned += 1
    return learned


def _round_makers(
    resolved: Sequence[rounds.ResolvedRound],
    examples: Sequence[tuple[ImitationExample, LoggedRound]],
    actions: Sequence[CuratorAction],
    chosen_by: Sequence[tuple[ImitationExample, int]],
) -> list[int | None]:
    """The curator who made each round of the pass (learned rounds, then imitation rounds);
    None for a customer's outcome, a default, or a client service's own choice."""
    by_action = {a.id: a.curator_id for a in actions}
    by_example = {example.id: curator for example, curator in chosen_by}
    return [
        by_action.get(r.action_id)
        if r.action_id is not None and r.round.reward_source == RewardSource.CURATOR_PROXY
        else None
        for r in resolved
    ] + [by_example.get(example.id) for example, _ in examples]


def _decisions(session: Session, ids: set[int]) -> dict[int, Decision]:
    if not ids:
        return {}
    # With the proposed slate, which the verdicts' choices and the rounds read for every
    # decision; without the per-position pmfs, which learning never reads.
    query = select(Decision).options(selectinload(Decision.proposed), defer(Decision.position_pmfs))
    return {d.id: d for d in session.scalars(query.where(Decision.id.in_(ids)))}


def _learns_approval(session: Session, decision: Decision) -> bool:
    # In apprentice mode the human composes the slate: there is no proposal to approve.
    return decision_config(session, decision).routing_mode != RoutingMode.APPRENTICE
