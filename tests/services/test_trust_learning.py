"""The learner trains the approval model in its own transaction; too few verdicts say so."""

from __future__ import annotations

import numpy as np
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bandit.db.models import AuditEntry, Decision, ModelVersion, ReviewLesson, RiskThreshold
from bandit.engine.config import PolicyConfig
from bandit.engine.vocabulary import ApprovalRole, ApprovalStatus, TrustAction
from bandit.services import accounts, configs, decisions, learning, review
from bandit.services.review import ItemVerdict
from bandit.services.runtime import EngineRuntime
from curation_app.cli import main
from tests.conftest import DemoCatalog


def test_too_few_verdicts_route_everything_to_review_and_say_so(
    session_factory: sessionmaker[Session], demo_catalog: DemoCatalog, database_url: str
) -> None:
    runtime = EngineRuntime(np.random.default_rng(2))
    with session_factory() as session:
        config = PolicyConfig(routing_mode="risk_controlled", slate_size=3, candidate_count=8)
        configs.save_config(session, config, created_by="test", activate=True)
        curator = accounts.add_curator(session, "trust-curator", "trust-password-1")
        session.commit()
        for index, context in enumerate(demo_catalog.customers[:6]):
            decision, _ = decisions.rank(session, runtime, decisions.RankRequest(context=context))
            session.commit()
            assert decision.route == "review_before"  # no approval model yet: review first
            task = review.claim_next(session, curator.id)
            session.commit()
            assert task is not None
            verdicts = [
                ItemVerdict(p.position, "keep" if (p.position + index) % 3 else "remove")
                for p in task.decision.proposed
            ]
            review.submit_review(
                session, task.id, curator.id, task.lease_token or "", verdicts, 5.0
            )
    result = CliRunner().invoke(main, ["learn", "--database-url", database_url])
    assert result.exit_code == 0, result.output
    assert "too few held-out verdicts to calibrate" in result.output
    with session_factory() as session:
        saved = session.scalars(select(ModelVersion)).one()
        assert saved.approval_bytes and saved.approval_state is not None
        assert saved.approval_state["status"] == ApprovalStatus.TOO_FEW_VERDICTS
        assert saved.approval_state["threshold"] is None
        threshold = session.scalars(select(RiskThreshold)).one()
        assert threshold.model_version == saved.version and threshold.threshold is None
        entry = session.scalars(
            select(AuditEntry).where(AuditEntry.action == TrustAction.THRESHOLD_CHOSEN)
        ).one()
        assert entry.details["threshold"] is None
        assert session.scalars(select(ReviewLesson)).first() is not None
        # The next decision is still reviewed: an uncalibrated model never automates.
        decision, _ = decisions.rank(
            session, runtime, decisions.RankRequest(context=demo_catalog.customers[7])
        )
        assert decision.route != "auto" and decision.approval_probability is not None


def test_apprentice_mode_verdicts_are_neither_calibrated_nor_evaluated_on(
    session: Session, demo_catalog: DemoCatalog
) -> None:
    # In apprentice mode the curator composes the slate: no proposal was approved or changed,
    # so those verdicts must not reach the approval model's calibration or its ECE and Brier.
    curator = accounts.add_curator(session, "composer", "composer-password-1")
    runtime = EngineRuntime(np.random.default_rng(3))
    reviewed: dict[str, list[int]] = {}
    for mode in ("apprentice", "review_before"):
        config = PolicyConfig(routing_mode=mode, slate_size=3, candidate_count=8)
        configs.save_config(session, config, created_by="test", activate=True)
        session.commit()
        for index, context in enumerate(demo_catalog.customers[:40]):
            # Fixed event ids fix each decision's approval role (a hash of the id), so both
            # held-out roles have review-before positions to count on every run.
            request = decisions.RankRequest(context=context, event_id=f"{mode}-{index}")
            decision, _ = decisions.rank(session, runtime, request)
            session.commit()
            task = review.claim_next(session, curator.id)
            assert task is not None
            verdicts = [ItemVerdict(p.position, "keep") for p in decision.proposed]
            if mode == "apprentice":
                verdicts[0] = ItemVerdict(0, "remove", reason="composing my own")
            review.submit_review(
                session, task.id, curator.id, task.lease_token or "", verdicts, 5.0
            )
            session.commit()
            reviewed.setdefault(mode, []).append(decision.id)

    report = learning.learn_pending(session)

    def positions(role: ApprovalRole) -> int:
        roles = session.scalars(
            select(Decision.approval_role).where(Decision.id.in_(reviewed["review_before"]))
        ).all()
        return 3 * sum(r == role for r in roles)

    assert report.trust is not None
    assert report.trust.calibration_verdicts == positions(ApprovalRole.CALIBRATE) > 0
    saved = session.scalars(select(ModelVersion)).one()
    assert saved.approval_state is not None
    assert saved.approval_state["metrics"]["verdicts"] == positions(ApprovalRole.EVIDENCE) > 0
