"""Verify-after-output: the slate goes out at once, and a later verdict corrects the log."""

import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bandit.db.models import Decision, EventChange, SlateVerification
from bandit.engine.config import PolicyConfig
from bandit.engine.vocabulary import DELIVERED_TAGS, DecisionStatus
from bandit.services import accounts, configs, corrections, decisions, learning, review, rewards
from bandit.services.delivery import delivered_slate
from bandit.services.review import ItemVerdict
from bandit.services.review.undo import undo_submit
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


def _left_by(verdict: str, decision: Decision, spare: str) -> ItemVerdict:
    """The verdict on position 1: keep, remove, or swap for `spare`."""
    if verdict == "swap":
        return ItemVerdict(1, "swap", spare, "better")
    return ItemVerdict(1, verdict)


@pytest.mark.parametrize(
    ("first", "second", "told"),
    [
        ("remove", "remove", "reinstated"),
        ("swap", "swap", "reinstated"),
        ("keep", "keep", "reinstated"),
        ("remove", "keep", "corrected"),
        ("keep", "swap", "corrected"),
        ("swap", "remove", "corrected"),
    ],
)
def test_the_review_after_an_undo_is_checked_against_the_slate_that_went_out(
    first: str, second: str, told: str, session: Session, demo_catalog: DemoCatalog
) -> None:
    config = PolicyConfig(routing_mode="review_before", double_review_share=0.0)
    configs.save_config(session, config, "test", activate=True)
    curator = accounts.add_curator(session, "undoer", "long-enough-pw")
    session.commit()
    runtime = EngineRuntime(np.random.default_rng(0))
    decision, _ = decisions.rank(
        session, runtime, decisions.RankRequest(context=demo_catalog.customers[0])
    )
    session.commit()
    on_slate = {p.item_id for p in decision.proposed}
    spare = next(c["item_id"] for c in decision.candidates if c["item_id"] not in on_slate)
    task = review.claim_next(session, curator.id)
    session.commit()
    assert task is not None
    for attempt, verdict in enumerate((first, second)):
        verdicts = [ItemVerdict(p.position, "keep") for p in decision.proposed]
        verdicts[1] = _left_by(verdict, decision, spare)
        review.submit_review(session, task.id, curator.id, task.lease_token or "", verdicts, 5.0)
        session.commit()
        if attempt == 0:
            task = undo_submit(session, task.id, curator.id)
            session.commit()

    kinds = session.scalars(
        select(EventChange.kind)
        .where(EventChange.decision_id == decision.id)
        .order_by(EventChange.id)
    ).all()
    checks = session.scalars(
        select(SlateVerification.outcome).where(SlateVerification.decision_id == decision.id)
    ).all()
    # One story for the client and for the log of checks: the same verdict again changes
    # nothing; a different one is a correction of what the customer has. (The quality page's
    # override rate leaves these out: they are no verify-after reviews, test_quality.py.)
    assert list(kinds) == ["delivered", told] and list(checks) == [told]
    current = corrections.current_slate(
        delivered_slate(decision), corrections.corrections_of(session, decision)
    )
    left = sorted(f.item_id for f in decision.final_slate if f.tag in DELIVERED_TAGS)
    assert sorted(entry["item_id"] for entry in current) == left
