"""Logged rounds: one round per delivered position, the same rounds for the learner and export."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bandit.db.models import Decision, Outcome, utcnow
from bandit.engine.config import PolicyConfig
from bandit.engine.records import LoggedRound
from bandit.engine.vocabulary import DecisionStatus, RewardSource, Route
from bandit.services import (
    accounts,
    apprentice,
    configs,
    decisions,
    learning,
    review,
    rewards,
    rounds,
)
from bandit.services.delivery import delivered_slate, policy_items_delivered
from bandit.services.export import export_log
from bandit.services.review import ItemVerdict
from bandit.services.review.overflow import upkeep
from bandit.services.review.undo import undo_submit
from bandit.services.runtime import EngineRuntime
from tests.conftest import DemoCatalog

WAIT_SECONDS = 3600
# Every route: always review first, verify after output, and automatic delivery.
ROUTE_CONFIGS = (
    {"routing_mode": "review_before"},
    {"routing_mode": "review_after"},
    {"routing_mode": "partial", "auto_threshold": 0.0, "review_threshold": 0.0},
)
EVENTS_PER_ROUTE = 6


def _verdicts(decision: Decision, index: int) -> list[ItemVerdict]:
    on_slate = {p.item_id for p in decision.proposed}
    spare = [c["item_id"] for c in decision.candidates if c["item_id"] not in on_slate]
    verdicts = []
    for p in decision.proposed:
        kind = ("keep", "remove", "swap", "keep")[(p.position + index) % 4]
        if kind == "swap":
            verdicts.append(ItemVerdict(p.position, "swap", spare.pop(), "better fit"))
        else:
            verdicts.append(ItemVerdict(p.position, kind))
    return verdicts


def _reward(session: Session, decision: Decision, index: int) -> None:
    delivered = policy_items_delivered(decision)
    if index % 3 == 0 or not delivered:
        return  # no customer answer: the default arrives after the wait
    if index % 3 == 1:
        rewards.record_reward(session, decision.event_id, float(index % 2), None, "test")
    else:
        for item_id in delivered[:2]:
            rewards.record_reward(session, decision.event_id, 1.0, item_id, "test")


@pytest.fixture
def learned_history(
    session_factory: sessionmaker[Session], demo_catalog: DemoCatalog
) -> list[LoggedRound]:
    """Every route, keeps/removes/swaps, review-after corrections, defaults and late rewards;
    returns every round the learner fed to VW, in order."""
    runtime = EngineRuntime(np.random.default_rng(3))
    learned: list[LoggedRound] = []
    with session_factory() as session:
        curator_id = accounts.add_curator(session, "rounds-curator", "rounds-password-1").id
        session.commit()
    index = 0
    for settings in ROUTE_CONFIGS:
        config = PolicyConfig(
            name="rounds",
            candidate_count=10,
            slate_size=4,
            reward_wait_seconds=WAIT_SECONDS,
            **settings,
        )
        with session_factory() as session:
            configs.save_config(session, config, created_by="test", activate=True)
            session.commit()
        for _ in range(EVENTS_PER_ROUTE):
            with session_factory() as session:
                context = demo_catalog.customers[index % len(demo_catalog.customers)]
                request = decisions.RankRequest(context=context)
                decision, _ = decisions.rank(session, runtime, request)
                session.commit()
                task = review.claim_next(session, curator_id)
                session.commit()
                if task is not None:
                    verdicts = _verdicts(task.decision, index)
                    lease = task.lease_token or ""
                    review.submit_review(session, task.id, curator_id, lease, verdicts, 9.0)
                    session.commit()
                session.refresh(decision)
                if decision.status == DecisionStatus.DELIVERED:
                    _reward(session, decision, index)
                    session.commit()
            if index % 4 == 3:
                with session_factory.begin() as session:
                    learned.extend(learning.learn_pending(session).rounds)
            index += 1
    later = utcnow() + timedelta(seconds=WAIT_SECONDS + 60)
    with session_factory.begin() as session:
        learned.extend(learning.learn_pending(session, now=later).rounds)
    with session_factory.begin() as session:
        # Customers who answer after the default was learned: stored, never learned again.
        late = [
            d
            for d in session.query(Decision).order_by(Decision.id)
            if [o.is_default for o in _outcomes(session, d)] == [True]
        ][:2]
        for decision in late:
            rewards.record_reward(session, decision.event_id, 1.0, None, "late")
    with session_factory.begin() as session:
        learned.extend(learning.learn_pending(session, now=later).rounds)
    return learned


def _outcomes(session: Session, decision: Decision) -> list:
    from bandit.db.models import Outcome

    return list(session.query(Outcome).filter(Outcome.decision_id == decision.id))


def _key(r: LoggedRound) -> tuple:
    return (r.event_id, r.position, r.chosen_item_id, r.reward, r.probability, r.reward_source)


def test_the_learner_learns_exactly_the_exported_rounds(
    session_factory: sessionmaker[Session], learned_history: list[LoggedRound]
) -> None:
    with session_factory() as session:
        exported = export_log(session).rounds.to_pandas()
        defined = rounds.logged_rounds(session)
        routes = {d.route for d in session.query(Decision)}
    assert routes == set(Route)
    rows = Counter(
        (r.event_id, r.position, r.action, r.reward, r.propensity, r.reward_source)
        for r in exported.itertuples()
    )
    assert Counter(_key(r) for r in learned_history) == rows
    assert Counter(_key(r) for r in defined) == rows
    assert set(exported["reward_source"]) == set(RewardSource)
    # Every (event, position) at most once, and never a round twice in the learner.
    assert len({(r.event_id, r.position) for r in learned_history}) == len(learned_history)
    late = exported[exported["late_reward"].notna()]
    assert len(late) > 0 and (late["reward_source"] == RewardSource.DEFAULT).all()


def test_delivered_rewards_are_the_rounds_rewards_read_from_columns(
    session_factory: sessionmaker[Session], learned_history: list[LoggedRound]
) -> None:
    """The read models' shortcut (the dashboard's mean reward) gives every delivered
    position's round its own reward and source, customer, default or late, and marks every
    other delivered position (the swap-ins) as no policy draw."""
    with session_factory() as session:
        defined = rounds.logged_rounds(session)
        ids = [d.id for d in session.query(Decision)]
        every = rounds.delivered_rewards(session, ids)
        swapped_in = {
            (d.event_id, e["position"])
            for d in session.query(Decision)
            for e in delivered_slate(d)
            if e["item_id"] not in policy_items_delivered(d)
        }
    read = [r for r in every if r.policy_draw]
    others = {(r.event_id, r.position) for r in every if not r.policy_draw}
    assert others and others <= swapped_in
    received = (RewardSource.CUSTOMER, RewardSource.DEFAULT)
    expected = Counter(
        (r.event_id, r.position, r.reward, r.reward_source, r.context.get("segment"))
        for r in defined
        if r.reward_source in received
    )
    assert expected and {source for *_, source, _ in expected} == set(received)
    assert (
        Counter(
            (r.event_id, r.position, r.reward, r.reward_source, r.context.get("segment"))
            for r in read
        )
        == expected
    )


def test_each_delivered_position_gets_one_round_and_removed_ones_a_curator_proxy(
    session_factory: sessionmaker[Session], learned_history: list[LoggedRound]
) -> None:
    with session_factory() as session:
        by_key = {(r.event_id, r.position): r for r in rounds.logged_rounds(session)}
        for decision in session.query(Decision):
            delivered = set(policy_items_delivered(decision))
            for p in decision.proposed:
                round_ = by_key[(decision.event_id, p.position)]
                if p.item_id in delivered:
                    assert round_.reward_source in (RewardSource.CUSTOMER, RewardSource.DEFAULT)
                else:
                    # Removed or swapped out before delivery: no customer outcome can exist.
                    assert decision.route == Route.REVIEW_BEFORE
                    assert (round_.reward_source, round_.reward) == (
                        RewardSource.CURATOR_PROXY,
                        0.0,
                    )


def test_a_curator_keep_on_a_delivered_item_is_not_a_reward(
    session_factory: sessionmaker[Session], learned_history: list[LoggedRound]
) -> None:
    with session_factory() as session:
        after = [d for d in session.query(Decision) if d.route == Route.REVIEW_AFTER]
        keys = {(d.event_id, p.position) for d in after for p in d.proposed}
        sources = {
            r.reward_source
            for r in rounds.logged_rounds(session)
            if (r.event_id, r.position) in keys
        }
    assert sources and RewardSource.CURATOR_PROXY not in sources


def _ranked(session: Session, runtime: EngineRuntime, context: dict) -> Decision:
    decision, _ = decisions.rank(session, runtime, decisions.RankRequest(context=context))
    session.commit()
    return decision


@pytest.mark.parametrize("sent_by", ["sla_overflow", "client_fallback"])
@pytest.mark.parametrize("answer", ["customer", "default"])
def test_an_apprentice_slate_a_human_chose_makes_no_round_but_one_sent_unreviewed_does(
    session: Session, demo_catalog: DemoCatalog, answer: str, sent_by: str
) -> None:
    config = PolicyConfig(
        routing_mode="apprentice",
        double_review_share=0.0,
        review_sla_seconds=WAIT_SECONDS,
        overflow_policy="deliver_unreviewed",
        reward_wait_seconds=WAIT_SECONDS,
    )
    configs.save_config(session, config, created_by="test", activate=True)
    curator = accounts.add_curator(session, "apprentice-teacher", "long-enough-pw")
    session.commit()
    runtime = EngineRuntime(np.random.default_rng(0))
    chosen = _ranked(session, runtime, demo_catalog.customers[0])
    task = review.claim_next(session, curator.id)
    session.commit()
    assert task is not None and task.decision_id == chosen.id
    keep_all = [ItemVerdict(p.position, "keep") for p in chosen.proposed]
    review.submit_review(session, task.id, curator.id, task.lease_token or "", keep_all, 5.0)
    session.commit()
    # A client service delivers its own slate: the policy's first two items, in its order.
    by_client = _ranked(session, runtime, demo_catalog.customers[2])
    mostly_policy = [p.item_id for p in by_client.proposed[:2]]
    assert apprentice.record_client_choice(session, by_client, mostly_policy, utcnow())
    session.commit()
    # Nobody reviews the next one in time: the policy's slate goes out unreviewed, when the
    # SLA runs out or, sooner, when the client's fallback time does.
    if sent_by == "sla_overflow":
        unreviewed = _ranked(session, runtime, demo_catalog.customers[1])
        sent_at = utcnow() + timedelta(seconds=2 * WAIT_SECONDS)
        assert upkeep(session, sent_at).delivered_unreviewed == 1
    else:
        request = decisions.RankRequest(context=demo_catalog.customers[1], fallback_seconds=120)
        unreviewed, _ = decisions.rank(session, runtime, request)
        session.commit()
        sent_at = utcnow() + timedelta(seconds=121)
        assert upkeep(session, sent_at).fallbacks_delivered == 1
    session.commit()
    if answer == "customer":
        rewards.record_reward(session, chosen.event_id, 1.0, None, "test")
        rewards.record_reward(session, by_client.event_id, 1.0, None, "test")
        rewards.record_reward(session, unreviewed.event_id, 1.0, None, "test", now=sent_at)
        session.commit()
    report = learning.learn_pending(session, now=sent_at + timedelta(days=30))
    session.commit()
    learned = {(r.event_id, r.position, r.reward_source) for r in report.rounds}
    assert learned == {(unreviewed.event_id, p.position, answer) for p in unreviewed.proposed}
    assert {(r.event_id, r.position, r.reward_source) for r in rounds.logged_rounds(session)} == (
        learned
    )


def test_a_keep_after_undoing_a_remove_is_no_curator_proxy(
    session: Session, demo_catalog: DemoCatalog
) -> None:
    config = PolicyConfig(
        routing_mode="review_before", double_review_share=0.0, reward_wait_seconds=WAIT_SECONDS
    )
    configs.save_config(session, config, created_by="test", activate=True)
    curator = accounts.add_curator(session, "undoer", "long-enough-pw")
    session.commit()
    decision = _ranked(session, EngineRuntime(np.random.default_rng(0)), demo_catalog.customers[0])
    task = review.claim_next(session, curator.id)
    session.commit()
    assert task is not None and task.decision_id == decision.id
    keep_all = [ItemVerdict(p.position, "keep") for p in decision.proposed]
    remove_one = [v if v.position != 1 else ItemVerdict(1, "remove") for v in keep_all]
    review.submit_review(session, task.id, curator.id, task.lease_token or "", remove_one, 5.0)
    session.commit()
    # The slate without position 1 went out; the curator undoes, then keeps everything.
    task = undo_submit(session, task.id, curator.id)
    session.commit()
    review.submit_review(session, task.id, curator.id, task.lease_token or "", keep_all, 5.0)
    session.commit()
    session.refresh(decision)
    assert decision.proposed[1].item_id not in policy_items_delivered(decision)
    later = utcnow() + timedelta(seconds=WAIT_SECONDS + 60)
    learned = learning.learn_pending(session, now=later).rounds
    session.commit()
    # The customer never got it and a keep is never a proxy: position 1 has no round at all.
    expected = {(p.position, RewardSource.DEFAULT) for p in decision.proposed if p.position != 1}
    assert {(r.position, r.reward_source) for r in learned} == expected
    stored = rounds.logged_rounds(session, [decision.id])
    assert {(r.position, r.reward_source) for r in stored} == expected


@pytest.mark.parametrize("per_item", [False, True], ids=["event", "item"])
def test_a_customer_outcome_after_the_wait_is_late_even_before_the_default_pass(
    session: Session, demo_catalog: DemoCatalog, per_item: bool
) -> None:
    config = PolicyConfig(
        routing_mode="review_after", reward_wait_seconds=WAIT_SECONDS, default_reward=0.25
    )
    configs.save_config(session, config, created_by="test", activate=True)
    session.commit()
    decision = _ranked(session, EngineRuntime(np.random.default_rng(0)), demo_catalog.customers[0])
    assert decision.reward_due_at is not None
    answered = decision.proposed[0].item_id
    # The customer answers a minute after the wait ran out; no default pass has run yet.
    rewards.record_reward(
        session,
        decision.event_id,
        1.0,
        answered if per_item else None,
        "test",
        now=decision.reward_due_at + timedelta(minutes=1),
    )
    session.commit()
    report = learning.learn_pending(session, now=decision.reward_due_at + timedelta(minutes=2))
    session.commit()
    late = {p.item_id: 1.0 for p in decision.proposed if not per_item or p.item_id == answered}
    expected = {
        (p.position, RewardSource.DEFAULT, 0.25, late.get(p.item_id)) for p in decision.proposed
    }
    fed = {(r.position, r.reward_source, r.reward, r.late_reward) for r in report.rounds}
    assert fed == expected
    stored = rounds.logged_rounds(session, [decision.id])
    assert {(r.position, r.reward_source, r.reward, r.late_reward) for r in stored} == expected
    # The customer's late value is kept for replay, never given to VW, and learned once.
    customer = next(o for o in _outcomes(session, decision) if not o.is_default)
    assert customer.fed_to_policy is False and customer.learned_at is not None
    assert (
        learning.learn_pending(session, now=decision.reward_due_at + timedelta(days=1)).rounds == ()
    )


def _answer(session: Session, decision: Decision, index: int) -> None:
    """In-time and late customer outcomes of every kind, some answering every delivered item."""
    delivered = [entry["item_id"] for entry in decision.delivered_slate or []]
    if not delivered or decision.reward_due_at is None:
        return
    late = decision.reward_due_at + timedelta(seconds=30)
    kind = index % 6
    if kind == 1:
        rewards.record_reward(session, decision.event_id, 1.0, None, "test")
    elif kind == 2:  # every delivered item (swap-ins too) answered in time
        rewards.record_rewards(session, decision.event_id, [(i, 1.0) for i in delivered], "test")
    elif kind == 3:
        rewards.record_rewards(session, decision.event_id, [(delivered[0], 0.0)], "test")
    elif kind == 4:  # every item answered, the last one after the wait
        answers = [(i, 1.0) for i in delivered]
        rewards.record_rewards(session, decision.event_id, answers[:-1], "test")
        rewards.record_rewards(session, decision.event_id, answers[-1:], "test", now=late)
    elif kind == 5:
        rewards.record_reward(session, decision.event_id, 0.0, None, "test", now=late)


def test_the_default_pass_leaves_the_rounds_as_a_default_for_every_event_would(
    session: Session, demo_catalog: DemoCatalog
) -> None:
    """No default is written for an event whose delivered items all have an outcome, and the
    rounds are exactly those of the old pass, which gave such events a default anyway."""
    runtime = EngineRuntime(np.random.default_rng(3))
    curator_id = accounts.add_curator(session, "default-curator", "rounds-password-1").id
    session.commit()
    index = 0
    for settings in ROUTE_CONFIGS:
        config = PolicyConfig(
            name="defaults",
            candidate_count=10,
            slate_size=4,
            reward_wait_seconds=WAIT_SECONDS,
            default_reward=0.5,
            **settings,
        )
        configs.save_config(session, config, created_by="test", activate=True)
        session.commit()
        for _ in range(2 * EVENTS_PER_ROUTE):
            context = demo_catalog.customers[index % len(demo_catalog.customers)]
            decision = _ranked(session, runtime, context)
            task = review.claim_next(session, curator_id)
            session.commit()
            if task is not None:
                lease = task.lease_token or ""
                verdicts = _verdicts(task.decision, index)
                review.submit_review(session, task.id, curator_id, lease, verdicts, 9.0)
                session.commit()
            session.refresh(decision)
            _answer(session, decision, index)
            session.commit()
            index += 1
    later = utcnow() + timedelta(seconds=WAIT_SECONDS + 600)
    learning.learn_pending(session, now=later)
    session.commit()
    # A customer answering an item after its default: late, covered by the default.
    defaulted = session.scalars(
        select(Outcome).where(Outcome.is_default.is_(True)).order_by(Outcome.id)
    ).first()
    assert defaulted is not None
    answered_late = session.get(Decision, defaulted.decision_id)
    assert answered_late is not None
    stored = {o.item_key for o in _outcomes(session, answered_late)}
    unanswered = next(
        e["item_id"] for e in answered_late.delivered_slate or [] if e["item_id"] not in stored
    )
    rewards.record_reward(session, answered_late.event_id, 1.0, unanswered, "test", now=later)
    session.commit()
    routes = {d.route for d in session.query(Decision)}
    assert routes == set(Route)
    now_rounds = rounds.logged_rounds(session)
    sources = {r.reward_source for r in now_rounds}
    assert sources == set(RewardSource) and any(r.late_reward is not None for r in now_rounds)

    # What the pass before this change did: a default for every overdue delivered event
    # without an event-level outcome, whether or not it stood for any item.
    skipped = [
        d
        for d in session.query(Decision).order_by(Decision.id)
        if d.delivered_at is not None
        and not {o.item_key for o in _outcomes(session, d)} & {"", rewards.DEFAULT_KEY}
    ]
    assert len(skipped) >= 2 * len(ROUTE_CONFIGS)
    for d in skipped:
        covered = {o.item_key for o in _outcomes(session, d)}
        assert {e["item_id"] for e in d.delivered_slate or []} <= covered
        session.add(
            Outcome(
                decision_id=d.id,
                item_key=rewards.DEFAULT_KEY,
                value=0.5,
                is_default=True,
                after_default=False,
                source=RewardSource.DEFAULT,
                created_at=later,
            )
        )
    session.flush()
    assert rounds.logged_rounds(session) == now_rounds
