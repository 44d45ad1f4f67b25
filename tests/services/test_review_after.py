"""Verify-after-output: the slate goes out at once, and a later verdict corrects the log."""

import numpy as np
from sqlalchemy.orm import Session

from bandit.engine.config import PolicyConfig
from bandit.engine.vocabulary import DecisionStatus
from bandit.services import accounts, configs, decisions, learning, review, rewards
from bandit.services.review import ItemVerdict
from bandit.services.runtime import EngineRuntime
from curation_app import event_views
from tests.conftest import DemoCatalog


def test_a_delivered_slate_is_corrected_by_the_later_review(
    session: Session, demo_catalog: DemoCatalog
) -> None:
    configs.save_config(session, PolicyConfig(routing_mode="review_after"), "test", activate=True)
    curator = accounts.add_curator(session, "verifier", "long-enough-pw")
    session.commit()
    runtime = EngineRuntime(np.random.default_rng(0))
    decision, _ = decisions.rank(
        session, runtime, decisions.RankRequest(context=demo_catalog.customers[0])
    )
    session.commit()
    assert decision.status == DecisionStatus.DELIVERED and decision.delivered_at is not None
    delivered_at = decision.delivered_at
    assert {(f.tag, f.decided_by) for f in decision.final_slate} == {("kept", "policy")}

    task = review.claim_next(session, curator.id)
    session.commit()
    assert task is not None and task.decision_id == decision.id
    assert decision.status == DecisionStatus.DELIVERED  # claiming does not un-deliver it
    on_slate = {p.item_id for p in decision.proposed}
    replacement = next(c["item_id"] for c in decision.candidates if c["item_id"] not in on_slate)
    verdicts = [ItemVerdict(p.position, "keep") for p in decision.proposed]
    verdicts[1] = ItemVerdict(1, "swap", replacement, "wrong season")
    review.submit_review(session, task.id, curator.id, task.lease_token or "", verdicts, 12.0)
    session.commit()

    view = event_views.event_view(session, decision)
    assert view["status"] == "delivered" and view["delivered_at"] == delivered_at.isoformat()
    tags = [(f["position"], f["tag"], f["decided_by"]) for f in view["final_slate"]]
    assert (1, "swapped_out", "curator") in tags and (1, "swapped_in", "curator") in tags
    assert sum(f["delivered"] for f in view["final_slate"]) == len(decision.proposed)
    assert [a["verdict"] for a in view["review"]["actions"]].count("swapped") == 1

    # The customer saw the policy's item before the curator swapped it: its reward counts.
    swapped_out = decision.proposed[1].item_id
    outcome, created = rewards.record_reward(session, decision.event_id, 1.0, swapped_out, "t")
    session.commit()
    assert created and outcome.item_key == swapped_out
    report = learning.learn_pending(session)
    session.commit()
    assert (report.rewards, report.rewards_not_fed) == (1, 0)
    # The customer's reward is the round; the curator's verdicts are approval labels only.
    assert report.rounds_learned == 1
