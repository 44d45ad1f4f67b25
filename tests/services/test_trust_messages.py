"""What `hitl learn`, the settings page and the event document say when nothing is automated:
too little evidence to test any threshold, a first test that ran and failed, or held-out
verdicts all of one kind. Each case says its own reason, with the stored figures."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from scipy import stats
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from bandit.db.models import CuratorAction, Decision, RiskThreshold
from bandit.engine import risk_control
from bandit.engine.risk_control import THRESHOLD_GRID
from bandit.engine.vocabulary import ApprovalRole, ApprovalStatus, CuratorVerdict
from bandit.services import decisions, trust, trust_status
from bandit.services.runtime import EngineRuntime
from bandit.services.trust_status import FailedTest, PromiseStatus
from curation_app import dashboard, event_views, promise
from curation_app.cli import main
from tests.conftest import DemoCatalog
from tests.services.test_trust_figures import HandLog, _build

SLATES = 200
CALIBRATING = 40  # the first 40 slates calibrate: 120 positions, above the 100 needed
OVERRIDE_SHARE = 0.55  # the reference simulation world's curators change about this many
TARGET = 0.05
CONFIDENCE = 0.9


def _busy_curators() -> HandLog:
    """Plenty of scored reviewed slates, more than half of them changed by a curator."""
    rng = np.random.default_rng(0)
    scores = rng.uniform(0.2, 0.6, SLATES)
    overridden = rng.random(SLATES) < OVERRIDE_SHARE
    return HandLog(scores, overridden, np.zeros(SLATES, dtype=bool))


def _calibrate_first(sessions: sessionmaker[Session], slates: int) -> None:
    with sessions() as session:
        first = select(Decision.id).order_by(Decision.id).limit(slates).scalar_subquery()
        session.execute(
            update(Decision)
            .where(Decision.id.in_(first))
            .values(approval_role=ApprovalRole.CALIBRATE)
        )
        session.commit()


def _learn(database_url: str) -> str:
    result = CliRunner().invoke(main, ["learn", "--database-url", database_url])
    assert result.exit_code == 0, result.output
    return result.output


def _first_test_reference(log: HandLog) -> tuple[float, int, int, float]:
    """The first threshold the sequence tests (the highest grid point with at least half the
    evidence at or above it, as 5 n_min = 225 exceeds half of 200), its n, overrides and the
    one-sided Clopper-Pearson bound."""
    threshold = max(t for t in THRESHOLD_GRID if (log.scores >= t).sum() >= SLATES / 2)
    mask = log.scores >= threshold
    n, k = int(mask.sum()), int(log.overridden[mask].sum())
    return threshold, n, k, float(stats.beta.ppf(CONFIDENCE, k + 1, n - k))


def test_a_first_test_failing_on_plenty_of_evidence_is_named_not_called_too_little_evidence(
    session_factory: sessionmaker[Session], demo_catalog: DemoCatalog, database_url: str
) -> None:
    log = _busy_curators()
    _build(session_factory, demo_catalog, log)
    _calibrate_first(session_factory, CALIBRATING)
    output = _learn(database_url)
    threshold, n, k, bound = _first_test_reference(log)
    with session_factory() as session:
        row = session.scalars(select(RiskThreshold)).one()
        status = trust_status.promise_status(session)
        # A decision routed by the learned version: its approval state has no threshold.
        runtime = EngineRuntime(np.random.default_rng(5))
        request = decisions.RankRequest(context=demo_catalog.customers[0])
        decision, _ = decisions.rank(session, runtime, request)
        session.commit()
        reason = event_views.event_view(session, decision, include_candidates=False)["routing"][
            "reason"
        ]
        figure = dashboard._promise(session)
    sentences = promise.today_sentences(status)
    print(output, *sentences, reason, sep="\n")
    # The stored row holds the failed test: no threshold, but its bound and sample.
    assert row.threshold is None and row.evidence == SLATES
    assert (row.n, row.overrides) == (n, k) and row.bound == pytest.approx(bound)
    assert bound > 0.5
    assert status.status == ApprovalStatus.READY and status.threshold is None
    failed_test = status.failed_test
    assert failed_test is not None
    assert (failed_test.slates, failed_test.overrides, failed_test.target) == (n, k, TARGET)
    assert failed_test.threshold == pytest.approx(threshold)
    assert failed_test.bound == pytest.approx(bound) and failed_test.rate == pytest.approx(k / n)
    figures = (
        f"the highest testable threshold {threshold:.2f} is {bound * 100:.1f}% from {n} reviewed "
        f"slates ({k} overrides), above the target 5.0%"
    )
    assert figures in sentences[0] and "nothing is delivered automatically" in sentences[0]
    assert "more evidence will not help" in sentences[0]
    assert "Not enough evidence" not in " ".join(sentences)
    assert figures in output and "too little evidence" not in output
    assert decision.auto_threshold is None and decision.approval_probability is not None
    assert figures in reason and "too little evidence" not in reason, reason
    failed = [line for line in figure.axes[0].lines if line.get_label() == dashboard.FAILED_LABEL]
    assert len(failed) == 1 and np.asarray(failed[0].get_ydata()).tolist() == [pytest.approx(bound)]


def test_too_little_evidence_keeps_its_wording_and_names_no_bound() -> None:
    """No test could run (too few scored slates): the old sentence, with no bound in it."""
    report = trust.TrustReport("ready", 900, 600, None, 30, None, 0.02, 0.2, 0.0, 0)
    status = _status(evidence=30)
    sentence = promise.today_sentences(status)[0]
    assert sentence.startswith("Not enough evidence yet (30 reviewed slates scored when decided")
    assert "too little evidence (30 reviewed slates scored when decided)" in report.message()
    assert "bound at" not in sentence + report.message()


def test_a_failed_test_whose_rate_is_within_the_target_says_more_evidence_can_help() -> None:
    failed = FailedTest(0.9, 0.071, 60, 1, 0.0167, 0.05)
    sentence = promise.today_sentences(_status(evidence=1200, failed_test=failed))[0]
    assert "is 7.1% from 60 reviewed slates (1 override), above the target 5.0%" in sentence
    assert "more reviewed slates can bring the bound below it" in sentence


@pytest.mark.parametrize(("changed", "words"), [(False, "all kept"), (True, "all changed")])
def test_held_out_verdicts_all_of_one_kind_are_named_not_called_too_few(
    session_factory: sessionmaker[Session],
    demo_catalog: DemoCatalog,
    database_url: str,
    changed: bool,
    words: str,
) -> None:
    """120 calibration positions, enough in number, every one kept (or every one changed):
    the calibration cannot be fitted, and saying '120 of 100 needed' contradicts itself."""
    slates = 40
    log = HandLog(np.full(slates, 0.9), np.zeros(slates, dtype=bool), np.zeros(slates, bool))
    _build(session_factory, demo_catalog, log)
    _calibrate_first(session_factory, slates)
    if changed:
        with session_factory() as session:
            session.execute(update(CuratorAction).values(verdict=CuratorVerdict.REMOVED))
            session.commit()
    output = _learn(database_url)
    with session_factory() as session:
        status = trust_status.promise_status(session)
    sentences = promise.today_sentences(status)
    print(output, *sentences, sep="\n")
    assert status.status == ApprovalStatus.TOO_FEW_VERDICTS
    assert status.calibration_verdicts == 3 * slates
    expected = f"the {3 * slates} held-out verdicts are {words}"
    assert expected in sentences[0] and "cannot be fitted yet" in sentences[0]
    assert expected in output
    assert "of 100 needed" not in sentences[0] + output


def test_fewer_held_out_verdicts_than_needed_keep_their_wording() -> None:
    status = _status(status=ApprovalStatus.TOO_FEW_VERDICTS, calibration_verdicts=60)
    assert (
        "too few held-out verdicts to calibrate (60 of 100 needed)"
        in (promise.today_sentences(status)[0])
    )


def _status(**figures: object) -> PromiseStatus:
    defaults: dict[str, object] = {
        "active": True,
        "target": TARGET,
        "confidence_level": CONFIDENCE,
        "audit_share": 0.05,
        "status": ApprovalStatus.READY,
        "model_version": 2,
        "threshold": None,
        "projected_automation": 0.0,
        "evidence": 0,
        "bound": None,
        "bound_slates": 0,
        "audits": 0,
        "audit_overrides": 0,
        "audit_rate": None,
        "audit_low": None,
        "audit_high": None,
        "audit_shares": 1,
        "ece": 0.02,
        "brier": 0.2,
        "calibration_verdicts": 600,
        "reliability": [],
    }
    return PromiseStatus(**(defaults | figures))  # type: ignore[arg-type]


def test_a_bound_on_audit_weighted_slates_names_the_sample_it_was_computed_from() -> None:
    """Audits stand for 1 / their share slates: the bound rests on Kish's effective sample and
    the weighted rate, and the raw counts alone would give another bound."""
    rng = np.random.default_rng(3)
    # Before automation every slate was reviewed (weight 1); then the top went out
    # automatically and only audits of it, at 25%, were reviewed (weight 4).
    early = rng.uniform(0.0, 1.0, 3000)
    audited = rng.uniform(0.5, 1.0, 400)
    scores = np.r_[early, audited]
    chance = np.r_[np.where(early < 0.5, 0.3, 0.005), np.full(400, 0.03)]
    overridden = rng.random(scores.size) < chance
    weights = np.r_[np.ones(3000), np.full(400, 4.0)]
    choice = risk_control.choose_threshold(scores, overridden, weights, 0.10, CONFIDENCE)
    chosen = choice.chosen
    assert chosen is not None and chosen.passed and chosen.n_effective < chosen.n - 100
    status = _status(
        target=0.10,
        threshold=chosen.threshold,
        projected_automation=0.4,
        evidence=choice.evidence,
        bound=chosen.bound,
        bound_slates=chosen.n,
        bound_overrides=chosen.overrides,
        bound_effective=chosen.n_effective,
        bound_rate=chosen.rate,
    )
    sentence = promise.today_sentences(status)[0]
    shown = (
        f"from {chosen.n} reviewed slates ({chosen.overrides} overrides; audits weighted by 1 / "
        f"their audit share: an effective sample of {chosen.n_effective:.0f} slates, weighted "
        f"override rate {chosen.rate * 100:.1f}%)"
    )
    assert shown in sentence
    # The shown figures give back the shown bound (Clopper-Pearson on the effective sample).
    k_eff = chosen.rate * chosen.n_effective
    assert stats.beta.ppf(CONFIDENCE, k_eff + 1, chosen.n_effective - k_eff) == pytest.approx(
        chosen.bound
    )
    raw = stats.beta.ppf(CONFIDENCE, chosen.overrides + 1, chosen.n - chosen.overrides)
    assert abs(raw - chosen.bound) > 0.005  # the raw counts would not


def test_outside_risk_controlled_routing_the_promise_describes_nothing_else() -> None:
    """Partial routing automates on the policy's confidence and never audits: the approval
    threshold's figures and 'no audits yet (5% audited)' would describe what is not done."""
    sentences = promise.today_sentences(_status(active=False, evidence=1200, threshold=0.8))
    assert sentences == [
        "Routing is not risk-controlled: set routing mode to risk_controlled to keep this promise."
    ]
