"""A customer's report of a slate's rewards in one call: the same answers as one by one."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bandit.db.models import Decision, EventChange, Outcome
from bandit.engine.config import PolicyConfig
from bandit.engine.vocabulary import DecisionStatus, EventChangeKind, RoutingMode
from bandit.services import configs, decisions, rewards
from bandit.services.delivery import policy_items_delivered
from bandit.services.runtime import EngineRuntime
from tests.conftest import DemoCatalog


def _delivered(session: Session, demo_catalog: DemoCatalog) -> Decision:
    config = PolicyConfig(
        routing_mode=RoutingMode.PARTIAL, auto_threshold=0.0, review_threshold=0.0
    )
    configs.save_config(session, config, "test", activate=True)
    session.commit()
    runtime = EngineRuntime(np.random.default_rng(4))
    request = decisions.RankRequest(context=demo_catalog.customers[1])
    decision, _ = decisions.rank(session, runtime, request)
    session.commit()
    assert decision.status == DecisionStatus.DELIVERED
    return decision


def _stored(session: Session, decision: Decision) -> tuple[int, int]:
    outcomes = session.scalar(
        select(func.count()).select_from(Outcome).where(Outcome.decision_id == decision.id)
    )
    changes = session.scalar(
        select(func.count())
        .select_from(EventChange)
        .where(EventChange.decision_id == decision.id, EventChange.kind == EventChangeKind.REWARDED)
    )
    return int(outcomes or 0), int(changes or 0)


def test_a_report_stores_each_reward_once_with_one_change_each(
    session: Session, demo_catalog: DemoCatalog
) -> None:
    decision = _delivered(session, demo_catalog)
    items = policy_items_delivered(decision)
    report: list[tuple[str | None, float]] = [(item, float(i % 2)) for i, item in enumerate(items)]
    first = rewards.record_rewards(session, decision.event_id, report, "test")
    session.commit()
    assert [created for _, created in first] == [True] * len(items)
    assert [o.value for o, _ in first] == [v for _, v in report]
    assert _stored(session, decision) == (len(items), len(items))
    again = rewards.record_rewards(session, decision.event_id, report, "test")
    session.commit()
    assert [created for _, created in again] == [False] * len(items)
    assert [o.id for o, _ in again] == [o.id for o, _ in first]
    assert _stored(session, decision) == (len(items), len(items))
    assert decision.status == DecisionStatus.REWARDED


def test_a_report_after_single_rewards_creates_only_the_new_ones(
    session: Session, demo_catalog: DemoCatalog
) -> None:
    decision = _delivered(session, demo_catalog)
    items = policy_items_delivered(decision)
    rewards.record_reward(session, decision.event_id, 1.0, items[0], "test")
    session.commit()
    report: list[tuple[str | None, float]] = [(item, 1.0) for item in items]
    answers = rewards.record_rewards(session, decision.event_id, report, "test")
    assert [created for _, created in answers] == [False] + [True] * (len(items) - 1)
    # The same item twice in one report, same value: accepted once, as one by one would.
    twice = rewards.record_rewards(session, decision.event_id, [(items[0], 1.0)] * 2, "test")
    assert [created for _, created in twice] == [False, False]


@pytest.mark.parametrize(
    ("report", "error", "match"),
    [
        ([(0, 1.0), (0, 0.0)], rewards.RewardConflict, "already recorded"),
        ([(0, 1.0), ("not-on-the-slate", 1.0)], rewards.RewardError, "neither in the delivered"),
        ([(0, 1.0), (None, 1.0)], rewards.RewardConflict, "per-item rewards"),
        ([(None, 1.0), (0, 1.0)], rewards.RewardConflict, "event-level reward"),
        ([(0, 1.0), (1, float("nan"))], rewards.RewardError, "finite number"),
    ],
)
def test_a_refused_reward_refuses_the_whole_report_and_writes_nothing(
    session: Session,
    demo_catalog: DemoCatalog,
    report: list[tuple[int | str | None, float]],
    error: type[Exception],
    match: str,
) -> None:
    decision = _delivered(session, demo_catalog)
    items = policy_items_delivered(decision)
    named: list[tuple[str | None, float]] = [
        (items[i] if isinstance(i, int) else i, value) for i, value in report
    ]
    with pytest.raises(error, match=match):
        rewards.record_rewards(session, decision.event_id, named, "test")
    assert _stored(session, decision) == (0, 0)


def test_a_report_for_an_unknown_event_is_not_found(
    session: Session, demo_catalog: DemoCatalog
) -> None:
    with pytest.raises(rewards.EventNotFound):
        rewards.record_rewards(session, "no-such-event", [(None, 1.0)], "test")
