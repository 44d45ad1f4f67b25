"""Replaying `logged` on the database's own export reproduces the on-policy customer value.

A review-after loop: every slate goes out at once, a curator later swaps or removes some of
its items (the customer already has them), and the customer answers for every delivered
item with a known keep chance. The true on-policy customer value per position is the mean
keep chance of the delivered items; `--reward customer` must find it within its interval,
while the curator's verdicts (`--reward curator`) describe something else.
"""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy.orm import Session, sessionmaker

from bandit.engine.config import PolicyConfig
from bandit.engine.vocabulary import DecisionStatus
from bandit.ope.log_format import build_log
from bandit.ope.replay import ReplayOptions, evaluate
from bandit.ope.reward_choice import choose_reward
from bandit.ope.targets import logged_target
from bandit.services import accounts, configs, decisions, learning, review, rewards
from bandit.services.delivery import policy_items_delivered
from bandit.services.export import export_log
from bandit.services.review import ItemVerdict
from bandit.services.runtime import EngineRuntime
from tests.conftest import DemoCatalog

DECISIONS = 150


@pytest.mark.slow
def test_replaying_logged_reproduces_the_customer_value(
    session_factory: sessionmaker[Session], demo_catalog: DemoCatalog
) -> None:
    rng = np.random.default_rng(21)
    keep_chance = dict(
        zip(demo_catalog.item_ids, rng.uniform(0.3, 0.95, len(demo_catalog.item_ids)), strict=True)
    )
    runtime = EngineRuntime(np.random.default_rng(5))
    config = PolicyConfig(
        name="replay-truth", candidate_count=8, slate_size=3, routing_mode="review_after"
    )
    with session_factory() as session:
        curator_id = accounts.add_curator(session, "truth-curator", "truth-password-1").id
        configs.save_config(session, config, created_by="test", activate=True)
        session.commit()
    chances: list[float] = []
    for index in range(DECISIONS):
        with session_factory() as session:
            context = demo_catalog.customers[index % len(demo_catalog.customers)]
            decision, _ = decisions.rank(session, runtime, decisions.RankRequest(context=context))
            assert decision.status == DecisionStatus.DELIVERED
            for item_id in policy_items_delivered(decision):
                chances.append(keep_chance[item_id])
                kept = float(rng.random() < keep_chance[item_id])
                rewards.record_reward(session, decision.event_id, kept, item_id, "test")
            task = review.claim_next(session, curator_id)
            if task is not None:
                # The curator dislikes the top two positions whatever the customer thought.
                verdicts = [
                    ItemVerdict(p.position, "remove" if p.position < 2 else "keep")
                    for p in task.decision.proposed
                ]
                review.submit_review(
                    session, task.id, curator_id, task.lease_token or "", verdicts, 5.0
                )
            session.commit()
        if index % 25 == 24:
            with session_factory() as session:
                learning.learn_pending(session)
                session.commit()
    with session_factory() as session:
        exported = export_log(session)
    log = build_log(exported.rounds, exported.candidates, exported.items)
    truth = float(np.mean(chances))
    options = ReplayOptions(level=0.99)
    customer = evaluate(log, logged_target(log), ("sips", "rips"), options=options)
    for estimate in customer.estimates.values():
        print(
            f"customer {estimate.estimator}: {estimate.value:.4f} "
            f"[{estimate.ci_low:.4f}, {estimate.ci_high:.4f}] truth {truth:.4f}"
        )
        assert estimate.ci_low <= truth <= estimate.ci_high
    assert set(customer.per_source) == {"customer"}
    curator_log = choose_reward(log, "curator")
    curator = evaluate(curator_log, logged_target(curator_log), ("rips",), options=options)
    print(f"curator rips: {curator.estimates['rips'].value:.4f}")
    assert curator.estimates["rips"].ci_high < truth  # verdicts are not customer outcomes
