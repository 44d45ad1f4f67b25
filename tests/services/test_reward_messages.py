"""What a `rewarded` message (and the event document's outcomes) tells the client: whether the
reward came after the wait and what the learner used instead, which items a default stands
for, and no default at all when every delivered item was answered."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bandit.db.models import Decision, EventChange, Outcome
from bandit.engine.config import PolicyConfig
from bandit.engine.vocabulary import EventChangeKind, RewardSource, RoutingMode
from bandit.services import configs, decisions, rewards, rounds
from bandit.services.delivery import delivered_slate
from bandit.services.runtime import EngineRuntime
from curation_app import event_schemas, event_views
from tests.conftest import DemoCatalog

WAIT = 60
DEFAULT = 0.25


def _delivered(session: Session, demo_catalog: DemoCatalog) -> Decision:
    config = PolicyConfig(
        routing_mode=RoutingMode.PARTIAL,
        auto_threshold=0.0,
        review_threshold=0.0,
        reward_wait_seconds=WAIT,
        default_reward=DEFAULT,
    )
    configs.save_config(session, config, "test", activate=True)
    session.commit()
    runtime = EngineRuntime(np.random.default_rng(4))
    request = decisions.RankRequest(context=demo_catalog.customers[1])
    decision, _ = decisions.rank(session, runtime, request)
    session.commit()
    assert decision.reward_due_at is not None and decision.delivered_slate
    return decision


def _items(decision: Decision) -> list[str]:
    return [entry["item_id"] for entry in delivered_slate(decision)]


def _messages(session: Session, decision: Decision) -> list[dict[str, Any]]:
    changes = session.scalars(
        select(EventChange)
        .where(EventChange.decision_id == decision.id, EventChange.kind == EventChangeKind.REWARDED)
        .order_by(EventChange.id)
    )
    payloads = [dict(change.payload) for change in changes]
    for payload in payloads:
        event_schemas.RewardedData.model_validate(payload)
    return payloads


def _document_outcomes(session: Session, decision: Decision) -> list[dict[str, Any]]:
    return event_views.event_view(session, decision, include_candidates=False)["outcomes"]


FIELDS = ("item_id", "item_ids", "value", "is_default", "after_default", "late", "learned_instead")


def _facts(entries: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [tuple(entry[field] for field in FIELDS) for entry in entries]


@pytest.mark.parametrize("per_item", [False, True], ids=["event", "item"])
def test_a_reward_after_the_wait_says_it_is_late_and_what_the_learner_used_instead(
    session: Session, demo_catalog: DemoCatalog, per_item: bool
) -> None:
    decision = _delivered(session, demo_catalog)
    assert decision.reward_due_at is not None
    items = _items(decision)
    item = items[0] if per_item else None
    # Sent after the wait ran out, before any default pass (the reviewer's case: 90 s after
    # delivery with a 60 s wait).
    late_at = decision.reward_due_at + timedelta(seconds=30)
    rewards.record_reward(session, decision.event_id, 1.0, item, "client", now=late_at)
    session.commit()
    covered = [item] if per_item else items
    expected = [(item, covered, 1.0, False, False, True, DEFAULT)]
    assert _facts(_messages(session, decision)) == expected
    assert _facts(_document_outcomes(session, decision)) == expected
    # What the message says is what the learner uses: the default, the late value kept aside.
    learned = rounds.logged_rounds(session, [decision.id])
    on_covered = [r for r in learned if r.chosen_item_id in covered]
    assert on_covered and all(
        (r.reward, r.reward_source, r.late_reward) == (DEFAULT, RewardSource.DEFAULT, 1.0)
        for r in on_covered
    )


def test_a_reward_in_time_is_not_late_and_the_learner_uses_it(
    session: Session, demo_catalog: DemoCatalog
) -> None:
    decision = _delivered(session, demo_catalog)
    assert decision.reward_due_at is not None
    in_time = decision.reward_due_at - timedelta(seconds=1)
    rewards.record_reward(session, decision.event_id, 1.0, None, "client", now=in_time)
    session.commit()
    expected = [(None, _items(decision), 1.0, False, False, False, None)]
    assert _facts(_messages(session, decision)) == expected
    assert _facts(_document_outcomes(session, decision)) == expected
    learned = rounds.logged_rounds(session, [decision.id])
    assert {(r.reward, r.reward_source) for r in learned} == {(1.0, RewardSource.CUSTOMER)}


def test_a_default_lists_the_items_it_stands_for_and_a_reward_after_it_is_late(
    session: Session, demo_catalog: DemoCatalog
) -> None:
    decision = _delivered(session, demo_catalog)
    assert decision.reward_due_at is not None
    items = _items(decision)
    for item in items[:2]:
        rewards.record_reward(session, decision.event_id, 1.0, item, "client")
    session.commit()
    after_wait = decision.reward_due_at + timedelta(seconds=10)
    assert rewards.assign_default_rewards(session, after_wait) == 1
    session.commit()
    rewards.record_reward(
        session, decision.event_id, 0.0, items[2], "client", now=after_wait + timedelta(seconds=5)
    )
    session.commit()
    expected = [
        (items[0], [items[0]], 1.0, False, False, False, None),
        (items[1], [items[1]], 1.0, False, False, False, None),
        (None, items[2:], DEFAULT, True, False, False, None),
        (items[2], [items[2]], 0.0, False, True, True, DEFAULT),
    ]
    assert _facts(_messages(session, decision)) == expected
    assert _facts(_document_outcomes(session, decision)) == expected


@pytest.mark.parametrize("one_late", [False, True], ids=["all_in_time", "one_late"])
def test_no_default_when_every_delivered_item_has_its_outcome(
    session: Session, demo_catalog: DemoCatalog, one_late: bool
) -> None:
    decision = _delivered(session, demo_catalog)
    assert decision.reward_due_at is not None
    items = _items(decision)
    report: list[tuple[str | None, float]] = [(item, 1.0) for item in items]
    rewards.record_rewards(session, decision.event_id, report[:-1] if one_late else report, "c")
    if one_late:
        # Its own message already says the learner uses the default for it.
        late_at = decision.reward_due_at + timedelta(seconds=1)
        rewards.record_rewards(session, decision.event_id, report[-1:], "c", now=late_at)
    session.commit()
    rounds_before = rounds.logged_rounds(session, [decision.id])
    passed = decision.reward_due_at + timedelta(seconds=120)
    assert rewards.assign_default_rewards(session, passed) == 0
    assert rewards.assign_default_rewards(session, passed + timedelta(days=1)) == 0
    session.commit()
    stored = session.scalars(select(Outcome).where(Outcome.decision_id == decision.id)).all()
    assert not any(o.is_default for o in stored)
    messages = _messages(session, decision)
    assert len(messages) == len(items) and not any(m["is_default"] for m in messages)
    assert [m["late"] for m in messages] == [False] * (len(items) - 1) + [one_late]
    assert rounds.logged_rounds(session, [decision.id]) == rounds_before
    # The pass settled the event: it is not read again on every later pass.
    session.refresh(decision)
    assert decision.default_pass_at == passed
