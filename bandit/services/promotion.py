"""The publish gate: a challenger model version is served only when the log says it is better,
or when an admin forces it; either way the reason is recorded in the audit log.

Both versions are evaluated as frozen policies on the same log (`frozen_model_target`), by
the value of their own slates (the slate estimand, docs/replay.md). The challenger passes when
the lower bound of its estimate's 95% interval exceeds the incumbent's point estimate: a
conservative rule, so noise alone rarely ships a worse model. Both numbers are inside the log's
reward range (`bandit.ope.intervals.in_reward_range`): an incumbent estimate beyond it is
clipped, so the bar is the range's top at worst, never a value no challenger could reach, and
the reason says so, with the effective sample sizes when few logged slates carry either.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from sqlalchemy import select
from sqlalchemy.orm import Session

from bandit.db.models import ModelVersion
from bandit.engine.vocabulary import AuditAction
from bandit.ope.estimators import Estimate
from bandit.ope.intervals import WARN_ESS
from bandit.ope.log_format import ReplayLog
from bandit.ope.policy_target import frozen_model_target
from bandit.ope.replay import default_estimator, evaluate
from bandit.services import accounts, audit, configs, model_store, model_versions
from bandit.services.model_versions import ModelVersionError


class PromotionError(ValueError):
    """The promotion request itself is invalid (unknown version, not an admin, ...)."""


@dataclass(frozen=True)
class Verdict:
    """What the gate found and did."""

    challenger: int
    incumbent: int  # 0: the untrained policy
    estimator: str
    challenger_estimate: Estimate
    incumbent_estimate: Estimate
    passed: bool
    promoted: bool
    forced_by: str | None
    served_version: int | None  # the new newest version when promoted

    @property
    def reason(self) -> str:
        """One line saying why the gate decided as it did."""
        low = self.challenger_estimate.ci_low
        incumbent = self.incumbent_estimate
        clipped = ""
        if incumbent.unclipped is not None:
            clipped = f" (clipped from {incumbent.unclipped:.4f}"
            if incumbent.unclipped > incumbent.value:  # the bar is the range's top
                clipped += " to the top of the reward range, which no lower bound can exceed"
            clipped += ")"
        comparison = (
            f"{self.estimator} lower bound {low:.4f} {'>' if self.passed else '<='} incumbent "
            f"estimate {incumbent.value:.4f}{clipped}{self._caveat()}"
        )
        if self.passed:
            return f"passed: {comparison}"
        if self.forced_by:
            return f"forced by admin {self.forced_by} although {comparison}"
        return f"refused: {comparison}"

    def _caveat(self) -> str:
        """Why the log may not settle the question: estimates clipped or resting on few slates."""
        both = (self.challenger_estimate, self.incumbent_estimate)
        if all(e.unclipped is None and e.ess >= WARN_ESS for e in both):
            return ""
        sizes = " and ".join(f"{e.ess:.1f}" for e in both)
        return (
            f"; effective sample sizes {sizes} slates (challenger, incumbent): few logged "
            "slates speak for these versions, so the estimates may be far off "
            "(docs/replay.md, The publish gate)"
        )


def judge(
    session: Session, version: int, log: ReplayLog, estimator: str | None = None
) -> tuple[ModelVersion, Verdict]:
    """Compare model `version` with the served one on `log`; changes nothing.

    Without an estimator, the log's default: the slate value (`cascade-dr`) on slate logs,
    `dr` on one-position logs.
    """
    estimator = estimator or default_estimator(log)
    challenger = session.scalars(
        select(ModelVersion).where(ModelVersion.version == version)
    ).first()
    if challenger is None:
        raise PromotionError(f"version: no model version {version}")
    incumbent = model_store.latest_model(session)
    if incumbent is not None and incumbent.version == version:
        raise PromotionError(f"version: {version} is already the version being served")
    _, config = configs.active_config(session)
    estimates = {}
    for name, model in (
        ("challenger", challenger.model_bytes),
        ("incumbent", incumbent.model_bytes if incumbent else None),
    ):
        target = frozen_model_target(log, model, config, name)
        estimates[name] = evaluate(log, target, (estimator,)).estimates[estimator]
    low, bar = estimates["challenger"].ci_low, estimates["incumbent"].value
    passed = math.isfinite(low) and math.isfinite(bar) and low > bar
    verdict = Verdict(
        challenger=version,
        incumbent=incumbent.version if incumbent else 0,
        estimator=estimator,
        challenger_estimate=estimates["challenger"],
        incumbent_estimate=estimates["incumbent"],
        passed=passed,
        promoted=False,
        forced_by=None,
        served_version=None,
    )
    return challenger, verdict


def admin_id(session: Session, force_by_admin: str | None) -> int | None:
    """The id of the admin forcing a promotion (None when nobody forces it)."""
    if force_by_admin is None:
        return None
    admin = accounts.find_curator(session, force_by_admin)
    if admin is None or admin.role != "admin":
        raise PromotionError(f"admin: {force_by_admin!r} is not an admin account")
    return admin.id


def promote(
    session: Session,
    version: int,
    log: ReplayLog,
    estimator: str | None = None,
    force_by_admin: str | None = None,
    actor: str = "cli",
    judged: Verdict | None = None,
) -> Verdict:
    """Serve `version` if it passes the gate (or an admin forces it); audit either way.

    `judged`: the verdict of `judge`, when the comparison ran in an earlier (reading)
    transaction so that no lock was held through the replay; it is refused when the served
    version has changed since, since the gate never compared the challenger with the new one.
    Does not commit; the caller commits the new version and the audit entry together.
    """
    forcing_admin = admin_id(session, force_by_admin)
    if judged is None:
        _, verdict = judge(session, version, log, estimator)
    else:
        verdict = judged
        served_now = model_store.latest_version_number(session)
        if served_now != verdict.incumbent:
            raise PromotionError(
                f"version: the served model changed while the gate compared (version "
                f"{verdict.incumbent} then, {served_now} now); run the promotion again"
            )
    estimator = verdict.estimator
    forced = force_by_admin if not verdict.passed else None
    verdict = replace(verdict, forced_by=forced)
    served = None
    if verdict.passed or forced:
        try:
            served = model_versions.rollback(
                session, version, note=f"promoted version {version}: {verdict.reason}"
            ).version
        except ModelVersionError as error:
            raise PromotionError(str(error)) from error
    verdict = replace(verdict, promoted=served is not None, served_version=served)
    audit.record(
        session,
        AuditAction.MODEL_PROMOTE if served is not None else AuditAction.MODEL_PROMOTE_REFUSED,
        actor=force_by_admin or actor,
        curator_id=forcing_admin,
        target=f"model version {version}",
        reason=verdict.reason,
        estimator=estimator,
        challenger=_json_safe(verdict.challenger_estimate),
        incumbent=_json_safe(verdict.incumbent_estimate),
        incumbent_version=verdict.incumbent,
        served_version=served,
        rows=log.rows,
    )
    session.flush()
    return verdict


def _json_safe(estimate: Estimate) -> dict[str, float | None]:
    # JSON columns on PostgreSQL refuse NaN; an undefined estimate is stored as null.
    return {
        k: (v if v is not None and math.isfinite(v) else None)
        for k, v in estimate.as_dict().items()
    }
