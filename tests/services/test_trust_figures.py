"""Every figure of the promise recomputed by an independent reference on a hand-built log.

The log: every decision reviewed, then its logged approval probability, audit flag and
audit probability set by hand, so that the threshold, its evidence, the audited override
interval and the calibration figures have known values (scipy's beta and binomial test,
direct formulas for ECE and Brier).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient
from scipy import stats
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from bandit.db.models import CuratorAction, Decision, ModelVersion, RiskThreshold
from bandit.engine.vocabulary import ApprovalRole, CuratorVerdict
from bandit.services import accounts, configs, decisions, review, trust, trust_status
from bandit.services.approval_store import approval_from
from bandit.services.learner_cache import LearnerCache
from bandit.services.runtime import EngineRuntime
from curation_app import promise
from curation_app.cli import main
from tests.conftest import CURATOR_PASSWORD, DemoCatalog
from tests.curation_app.test_ops import _samples, _value
from tests.services.test_audits import trusted_model

AUDITS = 75  # score 0.95, audit probability 0.2, none changed
CLEAN = 75  # score 0.90, reviewed by routing, one changed
LOW = 300  # score 0.20, half changed
AUDIT_PROBABILITY = 0.2
CONFIDENCE = 0.9


@dataclass(frozen=True)
class HandLog:
    scores: np.ndarray
    overridden: np.ndarray
    audit: np.ndarray


def _design() -> HandLog:
    n = AUDITS + CLEAN + LOW
    scores = np.array([0.95] * AUDITS + [0.90] * CLEAN + [0.20] * LOW)
    overridden = np.zeros(n, dtype=bool)
    overridden[AUDITS] = True  # one of the clean reviews
    overridden[AUDITS + CLEAN :: 2] = True  # half of the low ones
    audit = np.arange(n) < AUDITS
    return HandLog(scores, overridden, audit)


def _build(
    sessions: sessionmaker[Session], catalog: DemoCatalog, log: HandLog, **settings: Any
) -> None:
    """Rank and review len(log) decisions, then log the designed scores and audits."""
    trusted_model(sessions, threshold=None, confidence_level=CONFIDENCE, **settings)
    runtime = EngineRuntime(np.random.default_rng(21))
    with sessions() as session:
        curator = accounts.add_curator(session, "hand-curator", CURATOR_PASSWORD).id
        for index in range(len(log.scores)):
            context = catalog.customers[index % len(catalog.customers)]
            decision, _ = decisions.rank(session, runtime, decisions.RankRequest(context=context))
            task = review.claim_next(session, curator)
            assert task is not None and task.decision_id == decision.id
            # Every second item of a changed slate is removed; the rest kept.
            verdicts = [
                review.ItemVerdict(
                    p.position,
                    "remove" if log.overridden[index] and p.position == 1 else "keep",
                )
                for p in task.decision.proposed
            ]
            review.submit_review(session, task.id, curator, task.lease_token or "", verdicts, 2.0)
            audit = bool(log.audit[index])
            values: dict[str, object] = {
                "approval_probability": float(log.scores[index]),
                "audit": audit,
                "audit_probability": AUDIT_PROBABILITY if audit else 0.0,
            }
            values["approval_role"] = _role(index, audit)
            session.execute(update(Decision).where(Decision.id == decision.id).values(**values))
        session.commit()


def _role(index: int, audit: bool) -> ApprovalRole:
    """Roles fixed by index (event ids are random), so every run calibrates: every tenth
    reviewed slate calibrates (about 38 slates, 114 positions, both verdicts), every audit
    and two in ten others are evidence."""
    if audit or index % 10 in (1, 2):
        return ApprovalRole.EVIDENCE
    return ApprovalRole.CALIBRATE if index % 10 == 0 else ApprovalRole.TRAIN


def _reference_bound(log: HandLog, threshold: float) -> tuple[int, float, float, float]:
    """n, Hajek rate, Kish n_eff and the one-sided Clopper-Pearson bound above `threshold`."""
    mask = log.scores >= threshold
    w = np.where(log.audit, 1 / AUDIT_PROBABILITY, 1.0)[mask]
    y = log.overridden[mask].astype(float)
    rate = float((w * y).sum() / w.sum())
    n_eff = float(w.sum() ** 2 / (w**2).sum())
    k = rate * n_eff
    return int(mask.sum()), rate, n_eff, float(stats.beta.ppf(CONFIDENCE, k + 1, n_eff - k))


@pytest.fixture
def learned(
    session_factory: sessionmaker[Session], demo_catalog: DemoCatalog, database_url: str
) -> tuple[HandLog, str]:
    log = _design()
    _build(session_factory, demo_catalog, log)
    result = CliRunner().invoke(main, ["learn", "--database-url", database_url])
    assert result.exit_code == 0, result.output
    return log, result.output


def test_the_threshold_audits_and_calibration_match_a_recomputation_from_the_log(
    session_factory: sessionmaker[Session], learned: tuple[HandLog, str]
) -> None:
    log, output = learned
    with session_factory() as session:
        row = session.scalars(select(RiskThreshold)).one()
        status = trust_status.promise_status(session)
    assert status.status == "ready", output
    # Reference: at 0.90 both groups count (audits weighted 5, reviews 1) and pass; at 0.20
    # the low group joins, with half its slates changed, and fails. So the grid's 0.21 wins.
    n, rate, n_eff, bound = _reference_bound(log, 0.21)
    print(f"system n={row.n} rate={row.rate:.5f} bound={row.bound:.5f} threshold={row.threshold}")
    print(f"reference n={n} rate={rate:.5f} n_eff={n_eff:.2f} bound={bound:.5f} threshold=0.21")
    assert row.threshold == pytest.approx(0.21)
    assert (row.n, row.overrides) == (n, int(log.overridden[log.scores >= 0.21].sum()))
    assert row.rate == pytest.approx(rate)
    assert row.bound == pytest.approx(bound)
    assert _reference_bound(log, 0.20)[3] > 0.05
    assert row.evidence == len(log.scores)
    _check_audit_interval(session_factory, log)
    _check_calibration(session_factory)


def test_the_settings_sentence_names_the_slates_its_bound_rests_on(
    session_factory: sessionmaker[Session], learned: tuple[HandLog, str]
) -> None:
    log, output = learned
    with session_factory() as session:
        status = trust_status.promise_status(session)
    n, _, n_eff, bound = _reference_bound(log, 0.21)
    sentence = promise.today_sentences(status)[0]
    print(sentence)
    print(output)
    # The bound rests on the 150 slates at or above the threshold, not the 450 of the window.
    assert f"{bound * 100:.1f}%" in sentence
    assert f"from {n} reviewed slates" in sentence
    assert f"from {len(log.scores)} reviewed slates" not in sentence
    assert f"on {n} reviewed slates" in output


def test_reviews_decided_before_any_approval_model_are_named_as_no_evidence(
    session_factory: sessionmaker[Session], demo_catalog: DemoCatalog, database_url: str
) -> None:
    """450 slates reviewed, none scored when decided (no approval model yet): the bound has
    no evidence, and the page and `hitl learn` say which slates count, not '0 reviewed'."""
    log = _design()
    _build(session_factory, demo_catalog, log)
    with session_factory() as session:
        session.execute(update(Decision).values(approval_probability=None))
        session.commit()
    status, sentence, output = _learned_status(session_factory, database_url)
    assert status.status == "ready" and status.threshold is None and status.evidence == 0
    assert "0 reviewed slates scored when decided" in sentence and "no score" in sentence
    assert "(0 reviewed slates scored when decided)" in output
    assert "(0 reviewed slates)" not in sentence + output


def _learned_status(
    sessions: sessionmaker[Session], database_url: str
) -> tuple[trust_status.PromiseStatus, str, str]:
    """Run `hitl learn`, then the promise as stored, its first sentence and the CLI output."""
    result = CliRunner().invoke(main, ["learn", "--database-url", database_url])
    assert result.exit_code == 0, result.output
    with sessions() as session:
        status = trust_status.promise_status(session)
    sentence = promise.today_sentences(status)[0]
    print(sentence, result.output, sep="\n")
    return status, sentence, result.output


def _check_audit_interval(session_factory: sessionmaker[Session], log: HandLog) -> None:
    """The audited override rate and its interval: the audits' exact binomial interval."""
    with session_factory() as session:
        status = trust_status.promise_status(session)
    k, n = int(log.overridden[log.audit].sum()), int(log.audit.sum())
    reference = stats.binomtest(k, n).proportion_ci(CONFIDENCE, method="exact")
    print(
        f"system {status.audit_overrides}/{status.audits} [{status.audit_low}, {status.audit_high}]"
    )
    print(f"reference {k}/{n} [{reference.low}, {reference.high}]")
    assert (status.audits, status.audit_overrides) == (n, k)
    assert status.audit_low == pytest.approx(reference.low, abs=1e-12)
    assert status.audit_high == pytest.approx(reference.high, rel=1e-9)


def test_audits_drawn_at_two_shares_count_for_the_slates_each_stands_for(
    session_factory: sessionmaker[Session], learned: tuple[HandLog, str]
) -> None:
    """The audit share fell from 0.2 to 0.05 inside the window: an audit of the later weeks
    stands for 20 auto-delivered slates, not 5, and the interval is the two shares' exact
    intervals at 1 - 0.1 / 4 each, weighted by the slates they stand for (scipy's binomtest)."""
    with session_factory() as session:
        audits = session.scalars(
            select(Decision.id).where(Decision.audit.is_(True)).order_by(Decision.id)
        ).all()
        later, changed = audits[:25], [*audits[:5], *audits[-3:]]
        session.execute(
            update(Decision).where(Decision.id.in_(later)).values(audit_probability=0.05)
        )
        session.execute(
            update(CuratorAction)
            .where(CuratorAction.decision_id.in_(changed), CuratorAction.position == 0)
            .values(verdict=CuratorVerdict.REMOVED)
        )
        session.commit()
        summary = trust.audit_summary(session, configs.active_config(session)[1])
    strata = {0.05: (5, 25), AUDIT_PROBABILITY: (3, len(audits) - 25)}
    stands_for = {p: n / p for p, (_, n) in strata.items()}
    total = sum(stands_for.values())
    rate = sum(stands_for[p] / total * k / n for p, (k, n) in strata.items())
    cis = {
        p: stats.binomtest(k, n).proportion_ci(1 - (1 - CONFIDENCE) / 2, method="exact")
        for p, (k, n) in strata.items()
    }
    low = sum(stands_for[p] / total * ci.low for p, ci in cis.items())
    high = sum(stands_for[p] / total * ci.high for p, ci in cis.items())
    print(f"system {summary}")
    print(f"reference rate {rate:.5f} [{low:.5f}, {high:.5f}]; unweighted {8 / len(audits):.5f}")
    assert (summary["n"], summary["overrides"], summary["audit_shares"]) == (len(audits), 8, 2)
    assert summary["rate"] == pytest.approx(rate)
    assert summary["low"] == pytest.approx(low, abs=1e-12)
    assert summary["high"] == pytest.approx(high, rel=1e-9)
    assert summary["rate"] > 1.4 * 8 / len(audits)  # the later audits count 4x, 5 changed


def test_the_settings_sentence_says_when_audits_were_weighted(
    session_factory: sessionmaker[Session], learned: tuple[HandLog, str]
) -> None:
    with session_factory() as session:
        status = trust_status.promise_status(session)
    one_share = next(line for line in promise.today_sentences(status) if "audits changed" in line)
    two_shares = next(
        line
        for line in promise.today_sentences(replace(status, audit_shares=2))
        if "audits changed" in line
    )
    assert "audit share changed" not in one_share
    assert "audit share changed" in two_shares and f"of {status.audits} audits" in two_shares


def _check_calibration(session_factory: sessionmaker[Session]) -> None:
    """ECE and Brier: those of the latest 600 evidence positions under the stored model."""
    with session_factory() as session:
        saved = session.scalars(select(ModelVersion).order_by(ModelVersion.version.desc())).first()
        assert saved is not None
        model, _ = approval_from(saved)
        assert model is not None and model.calibration is not None
        metrics = (saved.approval_state or {})["metrics"]
        # The latest 600 evidence positions, re-scored here with the stored model and map.
        rows = session.execute(
            select(CuratorAction, Decision.context)
            .join(Decision, Decision.id == CuratorAction.decision_id)
            .where(
                Decision.approval_role == ApprovalRole.EVIDENCE,
                CuratorAction.agreement_only.is_(False),
            )
            .order_by(CuratorAction.id.desc())
            .limit(600)
        ).all()
        cache = LearnerCache()
        raw = [model.raw_at(c, cache.line(session, a.item_id) or "", a.position) for a, c in rows]
    p = model.calibration(np.array(raw))
    y = np.array([a.verdict == "kept" for a, _ in rows], dtype=float)
    # Ten equal-width bins [b/10, (b+1)/10), the last one closed.
    which = np.clip(np.digitize(p, np.linspace(0.1, 0.9, 9)), 0, 9)
    ece = sum(
        (which == b).mean() * abs(y[which == b].mean() - p[which == b].mean())
        for b in range(10)
        if (which == b).any()
    )
    brier = float(np.mean((p - y) ** 2))
    print(f"system ECE {metrics['ece']:.5f} Brier {metrics['brier']:.5f} on {metrics['verdicts']}")
    print(f"reference ECE {ece:.5f} Brier {brier:.5f} on {len(y)}")
    assert metrics["verdicts"] == len(y)
    assert metrics["ece"] == pytest.approx(ece, abs=1e-9)
    assert metrics["brier"] == pytest.approx(brier, abs=1e-9)


def test_the_projected_automation_is_the_current_models_share_above_the_threshold(
    session_factory: sessionmaker[Session], learned: tuple[HandLog, str]
) -> None:
    """'X% of recent decisions would be delivered automatically': routing's next answer, so
    the recent decisions' slates scored by the approval model now in force, cut at the
    threshold now in force, less the audit share (audits go to review-after)."""
    with session_factory() as session:
        saved = session.scalars(select(ModelVersion).order_by(ModelVersion.version.desc())).first()
        assert saved is not None
        model, threshold = approval_from(saved)
        assert model is not None and threshold is not None
        status = trust_status.promise_status(session)
        cache = LearnerCache()
        recent = session.scalars(select(Decision).order_by(Decision.id.desc()).limit(1500)).all()
        scores = [
            model.slate_probability(
                d.context,
                [cache.line(session, p.item_id) or "" for p in sorted(d.proposed, key=_at)],
            )
            for d in recent
        ]
    reference = float(np.mean(np.array(scores) >= threshold)) * (1 - AUDIT_PROBABILITY)
    logged = float(np.mean(_design().scores >= threshold)) * (1 - AUDIT_PROBABILITY)
    print(f"system {status.projected_automation}; reference {reference}; logged-score {logged}")
    assert status.projected_automation == pytest.approx(reference)


def _at(proposed: object) -> int:
    return int(getattr(proposed, "position"))  # noqa: B009


def test_the_metrics_are_the_promise_the_settings_page_states(
    session_factory: sessionmaker[Session], learned: tuple[HandLog, str], client: FlaskClient
) -> None:
    """An alert on /metrics reads the bound routing used, not another sample's: the served
    pass's threshold, bound, its evidence and the audited rate's interval."""
    log, _ = learned
    n, _, n_eff, bound = _reference_bound(log, 0.21)
    with session_factory() as session:
        status = trust_status.promise_status(session)
    samples = _samples(client)
    assert _value(samples, "hitl_risk_controlled") == 1.0
    assert _value(samples, "hitl_promise_target") == pytest.approx(0.05)
    assert _value(samples, "hitl_auto_threshold") == pytest.approx(0.21)
    assert _value(samples, "hitl_auto_override_bound") == pytest.approx(bound)
    assert _value(samples, "hitl_auto_override_evidence") == n
    assert _value(samples, "hitl_auto_override_effective_sample") == pytest.approx(n_eff)
    assert _value(samples, "hitl_audits") == AUDITS == status.audits
    for estimate, figure in (
        ("rate", status.audit_rate),
        ("low", status.audit_low),
        ("high", status.audit_high),
    ):
        assert _value(samples, "hitl_audited_override_rate", estimate=estimate) == pytest.approx(
            figure
        )


def test_the_drift_guard_holds_the_threshold_back_on_the_newer_half_and_says_so(
    session_factory: sessionmaker[Session], demo_catalog: DemoCatalog, database_url: str
) -> None:
    """The same log, whose newer half is the low-scored slates curators changed half of: the
    whole window allows 0.21 (test above), its newer half allows nothing, so nothing is
    automated, and the page and `hitl learn` say the newer half decided."""
    _build(session_factory, demo_catalog, _design(), drift_guard=True)
    status, sentence, output = _learned_status(session_factory, database_url)
    assert status.threshold is None and status.evidence_scope == "newer half"
    assert status.evidence == (AUDITS + CLEAN + LOW) // 2
    guard = "on the newer half of the window (drift guard): nothing is delivered automatically"
    assert guard in sentence and guard in output
