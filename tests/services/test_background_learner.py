"""`hitl serve`'s background learner picks up verdicts without anyone running `hitl learn`."""

import threading
import time

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from bandit.services import accounts, decisions, model_store, review
from bandit.services.review import ItemVerdict
from bandit.services.runtime import EngineRuntime
from curation_app.cli import start_background_learner
from tests.conftest import DemoCatalog


def test_background_learner_saves_a_model_version_and_stops(
    session_factory: sessionmaker[Session], demo_catalog: DemoCatalog
) -> None:
    with session_factory() as session:
        curator = accounts.add_curator(session, "night-shift", "long-enough-pw")
        session.commit()
        decision, _ = decisions.rank(
            session,
            EngineRuntime(np.random.default_rng(0)),
            decisions.RankRequest(context=demo_catalog.customers[0]),
        )
        session.commit()
        task = review.claim_next(session, curator.id)
        session.commit()
        assert task is not None
        verdicts = [ItemVerdict(p.position, "keep") for p in decision.proposed]
        review.submit_review(session, task.id, curator.id, task.lease_token or "", verdicts, 5.0)
        session.commit()
    stop = threading.Event()
    thread = start_background_learner(session_factory, 0.05, stop)
    try:
        deadline = time.monotonic() + 20
        version = 0
        while version == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
            with session_factory() as session:
                version = model_store.latest_version_number(session)
    finally:
        stop.set()
        thread.join(timeout=10)
    assert version == 1
    assert not thread.is_alive()
