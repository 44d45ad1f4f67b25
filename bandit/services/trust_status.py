"""Read model of the promise: the target, the threshold in force, its evidence, calibration."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bandit.db.models import ModelVersion, RiskThreshold
from bandit.engine import risk_control
from bandit.engine.vocabulary import ApprovalStatus, RoutingMode
from bandit.services import configs, trust
from bandit.services.approval_store import COPIED_FROM

HISTORY_LIMIT = 300


@dataclass(frozen=True)
class FailedTest:
    """A pass's first threshold test ran and failed: nothing is automated, not for want of
    evidence but because the curators changed too many of even the best-scored slates."""

    threshold: float | None  # the highest testable threshold (None: a row that lacks it)
    bound: float
    slates: int  # reviewed slates at or above it
    overrides: int
    rate: float | None  # their override rate, audits weighted (None: a row that lacks it)
    target: float | None
    effective: float | None = None  # Kish's effective sample of the weighted slates


@dataclass(frozen=True)
class PromiseStatus:
    """Numbers for the settings page and the dashboard; curation_app words them."""

    active: bool  # risk-controlled routing is the active routing mode
    target: float
    confidence_level: float
    audit_share: float
    status: str  # ApprovalStatus
    model_version: int | None
    threshold: float | None
    projected_automation: float | None
    evidence: int  # reviewed slates in the window with an approval score logged when decided
    bound: float | None
    bound_slates: int  # reviewed slates at or above the threshold: the bound's sample
    audits: int
    audit_overrides: int
    audit_rate: float | None
    audit_low: float | None
    audit_high: float | None
    audit_shares: int  # distinct audit probabilities in the window (more than 1: weighted)
    ece: float | None
    brier: float | None
    calibration_verdicts: int
    reliability: list[dict[str, float]]
    # Set when no threshold is in force although one was tested (see `FailedTest`).
    failed_test: FailedTest | None = None
    calibration_kept: int | None = None  # of the calibration verdicts, how many kept the item
    # The bound's sample as the bound used it: overrides, Kish's effective sample and the
    # override rate with audits weighted (None: a row stored before they were).
    bound_overrides: int = 0
    bound_effective: float | None = None
    bound_rate: float | None = None
    evidence_scope: str = risk_control.WHOLE_WINDOW  # or the drift guard's newer half


def promise_status(session: Session) -> PromiseStatus:
    """The promise as the latest learn pass left it."""
    _, config = configs.active_config(session)
    # The state only: the model bytes are large and not needed to describe the promise.
    saved = session.execute(
        select(ModelVersion.version, ModelVersion.approval_state)
        .order_by(ModelVersion.version.desc())
        .limit(1)
    ).first()
    state: dict[str, Any] = (saved.approval_state or {}) if saved is not None else {}
    latest = None if saved is None else _threshold_row(session, saved.version, state)
    report = (latest.details or {}).get("report", {}) if latest is not None else {}
    # Audits are facts of the log, not of an approval model: a version that serves none
    # (a rollback to before the first) still has the audits of earlier automation.
    audits = (state.get("audits") or {}) if state else trust.audit_summary(session, config)
    metrics = state.get("metrics") or {}
    return PromiseStatus(
        active=config.routing_mode == RoutingMode.RISK_CONTROLLED,
        target=config.max_override_rate,
        confidence_level=config.confidence_level,
        audit_share=config.audit_share,
        status=state.get("status", ApprovalStatus.UNTRAINED),
        model_version=None if saved is None else saved.version,
        threshold=state.get("threshold"),
        projected_automation=state.get("projected_automation"),
        evidence=0 if latest is None else latest.evidence,
        bound=None if latest is None else latest.bound,
        bound_slates=0 if latest is None else latest.n,
        audits=int(audits.get("n", 0)),
        audit_overrides=int(audits.get("overrides", 0)),
        audit_rate=audits.get("rate"),
        audit_low=audits.get("low"),
        audit_high=audits.get("high"),
        audit_shares=int(audits.get("audit_shares", 1)),
        ece=metrics.get("ece"),
        brier=metrics.get("brier"),
        calibration_verdicts=int(report.get("calibration_verdicts", 0)),
        reliability=list(metrics.get("reliability") or []),
        failed_test=None if latest is None else _failed_test(latest),
        calibration_kept=report.get("calibration_kept"),
        bound_overrides=0 if latest is None else latest.overrides,
        bound_effective=_tested(latest).get("n_effective"),
        bound_rate=None if latest is None else latest.rate,
        evidence_scope=_risk(latest).get("evidence_scope", risk_control.WHOLE_WINDOW),
    )


def _risk(row: RiskThreshold | None) -> dict[str, Any]:
    """The stored row's threshold choice (`ThresholdChoice.to_document`)."""
    if row is None:
        return {}
    return (row.details or {}).get("risk") or {}


def _tested(row: RiskThreshold | None) -> dict[str, Any]:
    """The stored row's chosen (or failed first) threshold test, as `ThresholdTest` fields."""
    return _risk(row).get("chosen") or {}


def _failed_test(row: RiskThreshold) -> FailedTest | None:
    """The stored row's failed first test; None when a threshold passed or none was tested
    (no calibrated model, or too few scored slates for any test: rate and bound are None)."""
    if row.threshold is not None or row.bound is None:
        return None
    tested = _tested(row)
    return FailedTest(
        tested.get("threshold"),
        row.bound,
        row.n,
        row.overrides,
        row.rate,
        row.target,
        tested.get("n_effective"),
    )


def failed_test_served(session: Session, model_version: int) -> FailedTest | None:
    """The failed first test behind the approval state `model_version` served (and routed
    its decisions with), if its pass tested a threshold and none passed."""
    state = session.scalar(
        select(ModelVersion.approval_state).where(ModelVersion.version == model_version)
    )
    risk = (state or {}).get("risk") or {}
    tested = risk.get("chosen")
    if risk.get("threshold") is not None or not tested or tested.get("bound") is None:
        return None
    return FailedTest(
        tested.get("threshold"),
        float(tested["bound"]),
        int(tested.get("n", 0)),
        int(tested.get("overrides", 0)),
        tested.get("rate"),
        risk.get("target"),
        tested.get("n_effective"),
    )


def _threshold_row(session: Session, version: int, state: dict[str, Any]) -> RiskThreshold | None:
    """The threshold row chosen with the approval state served by `version`, so that no
    figure comes from another version's learn pass: none when it serves no approval model; the
    newest row at or before the version the state was copied from (a rollback to v serves
    v's state, not the newest pass's), else at or before `version` itself."""
    if not state:
        return None
    made_by = int(state.get(COPIED_FROM, version))
    return session.scalars(
        select(RiskThreshold)
        .where(RiskThreshold.model_version <= made_by)
        .order_by(RiskThreshold.model_version.desc(), RiskThreshold.id.desc())
        .limit(1)
    ).first()


def threshold_history(session: Session, limit: int = HISTORY_LIMIT) -> list[RiskThreshold]:
    """The most recent chosen thresholds, oldest first (the bootstrapping curve)."""
    rows = session.scalars(
        select(RiskThreshold).order_by(RiskThreshold.id.desc()).limit(limit)
    ).all()
    return list(reversed(rows))
