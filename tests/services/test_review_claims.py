"""Claiming review tasks: concurrent curators never hold the same task."""

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import numpy as np
import pytest
from sqlalchemy.orm import Session, sessionmaker

from bandit.db.models import utcnow
from bandit.engine.config import PolicyConfig
from bandit.engine.vocabulary import TaskStatus
from bandit.services import accounts, configs, decisions, review
from bandit.services.review.skips import claim_chosen
from bandit.services.review.undo import undo_submit
from bandit.services.runtime import EngineRuntime
from tests.conftest import DemoCatalog

CLAIMERS = 6
TASKS = 24


@pytest.fixture
def queued_tasks(session: Session, demo_catalog: DemoCatalog) -> list[int]:
    runtime = EngineRuntime(np.random.default_rng(0))
    created = []
    for index in range(TASKS):
        context = demo_catalog.customers[index % len(demo_catalog.customers)]
        decision, _ = decisions.rank(session, runtime, decisions.RankRequest(context=context))
        session.commit()
        created.append(decision.id)
    return created


@pytest.fixture
def curator_ids(session: Session) -> list[int]:
    ids = [
        accounts.add_curator(session, f"curator-{i}", "long-enough-pw").id for i in range(CLAIMERS)
    ]
    session.commit()
    return ids


def test_concurrent_claimers_never_share_a_task(
    session_factory: sessionmaker[Session], queued_tasks: list[int], curator_ids: list[int]
) -> None:
    def claim_until_empty(curator_id: int) -> list[int]:
        mine = []
        with session_factory() as session:
            while (task := review.claim_next(session, curator_id)) is not None:
                mine.append(task.id)
                # Give it back done-ish: release would requeue it, so mark it finished instead.
                task.status = TaskStatus.DONE
                session.commit()
        return mine

    with ThreadPoolExecutor(max_workers=CLAIMERS) as pool:
        claimed = list(pool.map(claim_until_empty, curator_ids))
    every_claim = [task for tasks in claimed for task in tasks]
    print(f"{CLAIMERS} claimers took {len(every_claim)} of {TASKS} tasks")
    assert len(every_claim) == len(set(every_claim)) == TASKS


def test_a_held_task_is_not_handed_to_a_colleague_until_its_lease_expires(
    session: Session, queued_tasks: list[int], curator_ids: list[int]
) -> None:
    alice, bob = curator_ids[:2]
    first = review.claim_next(session, alice)
    session.commit()
    assert first is not None
    again = review.claim_next(session, alice)
    session.commit()
    assert again is not None and again.id == first.id  # resumes, does not take another
    bobs = review.claim_next(session, bob)
    session.commit()
    assert bobs is not None and bobs.id != first.id
    # Once both leases have run out, the highest-priority task goes to whoever asks next.
    later = utcnow() + timedelta(hours=2)
    carol_sees = review.claim_next(session, curator_ids[2], now=later)
    session.commit()
    assert carol_sees is not None and carol_sees.id in {first.id, bobs.id}


def test_submit_after_losing_the_lease_is_refused_and_changes_nothing(
    session: Session, queued_tasks: list[int], curator_ids: list[int]
) -> None:
    alice, bob = curator_ids[:2]
    task = review.claim_next(session, alice)
    session.commit()
    assert task is not None
    stale_token = task.lease_token or ""
    review.release(session, task.id, alice)
    session.commit()
    taken = review.claim_next(session, bob)
    session.commit()
    assert taken is not None and taken.id == task.id
    verdicts = [review.ItemVerdict(p.position, "keep") for p in task.decision.proposed]
    with pytest.raises(review.LeaseLost):
        review.submit_review(session, task.id, alice, stale_token, verdicts, 10.0)
        session.commit()
    session.rollback()
    assert review.submit_review(session, task.id, bob, taken.lease_token or "", verdicts, 10.0)
    session.commit()
    # The same submit again (a double click) is accepted once and records nothing new.
    assert not review.submit_review(session, task.id, bob, taken.lease_token or "", verdicts, 10.0)
    session.commit()


def test_every_claim_and_an_undo_start_a_new_lease_but_the_first_claim_is_kept(
    session: Session, demo_catalog: DemoCatalog
) -> None:
    configs.save_config(session, PolicyConfig(routing_mode="review_before"), "test", activate=True)
    alice, bob = (accounts.add_curator(session, name, "long-enough-pw").id for name in "ab")
    decision, _ = decisions.rank(
        session,
        EngineRuntime(np.random.default_rng(0)),
        decisions.RankRequest(context=demo_catalog.customers[0]),
    )
    session.commit()
    start = utcnow()

    def at(seconds: int) -> datetime:
        return start + timedelta(seconds=seconds)

    task = review.claim_next(session, alice, at(0))
    session.commit()
    assert task is not None and (task.claimed_at, task.first_claimed_at) == (at(0), at(0))
    review.release(session, task.id, alice, at(10))
    session.commit()
    # The queue page's claim of a chosen task, by a colleague.
    chosen = claim_chosen(session, task.id, bob, at(20))
    session.commit()
    assert chosen is not None and (chosen.claimed_at, chosen.first_claimed_at) == (at(20), at(0))
    verdicts = [review.ItemVerdict(p.position, "keep") for p in decision.proposed]
    assert review.submit_review(
        session, task.id, bob, chosen.lease_token or "", verdicts, 5.0, at(30)
    )
    session.commit()
    reopened = undo_submit(session, task.id, bob, at(40))
    session.commit()
    # claimed_at is "held since", from which the console caps the review time: the undo's.
    assert (reopened.claimed_at, reopened.first_claimed_at) == (at(40), at(0))
