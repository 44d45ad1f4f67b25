"""An undo racing a learn pass: the learned verdicts are never withdrawn and learned again."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from bandit.db.models import CuratorAction, utcnow
from bandit.engine.config import PolicyConfig
from bandit.services import accounts, configs, decisions, review
from bandit.services.review import ItemVerdict
from bandit.services.review.undo import UndoRefused, undo_submit
from bandit.services.runtime import EngineRuntime
from tests.conftest import DemoCatalog


# PostgreSQL only: SQLite takes one writer at a time, so the two cannot interleave there.
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_an_undo_waits_for_a_learn_pass_marking_its_verdicts_and_is_then_refused(
    session_factory: sessionmaker[Session], demo_catalog: DemoCatalog
) -> None:
    with session_factory() as session:
        config = PolicyConfig(routing_mode="review_before", double_review_share=0.0)
        configs.save_config(session, config, "test", activate=True)
        curator = accounts.add_curator(session, "racer", "long-enough-pw")
        decision, _ = decisions.rank(
            session,
            EngineRuntime(np.random.default_rng(0)),
            decisions.RankRequest(context=demo_catalog.customers[0]),
        )
        task = review.claim_next(session, curator.id)
        assert task is not None
        verdicts = [ItemVerdict(p.position, "keep") for p in decision.proposed]
        verdicts[1] = ItemVerdict(1, "remove")  # a curator-proxy round once learned
        review.submit_review(session, task.id, curator.id, task.lease_token or "", verdicts, 5.0)
        session.commit()
        task_id, curator_id = task.id, curator.id
    outcome: list[BaseException | str] = []

    def undo() -> None:
        with session_factory() as other:
            try:
                undo_submit(other, task_id, curator_id)
                other.commit()
                outcome.append("undone")
            except UndoRefused as refused:
                outcome.append(refused)

    learner = session_factory()
    # What a learn pass does to the verdicts it fed, not committed yet.
    learner.execute(
        update(CuratorAction).where(CuratorAction.task_id == task_id).values(learned_at=utcnow())
    )
    racing = threading.Thread(target=undo)
    racing.start()
    racing.join(timeout=1.0)
    assert racing.is_alive()  # it waits for the pass's row locks
    learner.commit()
    learner.close()
    racing.join(timeout=30)
    assert len(outcome) == 1 and isinstance(outcome[0], UndoRefused)
    assert "already learned" in str(outcome[0])
