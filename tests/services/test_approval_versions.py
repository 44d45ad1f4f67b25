"""A model version holds the policy and the approval model: a checkpoint keeps the approval
model that was served, a rollback to v serves v's, and the settings figures never mix versions.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bandit.db.models import ModelVersion
from bandit.engine.approval import ApprovalModel
from bandit.engine.config import PolicyConfig
from bandit.engine.policy import VWPolicy
from bandit.engine.vocabulary import ApprovalRole, ApprovalStatus
from bandit.services import (
    accounts,
    configs,
    decisions,
    learning,
    model_store,
    model_versions,
    review,
    trust,
    trust_status,
)
from bandit.services.approval_store import (
    COPIED_FROM,
    approval_from,
    copy_approval,
    role_for,
)
from bandit.services.runtime import EngineRuntime
from bandit.services.trust_status import PromiseStatus
from curation_app import promise
from curation_app.cli import main
from tests.conftest import DemoCatalog
from tests.services.test_trust_figures import _build, _design

LEARNED = 2  # _build saves version 1 (a hand-made approval model); the learn pass version 2


@pytest.fixture
def ready(
    session_factory: sessionmaker[Session], demo_catalog: DemoCatalog, database_url: str
) -> PromiseStatus:
    """Version 2: a learned approval model, calibrated, with an auto threshold in force."""
    _build(session_factory, demo_catalog, _design())
    result = CliRunner().invoke(main, ["learn", "--database-url", database_url])
    assert result.exit_code == 0, result.output
    with session_factory() as session:
        status = trust_status.promise_status(session)
    assert status.model_version == LEARNED and status.status == ApprovalStatus.READY
    assert status.threshold is not None and status.calibration_verdicts > 0
    return status


def _version(session: Session, version: int) -> ModelVersion:
    return session.scalars(select(ModelVersion).where(ModelVersion.version == version)).one()


def _same_approval(copy: ModelVersion, source: ModelVersion) -> None:
    assert copy.approval_bytes is not None and copy.approval_bytes == source.approval_bytes
    assert copy.approval_state is not None and source.approval_state is not None
    assert copy.approval_state[COPIED_FROM] == source.version
    assert {k: v for k, v in copy.approval_state.items() if k != COPIED_FROM} == (
        source.approval_state
    )


def _as_of(status: PromiseStatus, like: PromiseStatus) -> PromiseStatus:
    """`status` with the served version of `like`: the figures remain."""
    return replace(status, model_version=like.model_version)


def test_a_checkpoint_keeps_serving_the_approval_model(
    session_factory: sessionmaker[Session],
    demo_catalog: DemoCatalog,
    database_url: str,
    ready: PromiseStatus,
) -> None:
    result = CliRunner().invoke(
        main, ["model", "checkpoint", "--note", "before sale", "--database-url", database_url]
    )
    assert result.exit_code == 0 and "model version 3" in result.output, result.output
    with session_factory() as session:
        checkpoint = model_store.latest_model(session)
        assert checkpoint is not None and checkpoint.version == LEARNED + 1
        _same_approval(checkpoint, _version(session, LEARNED))
        model, threshold = approval_from(checkpoint)
        assert model is not None and model.calibrated and threshold == ready.threshold
        model.close()
        status = trust_status.promise_status(session)
        assert status.model_version == checkpoint.version
        assert _as_of(status, ready) == ready
        assert promise.today_sentences(status) == promise.today_sentences(ready)
        # Routing scores with it: a decision made by the checkpoint carries an approval score.
        runtime = EngineRuntime(np.random.default_rng(8))
        request = decisions.RankRequest(context=demo_catalog.customers[3])
        decision, _ = decisions.rank(session, runtime, request)
        assert decision.model_version == checkpoint.version
        assert decision.approval_probability is not None


def _review_more(sessions: sessionmaker[Session], catalog: DemoCatalog) -> None:
    """Review 12 more slates (4 of each approval role, by event id) under review-before,
    learn them, and make the risk-controlled config active again."""
    ids: dict[ApprovalRole, list[str]] = {role: [] for role in ApprovalRole}
    for index in range(200):
        event_id = f"second-pass-{index}"
        ids[role_for(event_id, audit=False)].append(event_id)
    chosen = [event_id for role in ApprovalRole for event_id in ids[role][:4]]
    runtime = EngineRuntime(np.random.default_rng(9))
    with sessions() as session:
        risk_controlled, _ = configs.active_config(session)
        config = PolicyConfig(routing_mode="review_before", slate_size=3)
        configs.save_config(session, config, created_by="test", activate=True)
        curator = accounts.add_curator(session, "second-curator", "second-password-1").id
        for index, event_id in enumerate(chosen):
            context = catalog.customers[index % len(catalog.customers)]
            request = decisions.RankRequest(context=context, event_id=event_id)
            decisions.rank(session, runtime, request)
            task = review.claim_next(session, curator)
            assert task is not None
            verdicts = [
                review.ItemVerdict(p.position, "remove" if p.position == index % 3 else "keep")
                for p in task.decision.proposed
            ]
            review.submit_review(session, task.id, curator, task.lease_token or "", verdicts, 2.0)
        learning.learn_pending(session)
        configs.activate_config(session, risk_controlled)
        session.commit()


def test_a_rollback_serves_both_models_of_its_version(
    session_factory: sessionmaker[Session],
    demo_catalog: DemoCatalog,
    database_url: str,
    ready: PromiseStatus,
) -> None:
    _review_more(session_factory, demo_catalog)
    with session_factory() as session:
        relearned = trust_status.promise_status(session)
        newer = _version(session, LEARNED + 1)
        assert newer.approval_bytes != _version(session, LEARNED).approval_bytes
    assert relearned.model_version == LEARNED + 1
    assert relearned.calibration_verdicts > ready.calibration_verdicts  # a different pass

    result = CliRunner().invoke(
        main, ["model", "rollback", str(LEARNED), "--database-url", database_url]
    )
    assert result.exit_code == 0, result.output
    with session_factory() as session:
        rolled_back = model_store.latest_model(session)
        assert rolled_back is not None and rolled_back.version == LEARNED + 2
        _same_approval(rolled_back, _version(session, LEARNED))
        assert approval_from(rolled_back)[1] == ready.threshold
        status = trust_status.promise_status(session)
    # Every figure is version 2's, none from the pass of version 3 that came after it.
    assert status.model_version == rolled_back.version
    assert _as_of(status, ready) == ready
    assert promise.today_sentences(status) == promise.today_sentences(ready)


def test_a_version_without_an_approval_model_shows_no_other_versions_figures(
    session: Session,
) -> None:
    row, config = configs.active_config(session)
    plain = model_store.save_model(session, VWPolicy.fresh(config), row, 0, None, "before trust")
    trained = model_store.save_model(session, VWPolicy.fresh(config), row, 0, plain, "learned")
    approval = ApprovalModel.fresh()
    state: dict[str, Any] = {
        "status": ApprovalStatus.READY,
        "threshold": 0.4,
        "calibration": None,
        "promise": {"target": 0.05, "confidence_level": 0.9},
    }
    trained.approval_bytes, trained.approval_state = approval.to_bytes(), state
    approval.close()
    report = trust.TrustReport(
        status=ApprovalStatus.READY,
        trained_verdicts=840,
        calibration_verdicts=360,
        threshold=0.4,
        evidence=1200,
        bound=0.04,
        ece=0.02,
        brier=0.1,
        projected_automation=0.5,
        bound_slates=700,
    )
    trust.record_threshold(session, trained.version, report, state, datetime.now(UTC))
    assert trust_status.promise_status(session).calibration_verdicts == 360

    # Version 1 predates the approval model: the rollback serves no approval model at all.
    rolled_back = model_versions.rollback(session, plain.version)
    assert rolled_back.approval_bytes is None and approval_from(rolled_back) == (None, None)
    status = trust_status.promise_status(session)
    assert status.model_version == rolled_back.version
    assert status.status == ApprovalStatus.UNTRAINED and status.threshold is None
    assert (status.calibration_verdicts, status.evidence, status.bound_slates) == (0, 0, 0)
    assert status.bound is None
    # As the settings page words it under risk-controlled routing (the test's config is not).
    sentences = promise.today_sentences(replace(status, active=True))
    assert any("No approval model is served" in line for line in sentences), sentences
    assert not any("360" in line or "1200" in line for line in sentences), sentences


def test_a_new_lineage_keeps_the_approval_model(session: Session) -> None:
    row, config = configs.active_config(session)
    trained = model_store.save_model(session, VWPolicy.fresh(config), row, 0, None, "learned")
    approval = ApprovalModel.fresh()
    trained.approval_bytes = approval.to_bytes()
    approval.close()
    trained.approval_state = {"status": ApprovalStatus.READY, "threshold": 0.4, "calibration": None}
    session.flush()
    lineage = model_versions.start_new_lineage(session, replace(config, algorithm="cover"), "t")
    assert lineage.examples_total == 0
    _same_approval(lineage, trained)


def test_a_version_without_an_approval_model_still_reports_the_audits_in_the_log(
    session_factory: sessionmaker[Session], ready: PromiseStatus
) -> None:
    """The audits measured earlier automation, whatever the served version: a rollback to a
    version with no approval model says there is none, and still shows those audits."""
    assert ready.audits == 75
    with session_factory() as session:
        row, config = configs.active_config(session)
        latest = model_store.latest_model(session)
        plain = model_store.save_model(session, VWPolicy.fresh(config), row, 0, latest, "plain")
        newer = model_store.save_model(session, VWPolicy.fresh(config), row, 0, plain, "newer")
        copy_approval(_version(session, LEARNED), newer)
        rolled_back = model_versions.rollback(session, plain.version)
        assert rolled_back.approval_state is None
        status = trust_status.promise_status(session)
    assert status.status == ApprovalStatus.UNTRAINED and status.threshold is None
    audited = ("audits", "audit_overrides", "audit_rate", "audit_low", "audit_high")
    assert [getattr(status, f) for f in audited] == [getattr(ready, f) for f in audited]
    sentences = promise.today_sentences(status)
    assert not any("No audits yet" in line for line in sentences), sentences
    assert any("(0 of 75 audits changed)" in line for line in sentences), sentences
