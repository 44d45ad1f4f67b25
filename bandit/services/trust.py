"""Trustworthy automation in the learn pass: train and calibrate the approval model on
curator verdicts, then choose the risk-controlled auto threshold from audits and held-out
reviews. Flushes, never commits: it runs inside the learner's one transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import ColumnElement, Select, case, func, select
from sqlalchemy.orm import Session

from bandit.db.models import (
    AuditEntry,
    CuratorAction,
    Decision,
    ModelVersion,
    PolicyConfigRow,
    ProposedItem,
    RiskThreshold,
)
from bandit.engine import calibration, risk_control, vw_format
from bandit.engine.approval import ApprovalExample, ApprovalModel, slate_approval
from bandit.engine.config import PolicyConfig
from bandit.engine.vocabulary import (
    ApprovalRole,
    ApprovalStatus,
    CuratorVerdict,
    RoutingMode,
    TrustAction,
)
from bandit.services.approval_store import approval_from
from bandit.services.delivery import stored_config
from bandit.services.learner_cache import LearnerCache

# Fewer held-out verdicts than this cannot calibrate a probability worth automating on.
MIN_CALIBRATION_VERDICTS = 100
# The bound's evidence: slates decided before any approval model carry no score.
SCORED_REVIEWS = "reviewed slates scored when decided"
CALIBRATION_WINDOW = 600  # most recent held-out positions used to fit the calibration
EVALUATION_WINDOW = 600  # most recent evidence positions used for ECE, Brier, the diagram
LEARNER_ACTOR = "learner"


@dataclass(frozen=True)
class TrustReport:
    """What the approval model and the threshold procedure made of this pass."""

    status: str
    trained_verdicts: int
    calibration_verdicts: int
    threshold: float | None
    evidence: int  # reviewed slates in the window with an approval score logged when decided
    bound: float | None
    ece: float | None
    brier: float | None
    projected_automation: float | None
    # The bound's sample: reviewed slates at or above the chosen threshold, or above the
    # failed first one (`tested_threshold`), and how many of them a curator changed.
    bound_slates: int = 0
    tested_threshold: float | None = None
    bound_overrides: int = 0
    # With audits among the sample: Kish's effective sample and the weighted override rate,
    # which the bound is computed from.
    bound_effective: float | None = None
    bound_rate: float | None = None
    target: float | None = None  # the promise the bound was tested against
    evidence_scope: str = risk_control.WHOLE_WINDOW  # what the deciding bound was run on
    calibration_kept: int | None = None  # of the calibration verdicts, how many kept the item

    def message(self) -> str:
        """One line for `hitl learn`."""
        if self.status != ApprovalStatus.READY:
            return f"approval model: {self._uncalibrated()}; every decision is routed to review"
        calibrated = f"approval model calibrated (ECE {_number(self.ece)})"
        if self.threshold is None and self.bound is not None:
            failed = failed_test_clause(
                self.tested_threshold,
                self.bound,
                self.bound_slates,
                self.bound_overrides,
                self.target,
                self.bound_effective,
                self.bound_rate,
            )
            return (
                f"{calibrated}; {failed}{scope_clause(self.evidence_scope)}: nothing is "
                "delivered automatically"
            )
        if self.threshold is None:
            return (
                f"{calibrated}; too little evidence "
                f"({self.evidence} {SCORED_REVIEWS}) to bound the override rate: "
                "nothing is delivered automatically"
            )
        sample = bound_sample_clause(
            self.bound_slates, self.bound_overrides, self.bound_effective, self.bound_rate
        )
        return (
            f"auto threshold {self.threshold:.2f} (override bound {self.bound:.3f} on "
            f"{sample} at or above it, of {self.evidence} {SCORED_REVIEWS} in the "
            f"{window_words(self.evidence_scope)}; "
            f"ECE {_number(self.ece)})"
        )

    def _uncalibrated(self) -> str:
        return uncalibrated_clause(self.calibration_verdicts, self.calibration_kept)


def uncalibrated_clause(verdicts: int, kept: int | None) -> str:
    """Why the calibration was not fitted: too few held-out verdicts, or enough of them all
    alike (isotonic regression on one class says nothing about the other)."""
    if verdicts < MIN_CALIBRATION_VERDICTS:
        return (
            f"too few held-out verdicts to calibrate "
            f"({verdicts} of {MIN_CALIBRATION_VERDICTS} needed)"
        )
    if kept is None:  # a pass stored before the kept count was
        alike = "all kept or all changed"
    elif kept == 0:
        alike = "all changed (removed or swapped)"
    else:
        alike = "all kept"
    return (
        f"the {verdicts} held-out verdicts are {alike}, so the calibration cannot be fitted "
        "yet (it needs both kept and changed items)"
    )


def window_words(scope: str) -> str:
    """Where the deciding bound's evidence lies: the window, or its newer half."""
    if scope == risk_control.NEWER_HALF:
        return "newer half of the window (drift guard)"
    return "window"


def scope_clause(scope: str) -> str:
    """Appended to a failed test's clause when the drift guard's newer half failed it."""
    if scope == risk_control.NEWER_HALF:
        return ", on the newer half of the window (drift guard)"
    return ""


def audits_weighted(slates: int, effective: float | None) -> bool:
    """Whether audits (weight 1 / their share) are among a bound's sample: its effective
    sample is then smaller than its count of slates."""
    return effective is not None and abs(effective - slates) >= 0.5


def bound_sample_clause(
    slates: int, overrides: int, effective: float | None, rate: float | None
) -> str:
    """The bound's sample in words. When audits are among it, each stands for 1 / its audit
    share slates, so the bound rests on the smaller effective sample and the weighted rate,
    not on the raw counts (which would give another bound)."""
    changed = f"{overrides} override{'' if overrides == 1 else 's'}"
    if rate is None or not audits_weighted(slates, effective):
        return f"{slates} reviewed slates ({changed})"
    return (
        f"{slates} reviewed slates ({changed}; audits weighted by 1 / their audit share: an "
        f"effective sample of {effective:.0f} slates, weighted override rate {rate * 100:.1f}%)"
    )


def failed_test_clause(
    threshold: float | None,
    bound: float,
    slates: int,
    overrides: int,
    target: float | None,
    effective: float | None = None,
    rate: float | None = None,
) -> str:
    """The first threshold test ran and failed: the curators change too many of even the
    best-scored slates for the target, which more evidence of the same kind will not fix."""
    at = "the highest testable threshold" + ("" if threshold is None else f" {threshold:.2f}")
    against = "the target" + ("" if target is None else f" {target * 100:.1f}%")
    sample = bound_sample_clause(slates, overrides, effective, rate)
    return f"the override bound at {at} is {bound * 100:.1f}% from {sample}, above {against}"


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def update_approval(
    session: Session,
    actions: Sequence[CuratorAction],
    decisions: dict[int, Decision],
    learns_from: Callable[[Decision], bool],
    previous: ModelVersion | None,
    config: PolicyConfig,
    cache: LearnerCache,
) -> tuple[ApprovalModel, dict[str, Any], TrustReport]:
    """Train on this pass's training verdicts, recalibrate, evaluate and pick the threshold."""
    model = approval_from(previous)[0] or ApprovalModel.fresh()
    lines = _ActionLines(session, cache)
    training = [
        a
        for a in actions
        if not a.agreement_only
        and decisions[a.decision_id].approval_role == ApprovalRole.TRAIN
        and learns_from(decisions[a.decision_id])
    ]
    lines.prefetch(a.item_id for a in training)
    model.learn(
        [
            ApprovalExample(
                decisions[a.decision_id].context,
                lines.line(a.item_id),
                a.position,
                a.verdict == CuratorVerdict.KEPT,
            )
            for a in training
        ]
    )
    # Apprentice-mode verdicts are no approval labels (the human composed the slate): neither
    # trained on above nor calibrated or evaluated on below.
    composed = _apprentice_configs(session)
    held_out = _recent_verdicts(session, ApprovalRole.CALIBRATE, CALIBRATION_WINDOW, composed)
    raw, kept = _score(model, held_out, lines, calibrated=False)
    state: dict[str, Any] = {"calibration": None, "threshold": None}
    model.calibration = None
    if len(kept) >= MIN_CALIBRATION_VERDICTS and 0 < kept.sum() < len(kept):
        model.calibration = calibration.fit_isotonic(raw, kept)
        state["calibration"] = model.calibration.to_document()
    status = ApprovalStatus.READY if model.calibrated else ApprovalStatus.TOO_FEW_VERDICTS
    evaluation = _recent_verdicts(session, ApprovalRole.EVIDENCE, EVALUATION_WINDOW, composed)
    predicted, observed = _score(model, evaluation, lines, calibrated=True)
    ece = calibration.expected_calibration_error(predicted, observed) if len(observed) else None
    brier = calibration.brier_score(predicted, observed) if len(observed) else None
    state["metrics"] = {
        "ece": ece,
        "brier": brier,
        "verdicts": int(len(observed)),
        "reliability": calibration.reliability_table(predicted, observed),
    }
    choice = choose_auto_threshold(session, config) if model.calibrated else None
    projected = _projected_automation(session, config, choice, model, lines)
    state["status"] = str(status)
    state["threshold"] = None if choice is None else choice.threshold
    state["risk"] = None if choice is None else choice.to_document()
    # The promise in force, also when nothing could be tested (no calibrated model).
    state["promise"] = {
        "target": config.max_override_rate,
        "confidence_level": config.confidence_level,
    }
    state["projected_automation"] = projected
    state["audits"] = audit_summary(session, config)
    chosen = None if choice is None else choice.chosen
    report = TrustReport(
        status=str(status),
        trained_verdicts=len(training),
        calibration_verdicts=int(len(kept)),
        threshold=state["threshold"],
        evidence=0 if choice is None else choice.evidence,
        bound=None if chosen is None else chosen.bound,
        bound_slates=0 if chosen is None else chosen.n,
        tested_threshold=None if chosen is None else chosen.threshold,
        bound_overrides=0 if chosen is None else chosen.overrides,
        bound_effective=None if chosen is None else chosen.n_effective,
        bound_rate=None if chosen is None else chosen.rate,
        target=config.max_override_rate,
        evidence_scope=risk_control.WHOLE_WINDOW if choice is None else choice.evidence_scope,
        calibration_kept=int(kept.sum()),
        ece=ece,
        brier=brier,
        projected_automation=projected,
    )
    return model, state, report


def record_threshold(
    session: Session, version: int, report: TrustReport, state: dict[str, Any], now: datetime
) -> RiskThreshold:
    """Store the chosen threshold with its evidence and audit it (flushes). With no test run
    (no calibrated model, or too little evidence to test any threshold) the rate and bound
    are None: nothing was measured."""
    risk = state.get("risk") or {}
    chosen = risk.get("chosen") or {}
    promise = state["promise"]
    row = RiskThreshold(
        model_version=version,
        threshold=report.threshold,
        target=float(promise["target"]),
        confidence_level=float(promise["confidence_level"]),
        evidence=report.evidence,
        n=int(chosen.get("n", 0)),
        overrides=int(chosen.get("overrides", 0)),
        rate=chosen.get("rate"),
        bound=chosen.get("bound"),
        projected_automation=report.projected_automation,
        details={"report": asdict(report), "risk": risk, "audits": state.get("audits")},
        created_at=now,
    )
    session.add(row)
    session.add(
        AuditEntry(
            actor=LEARNER_ACTOR,
            action=TrustAction.THRESHOLD_CHOSEN,
            target=f"model version {version}",
            details={
                "threshold": report.threshold,
                "bound": row.bound,
                "n": row.n,
                "overrides": row.overrides,
                "status": report.status,
            },
            created_at=now,
        )
    )
    session.flush()
    return row


def audit_summary(session: Session, config: PolicyConfig) -> dict[str, Any]:
    """Audited auto-eligible slates in the window: how many a curator changed, and the override
    rate of the auto-eligible slates they were drawn from with its two-sided interval at the
    config's level, each audit standing for 1 / its logged audit probability slates, so that a
    change of `audit_share` inside the window does not tilt it towards the weeks audited more
    (`risk_control.rate_interval`)."""
    latest_audits = (
        select(Decision.id)
        .where(Decision.audit.is_(True))
        .order_by(Decision.id.desc())
        .limit(config.risk_window)
    )
    rows = session.execute(
        _first_reviews(Decision.id, Decision.audit_probability, _changed_anything()).where(
            Decision.id.in_(latest_audits.scalar_subquery())
        )
    ).all()
    interval = risk_control.rate_interval(
        [row[2] for row in rows], [_drawn_with(row[1]) for row in rows], config.confidence_level
    )
    return {
        "n": interval.n,
        "overrides": interval.overrides,
        "rate": interval.rate,
        "low": interval.low,
        "high": interval.high,
        "audit_shares": interval.strata,
    }


def choose_auto_threshold(session: Session, config: PolicyConfig) -> risk_control.ThresholdChoice:
    """The risk-controlled threshold on the latest `risk_window` first-round reviews."""
    # Every reviewed decision is evidence, whatever its approval role: its score was logged
    # before its verdicts reached any model, so it is out of sample (prequential). The held-out
    # roles matter only where the current model re-scores old verdicts (calibration, ECE).
    rows = session.execute(
        _first_reviews(
            Decision.id,
            Decision.approval_probability,
            Decision.audit,
            Decision.audit_probability,
            _changed_anything(),
        )
        .where(Decision.approval_probability.is_not(None))
        .order_by(Decision.id.desc())
        .limit(config.risk_window)
    ).all()
    scores = np.array([r[1] for r in rows], dtype=float)
    weights = np.array([1.0 / _drawn_with(r[3]) if r[2] else 1.0 for r in rows])
    overridden = np.array([r[4] for r in rows], dtype=float)
    choose = risk_control.guarded_choice if config.drift_guard else risk_control.choose_threshold
    return choose(scores, overridden, weights, config.max_override_rate, config.confidence_level)


def _projected_automation(
    session: Session,
    config: PolicyConfig,
    choice: risk_control.ThresholdChoice | None,
    model: ApprovalModel,
    lines: _ActionLines,
) -> float | None:
    """The share of the latest `risk_window` decisions that routing would now deliver
    automatically: their slates scored by this pass's model, cut at the chosen threshold,
    less the audit share. Not their logged scores: those came from older (or no, or
    uncalibrated) approval models, and routing's next answer uses this one."""
    recent = select(Decision.id).order_by(Decision.id.desc()).limit(config.risk_window).subquery()
    rows = session.execute(
        select(ProposedItem.decision_id, ProposedItem.item_id, ProposedItem.position)
        .where(ProposedItem.decision_id.in_(select(recent.c.id)))
        .order_by(ProposedItem.decision_id, ProposedItem.position)
    ).all()
    if not rows:
        return None
    if choice is None or choice.threshold is None:
        return 0.0
    items, _ = _score(model, [(d, i, p, False) for d, i, p in rows], lines, calibrated=True)
    # Rows come slate by slate: each slate's approval is the product over its positions.
    starts = [k for k in range(len(rows)) if k == 0 or rows[k][0] != rows[k - 1][0]]
    bounds = [*starts, len(rows)]
    above = sum(
        slate_approval(items[start:end]) >= choice.threshold
        for start, end in zip(bounds, bounds[1:], strict=False)
    )
    return above / len(starts) * (1.0 - config.audit_share)


def _drawn_with(audit_probability: float) -> float:
    """The probability an audit was drawn with. It is never 0 for an audit; a row that says
    0 counts as drawn for sure (weight 1), so it is neither lost nor infinitely heavy."""
    return audit_probability if audit_probability > 0 else 1.0


def _first_reviews(*columns: Any) -> Select[Any]:
    """One row per decision a first-round curator reviewed, with `columns` (grouped by it)."""
    return (
        select(*columns)
        .join(CuratorAction, CuratorAction.decision_id == Decision.id)
        .where(CuratorAction.agreement_only.is_(False))
        .group_by(Decision.id)
    )


def _changed_anything() -> ColumnElement[int]:
    """Per reviewed decision: 1 if the first-round curator changed any item, else 0."""
    return func.max(case((CuratorAction.verdict != CuratorVerdict.KEPT, 1), else_=0))


def _apprentice_configs(session: Session) -> list[int]:
    """The ids of the policy config versions that route in apprentice mode."""
    return [
        config_id
        for config_id in session.scalars(select(PolicyConfigRow.id))
        if stored_config(session, config_id).routing_mode == RoutingMode.APPRENTICE
    ]


def _recent_verdicts(
    session: Session, role: ApprovalRole, limit: int, excluded_configs: Sequence[int]
) -> list[tuple[int, str, int, bool]]:
    query = (
        select(
            CuratorAction.decision_id,
            CuratorAction.item_id,
            CuratorAction.position,
            CuratorAction.verdict,
        )
        .join(Decision, Decision.id == CuratorAction.decision_id)
        .where(Decision.approval_role == role, CuratorAction.agreement_only.is_(False))
    )
    if excluded_configs:
        query = query.where(Decision.policy_config_id.not_in(excluded_configs))
    rows = session.execute(query.order_by(CuratorAction.id.desc()).limit(limit)).all()
    return [(d, i, p, v == CuratorVerdict.KEPT) for d, i, p, v in rows]


def _score(
    model: ApprovalModel,
    verdicts: list[tuple[int, str, int, bool]],
    lines: _ActionLines,
    calibrated: bool,
) -> tuple[np.ndarray, np.ndarray]:
    lines.prefetch(item_id for _, item_id, _, _ in verdicts)
    features = lines.context_features({decision_id for decision_id, _, _, _ in verdicts})
    scores = np.array(
        [
            model.raw_at_features(features[decision_id], lines.line(item), position)
            for decision_id, item, position, _ in verdicts
        ],
        dtype=float,
    )
    if calibrated and model.calibration is not None:
        scores = model.calibration(scores)
    return scores, np.array([v[3] for v in verdicts], dtype=float)


class _ActionLines:
    """Items' VW lines for one learn pass, from the learner's cache."""

    def __init__(self, session: Session, cache: LearnerCache) -> None:
        self._session = session
        self._cache = cache

    def prefetch(self, item_ids: Any) -> None:
        self._cache.rows(self._session, item_ids)

    def context_features(self, decision_ids: set[int]) -> dict[int, list[str]]:
        return self._cache.context_features(self._session, decision_ids)

    def line(self, item_id: str) -> str:
        # An item deleted from the catalog keeps only its id as a feature.
        line = self._cache.line(self._session, item_id)
        return line if line is not None else f"|{vw_format.ITEM_NAMESPACE} id={item_id}"
