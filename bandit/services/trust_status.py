"""Read model of the promise: the target, the threshold in force, its evidence, calibration."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bandit.db.models import ModelVersion, RiskThreshold
from bandit.engine.vocabulary import ApprovalStatus, RoutingMode
from bandit.services import configs

HISTORY_LIMIT = 300


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
    latest = session.scalars(
        select(RiskThreshold).order_by(RiskThreshold.id.desc()).limit(1)
    ).first()
    report = (latest.details or {}).get("report", {}) if latest is not None else {}
    audits = state.get("audits") or {}
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
        evidence=int(report.get("evidence", 0)),
        bound=report.get("bound"),
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
    )


def threshold_history(session: Session, limit: int = HISTORY_LIMIT) -> list[RiskThreshold]:
    """The most recent chosen thresholds, oldest first (the bootstrapping curve)."""
    rows = session.scalars(
        select(RiskThreshold).order_by(RiskThreshold.id.desc()).limit(limit)
    ).all()
    return list(reversed(rows))
