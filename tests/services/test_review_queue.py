"""The review queue: uncertainty order with aging, leases, heartbeats, overflow past capacity."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import numpy as np
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from bandit.db.models import Decision, EventChange, ReviewTask, utcnow
from bandit.db.session import make_engine, make_session_factory
from bandit.engine.config import PolicyConfig
from bandit.engine.vocabulary import DecisionStatus
from bandit.services import accounts, configs, decisions, review
from bandit.services.review import overflow
from bandit.services.review import queue as review_queue
from bandit.services.review.undo import undo_submit
from bandit.services.runtime import EngineRuntime
from curation_app import event_views
from tests.api_support import snapshot
from tests.conftest import DemoCatalog
from tests.statement_log import data_statements, recorded_statements

SLA = 3600


def rank_many(session: Session, catalog: DemoCatalog, count: int, **when: object) -> list[Decision]:
    runtime = EngineRuntime(np.random.default_rng(0))
    made = []
    for index in range(count):
        context = catalog.customers[index % len(catalog.customers)]
        decision, _ = decisions.rank(
            session,
            runtime,
            decisions.RankRequest(context=context),
            **when,  # type: ignore[arg-type]
        )
        session.commit()
        made.append(decision)
    return made


@pytest.fixture
def curators(session: Session) -> list[int]:
    ids = [accounts.add_curator(session, f"c{i}", "long-enough-pw").id for i in range(3)]
    session.commit()
    return ids


def use_config(session: Session, **settings: object) -> PolicyConfig:
    config = PolicyConfig(review_sla_seconds=SLA, **settings)  # type: ignore[arg-type]
    configs.save_config(session, config, "test", activate=True)
    session.commit()
    return config


def test_intake_orders_by_the_configured_measure(
    session: Session, demo_catalog: DemoCatalog
) -> None:
    use_config(session, routing_mode="review_before", uncertainty_measure="entropy")
    (decision,) = rank_many(session, demo_catalog, 1)
    task = session.scalars(select(ReviewTask)).one()
    assert task.measure_name == "entropy"
    assert task.priority == pytest.approx(decision.uncertainty["entropy"])
    assert task.due_at == task.created_at + timedelta(seconds=SLA)
    expected_key = task.created_at.timestamp() - task.priority * SLA
    assert task.queue_key == pytest.approx(expected_key)


def test_an_old_dull_task_overtakes_fresh_informative_ones(
    session: Session, demo_catalog: DemoCatalog, curators: list[int]
) -> None:
    use_config(session, routing_mode="review_before")
    now = utcnow()
    old, fresh_1, fresh_2 = rank_many(session, demo_catalog, 3)
    # Measures and ages set by hand: the old task is the least informative.
    plan = {old.id: (0.05, now - timedelta(seconds=SLA)), fresh_1.id: (0.9, now)}
    plan[fresh_2.id] = (0.6, now)
    for task in session.scalars(select(ReviewTask)):
        measure, created = plan[task.decision_id]
        task.priority, task.created_at = measure, created
        task.due_at = created + timedelta(seconds=SLA)
        task.queue_key = review_queue.queue_key(created, measure, SLA)
    session.commit()

    order = [review.claim_next(session, c, now=now) for c in curators]
    assert [t.decision_id for t in order if t] == [old.id, fresh_1.id, fresh_2.id]
    shown = {t.decision_id: review_queue.priority_at(t, now) for t in order if t}
    assert shown[old.id] == pytest.approx(1.05)  # 0.05 + one full SLA of waiting
    assert shown[fresh_1.id] == pytest.approx(0.9)


def test_heartbeat_extends_a_live_lease_and_not_an_expired_one(
    session: Session, demo_catalog: DemoCatalog, curators: list[int]
) -> None:
    use_config(session, routing_mode="review_before", review_lease_seconds=60)
    rank_many(session, demo_catalog, 1)
    now = utcnow()
    task = review.claim_next(session, curators[0], now=now)
    session.commit()
    assert task is not None and task.leased_until == now + timedelta(seconds=60)
    token = task.lease_token or ""
    renewed = review.renew_lease(
        session, task.id, curators[0], token, now=now + timedelta(seconds=50)
    )
    session.commit()
    assert renewed == now + timedelta(seconds=110)
    with pytest.raises(review.LeaseLost):
        review.renew_lease(session, task.id, curators[1], token, now=now + timedelta(seconds=60))
    session.rollback()
    session.commit()
    before = snapshot(sessionmaker(bind=session.get_bind()))
    with pytest.raises(review.LeaseLost, match="nothing was saved"):
        review.renew_lease(session, task.id, curators[0], token, now=now + timedelta(seconds=111))
        session.commit()
    session.rollback()
    assert snapshot(sessionmaker(bind=session.get_bind())) == before


def test_an_expired_lease_returns_the_task_and_refuses_the_late_submit(
    session_factory: sessionmaker[Session], demo_catalog: DemoCatalog, curators: list[int]
) -> None:
    with session_factory() as session:
        use_config(session, routing_mode="review_before", review_lease_seconds=60)
        rank_many(session, demo_catalog, 1)
        now = utcnow()
        task = review.claim_next(session, curators[0], now=now)
        session.commit()
        assert task is not None
        token, task_id = task.lease_token or "", task.id
        verdicts = [review.ItemVerdict(p.position, "keep") for p in task.decision.proposed]
    later = now + timedelta(seconds=61)
    with session_factory() as session:
        report = overflow.upkeep(session, later)
        session.commit()
    assert report.leases_expired == 1
    with session_factory() as session:
        requeued = session.get(ReviewTask, task_id)
        assert requeued is not None and requeued.status == "open" and requeued.curator_id is None
        assert requeued.decision.status == DecisionStatus.PENDING_REVIEW
    before = snapshot(session_factory)
    with session_factory() as session, pytest.raises(review.LeaseLost, match="no longer leased"):
        review.submit_review(session, task_id, curators[0], token, verdicts, 5.0, now=later)
        session.commit()
    session.rollback()
    assert snapshot(session_factory) == before
    with session_factory() as session:
        assert review.claim_next(session, curators[1], now=later).id == task_id  # type: ignore[union-attr]
        session.commit()


def test_a_submit_after_the_lease_ran_out_but_before_upkeep_is_refused(
    session_factory: sessionmaker[Session], demo_catalog: DemoCatalog, curators: list[int]
) -> None:
    with session_factory() as session:
        use_config(session, routing_mode="review_before", review_lease_seconds=60)
        rank_many(session, demo_catalog, 1)
        now = utcnow()
        task = review.claim_next(session, curators[0], now=now)
        session.commit()
        assert task is not None
        verdicts = [review.ItemVerdict(p.position, "keep") for p in task.decision.proposed]
        token, task_id = task.lease_token or "", task.id
    before = snapshot(session_factory)
    with session_factory() as session, pytest.raises(review.LeaseLost):
        late = now + timedelta(seconds=61)
        review.submit_review(session, task_id, curators[0], token, verdicts, 5.0, now=late)
        session.commit()
    session.rollback()
    assert snapshot(session_factory) == before


@pytest.mark.parametrize("policy", ["deliver_unreviewed", "hold"])
def test_tasks_beyond_capacity_follow_the_overflow_policy(
    session: Session, demo_catalog: DemoCatalog, policy: str
) -> None:
    # One curator-task per hour and a one-hour SLA: the second waiting task overflows.
    use_config(
        session, routing_mode="review_before", curator_capacity_per_hour=1, overflow_policy=policy
    )
    first, second = rank_many(session, demo_catalog, 2)
    tasks = {t.decision_id: t for t in session.scalars(select(ReviewTask))}
    assert tasks[first.id].status == "open" and tasks[first.id].overflow is None
    assert first.status == DecisionStatus.PENDING_REVIEW
    summary = review_queue.queue_summary(session, utcnow())
    if policy == "deliver_unreviewed":
        assert tasks[second.id].status == "overflowed"
        assert tasks[second.id].overflow == "delivered_unreviewed"
        assert second.status == DecisionStatus.DELIVERED
        assert {(f.tag, f.decided_by) for f in second.final_slate} == {("kept", "policy")}
        assert (summary.open, summary.overflowed, summary.held) == (1, 1, 0)
    else:
        assert tasks[second.id].status == "open" and tasks[second.id].overflow == "held"
        assert second.status == DecisionStatus.PENDING_REVIEW and not second.final_slate
        assert (summary.open, summary.overflowed, summary.held) == (2, 0, 1)
    view = event_views.event_view(session, second)
    assert view["review"]["overflow"] == tasks[second.id].overflow


@pytest.mark.parametrize("policy", ["deliver_unreviewed", "hold"])
def test_a_review_after_check_beyond_capacity_is_labelled_as_upkeep_labels_it(
    session: Session, demo_catalog: DemoCatalog, policy: str
) -> None:
    # Both slates go out at rank (review-after); only the second check is past capacity.
    use_config(
        session, routing_mode="review_after", curator_capacity_per_hour=1, overflow_policy=policy
    )
    first, second = rank_many(session, demo_catalog, 2)
    tasks = {t.decision_id: t for t in session.scalars(select(ReviewTask))}
    for decision in (first, second):
        assert decision.status == DecisionStatus.DELIVERED
        kinds = session.scalars(
            select(EventChange.kind).where(EventChange.decision_id == decision.id)
        )
        assert list(kinds) == ["delivered"]  # the route's own delivery, nothing more
    summary = review_queue.queue_summary(session, utcnow())
    if policy == "deliver_unreviewed":
        # The check is dropped; its slate went out because of its route, not the overflow.
        assert (tasks[second.id].status, tasks[second.id].overflow) == (
            "overflowed",
            "closed_unreviewed",
        )
        assert (summary.open, summary.overflowed, summary.held) == (1, 1, 0)
    else:
        # Nothing is held: the check waits like any other.
        assert (tasks[second.id].status, tasks[second.id].overflow) == ("open", None)
        assert (summary.open, summary.overflowed, summary.held) == (2, 0, 0)
    assert view_overflow(session, second) == tasks[second.id].overflow

    # Past the SLA, upkeep gives the first check the label intake gave the second (or, under
    # hold, both the same one) and counts no delivery.
    report = overflow.upkeep(session, utcnow() + timedelta(seconds=SLA + 1))
    session.commit()
    assert (report.delivered_unreviewed, report.held) == (0, 0)
    for task in tasks.values():
        session.refresh(task)
    if policy == "deliver_unreviewed":
        assert report.closed_unreviewed == 1
        assert {t.overflow for t in tasks.values()} == {"closed_unreviewed"}
    else:
        assert (report.closed_unreviewed, report.checks_overdue) == (0, 2)
        assert {(t.status, t.overflow) for t in tasks.values()} == {("open", "check_overdue")}
        summary = review_queue.queue_summary(session, utcnow())
        assert (summary.open, summary.held, summary.checks_overdue) == (2, 0, 2)


def view_overflow(session: Session, decision: Decision) -> str | None:
    """The overflow label a client reads in the event document."""
    return event_views.event_view(session, decision)["review"]["overflow"]


def test_a_task_past_its_sla_goes_out_unreviewed(
    session_factory: sessionmaker[Session], demo_catalog: DemoCatalog
) -> None:
    with session_factory() as session:
        use_config(session, routing_mode="review_before")
        (decision,) = rank_many(session, demo_catalog, 1)
        event_id = decision.event_id
    with session_factory() as session:
        report = overflow.upkeep(session, utcnow() + timedelta(seconds=SLA + 1))
        session.commit()
    assert (report.delivered_unreviewed, report.held) == (1, 0)
    with session_factory() as session:
        found = decisions.find_decision(session, event_id)
        assert found is not None and found.status == DecisionStatus.DELIVERED
        view = event_views.event_view(session, found)
    assert view["review"]["status"] == "overflowed"
    assert view["review"]["overflow"] == "delivered_unreviewed"
    assert {f["decided_by"] for f in view["final_slate"]} == {"policy"}


@pytest.mark.parametrize(
    "slate_out_by",
    ["round_one_submit", "review_after_rank", "undone_submit", "undone_submit_with_fallback"],
)
def test_a_review_past_its_sla_whose_slate_already_went_out_is_closed_not_delivered(
    session: Session, demo_catalog: DemoCatalog, curators: list[int], slate_out_by: str
) -> None:
    # round_one_submit leaves a second opinion waiting; the undone ones a re-review.
    use_config(
        session,
        routing_mode="review_after" if slate_out_by == "review_after_rank" else "review_before",
        double_review_share=1.0 if slate_out_by == "round_one_submit" else 0.0,
        review_lease_seconds=600,
        overflow_policy="deliver_unreviewed",
    )
    fallback = 120 if slate_out_by == "undone_submit_with_fallback" else None
    request = decisions.RankRequest(context=demo_catalog.customers[0], fallback_seconds=fallback)
    decision, _ = decisions.rank(session, EngineRuntime(np.random.default_rng(0)), request)
    session.commit()
    if slate_out_by != "review_after_rank":
        task = review.claim_next(session, curators[0])
        assert task is not None
        verdicts = [review.ItemVerdict(p.position, "keep") for p in decision.proposed]
        verdicts[1] = review.ItemVerdict(1, "remove")
        review.submit_review(session, task.id, curators[0], task.lease_token or "", verdicts, 5.0)
        session.commit()
        if slate_out_by.startswith("undone_submit"):
            undo_submit(session, task.id, curators[0])
            session.commit()
    session.refresh(decision)
    sent = (decision.delivered_slate, decision.delivered_at, decision.reward_due_at)
    waiting = session.scalars(select(ReviewTask).where(ReviewTask.status != "done")).one()

    # Past the SLA (and the undone task's 600 s lease, and the client's fallback time).
    report = overflow.upkeep(session, utcnow() + timedelta(seconds=SLA + 1))
    session.commit()

    assert (report.delivered_unreviewed, report.fallbacks_delivered) == (0, 0)
    assert report.closed_unreviewed == 1
    session.refresh(waiting)
    assert (waiting.status, waiting.overflow) == ("overflowed", "closed_unreviewed")
    session.refresh(decision)
    assert (decision.delivered_slate, decision.delivered_at, decision.reward_due_at) == sent
    kinds = session.scalars(select(EventChange.kind).where(EventChange.decision_id == decision.id))
    assert list(kinds) == ["delivered"]  # the client was told of one delivery, the real one
    view = event_views.event_view(session, decision)
    shown = view["second_review"] if slate_out_by == "round_one_submit" else view["review"]
    assert shown["status"] == "overflowed" and view["status"] == DecisionStatus.DELIVERED
    if slate_out_by != "round_one_submit":
        assert view["review"]["overflow"] == "closed_unreviewed"
    summary = review_queue.queue_summary(session, utcnow())
    assert (summary.open, summary.claimed, summary.held) == (0, 0, 0)


@pytest.mark.parametrize("slate_out_by", ["round_one_submit", "review_after_rank", "undone_submit"])
def test_under_hold_a_check_past_its_sla_whose_slate_already_went_out_stays_open_overdue(
    session: Session,
    db_engine: Engine,
    demo_catalog: DemoCatalog,
    curators: list[int],
    slate_out_by: str,
) -> None:
    # Nothing can be held once the slate is out; `hold` never drops a review, so the
    # curator's check stays in the queue, labelled overdue.
    use_config(
        session,
        routing_mode="review_after" if slate_out_by == "review_after_rank" else "review_before",
        double_review_share=1.0 if slate_out_by == "round_one_submit" else 0.0,
        review_lease_seconds=600,
        overflow_policy="hold",
    )
    request = decisions.RankRequest(context=demo_catalog.customers[0])
    decision, _ = decisions.rank(session, EngineRuntime(np.random.default_rng(0)), request)
    session.commit()
    if slate_out_by != "review_after_rank":
        task = review.claim_next(session, curators[0])
        assert task is not None
        verdicts = [review.ItemVerdict(p.position, "keep") for p in decision.proposed]
        review.submit_review(session, task.id, curators[0], task.lease_token or "", verdicts, 5.0)
        session.commit()
        if slate_out_by == "undone_submit":
            undo_submit(session, task.id, curators[0])
            session.commit()
    session.refresh(decision)
    sent = (decision.delivered_slate, decision.delivered_at, decision.reward_due_at)
    waiting = session.scalars(select(ReviewTask).where(ReviewTask.status != "done")).one()
    late = utcnow() + timedelta(seconds=SLA + 1)  # past the SLA and the undone task's lease

    report = overflow.upkeep(session, late)
    session.commit()

    assert (report.held, report.delivered_unreviewed, report.closed_unreviewed) == (0, 0, 0)
    assert report.checks_overdue == 1
    session.refresh(waiting)
    assert (waiting.status, waiting.overflow) == ("open", "check_overdue")
    session.refresh(decision)
    assert (decision.delivered_slate, decision.delivered_at, decision.reward_due_at) == sent
    kinds = session.scalars(select(EventChange.kind).where(EventChange.decision_id == decision.id))
    assert list(kinds) == ["delivered"]
    if slate_out_by != "round_one_submit":
        assert view_overflow(session, decision) == "check_overdue"
    summary = review_queue.queue_summary(session, late)
    assert (summary.open, summary.held, summary.checks_overdue) == (1, 0, 1)

    # Labelled once: upkeep's probe, run before every claim, finds nothing more to do.
    seen = recorded_statements(db_engine)
    assert overflow.upkeep(session, late + timedelta(seconds=1)) == NOTHING_DONE
    assert len(data_statements(seen)) == 1, seen
    session.commit()
    # And a curator can still make the check, late.
    checker = curators[1]
    task = review.claim_next(session, checker, late)
    assert task is not None and task.id == waiting.id
    verdicts = [review.ItemVerdict(p.position, "keep") for p in decision.proposed]
    assert review.submit_review(session, task.id, checker, task.lease_token or "", verdicts, 5.0)
    session.commit()
    session.refresh(waiting)
    assert (waiting.status, waiting.overflow) == ("done", "check_overdue")
    summary = review_queue.queue_summary(session, late)
    assert (summary.open, summary.checks_overdue) == (0, 0)


NOTHING_DONE = overflow.UpkeepReport(0, 0, 0, 0)


@pytest.mark.parametrize(
    ("due", "policy", "done"),
    [
        ("lease", "deliver_unreviewed", overflow.UpkeepReport(1, 0, 0, 0)),
        ("fallback", "deliver_unreviewed", overflow.UpkeepReport(0, 0, 0, 1)),
        ("sla", "deliver_unreviewed", overflow.UpkeepReport(0, 1, 0, 0)),
        ("sla", "hold", overflow.UpkeepReport(0, 0, 1, 0)),
    ],
)
def test_upkeep_acts_just_past_each_deadline_and_reads_one_row_otherwise(
    session_factory: sessionmaker[Session],
    db_engine: Engine,
    demo_catalog: DemoCatalog,
    curators: list[int],
    due: str,
    policy: str,
    done: overflow.UpkeepReport,
) -> None:
    with session_factory() as session:
        use_config(
            session, routing_mode="review_before", review_lease_seconds=60, overflow_policy=policy
        )
        request = decisions.RankRequest(
            context=demo_catalog.customers[0], fallback_seconds=120 if due == "fallback" else None
        )
        decisions.rank(session, EngineRuntime(np.random.default_rng(0)), request)
        session.commit()
        if due == "lease":
            assert review.claim_next(session, curators[0]) is not None
            session.commit()
        task = session.scalars(select(ReviewTask)).one()
        deadline = {"lease": task.leased_until, "fallback": task.fallback_at, "sla": task.due_at}[
            due
        ]
        assert deadline is not None
    seen = recorded_statements(db_engine)
    for moment, expected in [(-1, NOTHING_DONE), (1, done), (2, NOTHING_DONE)]:
        seen.clear()
        with session_factory() as session:
            report = overflow.upkeep(session, deadline + timedelta(seconds=moment))
            session.commit()
        assert report == expected, moment
        # Nothing due (before the deadline, or once acted on, a held task too): one probe.
        assert (len(data_statements(seen)) == 1) == (expected == NOTHING_DONE), seen


CLAIMERS = 24
TASKS = 120


def test_24_claimers_on_120_tasks_never_share_one(
    database_url: str, session_factory: sessionmaker[Session], demo_catalog: DemoCatalog
) -> None:
    # PostgreSQL claims with FOR UPDATE SKIP LOCKED; SQLite with an atomic conditional update.
    with session_factory() as session:
        use_config(session, routing_mode="review_before", curator_capacity_per_hour=10_000)
        rank_many(session, demo_catalog, TASKS)
        ids = [accounts.add_curator(session, f"p{i}", "long-enough-pw").id for i in range(CLAIMERS)]
        session.commit()
    engine = make_engine(database_url, pool_size=CLAIMERS, max_overflow=0)
    sessions = make_session_factory(engine)

    def work(curator_id: int) -> list[int]:
        mine = []
        with sessions() as session:
            while (task := review.claim_next(session, curator_id)) is not None:
                mine.append(task.id)
                verdicts = [review.ItemVerdict(p.position, "keep") for p in task.decision.proposed]
                review.submit_review(
                    session, task.id, curator_id, task.lease_token or "", verdicts, 1.0
                )
                session.commit()
        return mine

    try:
        with ThreadPoolExecutor(max_workers=CLAIMERS) as pool:
            claimed = list(pool.map(work, ids))
    finally:
        engine.dispose()
    every = [task for tasks in claimed for task in tasks]
    busy = sum(1 for tasks in claimed if tasks)
    print(f"{CLAIMERS} claimers ({busy} got work) reviewed {len(every)} of {TASKS} tasks")
    assert len(every) == len(set(every)) == TASKS
    with session_factory() as session:
        statuses = set(session.scalars(select(ReviewTask.status)))
    assert statuses == {"done"}
