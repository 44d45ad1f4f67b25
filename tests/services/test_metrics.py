"""The dashboard's numbers: the queue's history, and the mean customer reward per position."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from bandit.db.models import Decision, ReviewTask
from bandit.engine.config import PolicyConfig
from bandit.services import accounts, configs, decisions, metrics, review, rewards
from bandit.services.delivery import delivered_slate
from bandit.services.review import ItemVerdict, overflow
from bandit.services.runtime import EngineRuntime
from tests.conftest import DemoCatalog

HOUR = timedelta(hours=1)
# A quarter past the hour, so the buckets' ends fall 0.75 h, 1.75 h, ... after intake.
T0 = datetime(2026, 3, 2, 10, 15, tzinfo=UTC)


def _rank(session: Session, catalog: DemoCatalog, count: int, **settings: object) -> list[str]:
    config = PolicyConfig(**settings)  # type: ignore[arg-type]
    configs.save_config(session, config, "test", activate=True)
    session.commit()
    runtime = EngineRuntime(np.random.default_rng(5))
    events = []
    for context in catalog.customers[:count]:
        decision, _ = decisions.rank(
            session, runtime, decisions.RankRequest(context=context), now=T0
        )
        session.commit()
        events.append(decision.event_id)
    return events


def _queue(session: Session, until: datetime) -> tuple[list[float], list[float]]:
    history = metrics.queue_history(session, T0, until, HOUR)
    return history.lines["tasks waiting"], [round(h, 2) for h in history.lines["oldest wait (h)"]]


@pytest.mark.parametrize(
    ("routing_mode", "policy", "closed_as"),
    [
        ("review_before", "deliver_unreviewed", "delivered_unreviewed"),
        # The slate went out at intake: past its SLA the check is closed, nothing delivered.
        ("review_after", "deliver_unreviewed", "closed_unreviewed"),
    ],
)
def test_the_queue_chart_keeps_the_waits_of_tasks_that_overflowed_since(
    session: Session, demo_catalog: DemoCatalog, routing_mode: str, policy: str, closed_as: str
) -> None:
    """Three tasks at 10:15, SLA 4 h, overflowed by the upkeep pass at 15:15. Before and after
    that pass the past buckets read the same: 3 waiting, the oldest for 0.75 h at 11:00 ...
    4.75 h at 15:00 (past the SLA); from 16:00 none."""
    _rank(session, demo_catalog, 3, routing_mode=routing_mode, overflow_policy=policy,
          slate_size=3, candidate_count=10, review_sla_seconds=4 * 3600)  # fmt: skip
    before = _queue(session, T0 + 3 * HOUR)
    assert before == ([3.0] * 4, [0.75, 1.75, 2.75, 3.0])
    overflow.upkeep(session, T0 + 5 * HOUR)
    session.commit()
    tasks = session.scalars(select(ReviewTask)).all()
    assert {(t.status, t.overflow) for t in tasks} == {("overflowed", closed_as)}
    assert _queue(session, T0 + 3 * HOUR) == before
    waiting, oldest = _queue(session, T0 + 6 * HOUR)
    assert waiting == [3.0] * 5 + [0.0, 0.0]
    assert oldest == [0.75, 1.75, 2.75, 3.75, 4.75, 0.0, 0.0]


def test_held_tasks_keep_waiting_and_tasks_overflowed_at_intake_never_wait(
    session: Session, demo_catalog: DemoCatalog
) -> None:
    """Hold policy: past the SLA a task is held, still waiting. A task created overflowed
    because the queue was full went out unreviewed at once: it never waited."""
    _rank(session, demo_catalog, 2, routing_mode="review_before", overflow_policy="hold",
          slate_size=3, candidate_count=10, review_sla_seconds=4 * 3600)  # fmt: skip
    overflow.upkeep(session, T0 + 5 * HOUR)
    session.commit()
    assert _queue(session, T0 + 6 * HOUR)[0] == [2.0] * 7
    session.execute(delete(ReviewTask))
    _rank(session, demo_catalog, 2, routing_mode="review_before", slate_size=3,
          candidate_count=10, curator_capacity_per_hour=1, review_sla_seconds=3600)  # fmt: skip
    statuses = [t.status for t in session.scalars(select(ReviewTask).order_by(ReviewTask.id))]
    assert statuses == ["open", "overflowed"]
    assert _queue(session, T0 + 2 * HOUR)[0] == [1.0, 1.0, 1.0]


def test_the_mean_reward_is_per_delivered_position_as_the_learner_sees_it(
    session: Session, demo_catalog: DemoCatalog
) -> None:
    """Event X rewards its five items 1, 0, 0, 0, 0; event Y rewards the whole event 1.0, which
    the learner applies to each of its five positions: 6 / 10 = 0.6, not 2 / 6 per row."""
    x, y = _rank(session, demo_catalog, 2, routing_mode="review_after", slate_size=5,
                 candidate_count=10, reward_wait_seconds=3600)  # fmt: skip
    items = [p.item_id for p in session.scalars(select(Decision).where(Decision.event_id == x))
             .one().proposed]  # fmt: skip
    assert len(items) == 5
    rewards.record_rewards(session, x, [(items[0], 1.0)] + [(i, 0.0) for i in items[1:]],
                           "client:test", now=T0 + timedelta(minutes=5))  # fmt: skip
    rewards.record_rewards(session, y, [(None, 1.0)], "client:test", now=T0 + timedelta(minutes=5))
    session.commit()
    by_policy = metrics.mean_reward_by(session, "policy")
    assert {k: (v.mean, v.positions) for k, v in by_policy.items()} == {"default v1": (0.6, 10)}
    # The two customers are of different segments: X's mean is its own, 1 / 5.
    segment_x, segment_y = (str(c["segment"]) for c in demo_catalog.customers[:2])
    by_segment = metrics.mean_reward_by(session, "segment")
    assert {k: (v.mean, v.positions) for k, v in by_segment.items()} == {
        segment_x: (0.2, 5),
        segment_y: (1.0, 5),
    }


def test_a_curators_swap_in_counts_in_what_customers_got(
    session: Session, demo_catalog: DemoCatalog
) -> None:
    """Review before output: the curator swaps the first of three items for a spare, and the
    customer keeps the swap-in (1) and returns the policy's two (0). The customer got three
    items, one kept: 1 / 3, though the policy's own positions alone would read 0 / 2."""
    (event,) = _rank(session, demo_catalog, 1, routing_mode="review_before", slate_size=3,
                     candidate_count=10, reward_wait_seconds=3600)  # fmt: skip
    curator = accounts.add_curator(session, "metrics-curator", "metrics-password-1")
    task = review.claim_next(session, curator.id, now=T0)
    assert task is not None
    decision = task.decision
    slate = [p.item_id for p in decision.proposed]
    spare = next(c["item_id"] for c in decision.candidates if c["item_id"] not in slate)
    verdicts = [ItemVerdict(p.position, "keep") for p in decision.proposed]
    verdicts[0] = ItemVerdict(0, "swap", spare, "closer to the brief")
    review.submit_review(session, task.id, curator.id, task.lease_token or "", verdicts, 9.0, T0)
    session.commit()
    got = {e["item_id"]: e["position"] for e in delivered_slate(decision)}
    assert got == {spare: 0, slate[1]: 1, slate[2]: 2}
    outcomes = [(spare, 1.0), (slate[1], 0.0), (slate[2], 0.0)]
    rewards.record_rewards(session, event, outcomes, "client:test", now=T0 + HOUR / 2)
    session.commit()
    by_policy = metrics.mean_reward_by(session, "policy")
    assert {k: (round(v.mean, 4), v.positions) for k, v in by_policy.items()} == {
        "default v1": (0.3333, 3)
    }
    segment = str(demo_catalog.customers[0]["segment"])
    assert metrics.mean_reward_by(session, "segment")[segment].positions == 3
