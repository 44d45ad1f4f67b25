"""What operators watch: readiness of a serving process and the loop's health gauges."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from bandit.db import migrate
from bandit.db.models import CuratorAction, Outcome, ReviewTask, SlateVerification
from bandit.engine import risk_control
from bandit.engine.vocabulary import ReadinessProblem, Route, TaskStatus, VerificationOutcome
from bandit.services import model_store, trust_status
from bandit.services.runtime import EngineRuntime


@dataclass(frozen=True)
class Readiness:
    """Whether this process can serve, and if not, why (a code and the detail)."""

    problem: ReadinessProblem | None = None
    detail: str = ""
    model_version: int | None = None

    @property
    def ready(self) -> bool:
        """True when nothing stands in the way of serving."""
        return self.problem is None


def readiness(session: Session, runtime: EngineRuntime) -> Readiness:
    """Database reachable, schema at the migrations' head, and a model loaded for serving."""
    try:
        current = migrate.current_revisions(session.connection())
    except SQLAlchemyError as error:
        return Readiness(ReadinessProblem.DATABASE_UNREACHABLE, str(error.__cause__ or error))
    heads = migrate.head_revisions()
    if current != heads:
        at = ", ".join(sorted(current)) or "no revision"
        return Readiness(
            ReadinessProblem.MIGRATIONS_BEHIND, f"at {at}; head is {', '.join(sorted(heads))}"
        )
    try:
        serving = runtime.serving(session)
    except Exception as error:  # any failure to load the model means: do not route traffic here
        return Readiness(ReadinessProblem.NO_MODEL, f"{type(error).__name__}: {error}")
    return Readiness(model_version=serving.model_version)


@dataclass(frozen=True)
class PromiseGauges:
    """The promise as routing serves it: the figures of the settings page, for alerting."""

    risk_controlled: bool
    target: float
    confidence_level: float
    threshold: float | None  # the auto threshold in force (None: nothing is automated)
    bound: float  # the served pass's bound on the override rate of auto slates; 1 untested
    bound_slates: int
    bound_effective_sample: float
    audits: int
    audit_rate: float | None
    audit_low: float
    audit_high: float


@dataclass(frozen=True)
class LoopGauges:
    """The loop's state at one moment, for the metrics endpoint."""

    queue_depth: int
    oldest_wait_seconds: float
    verdict_lag_seconds: float
    reward_lag_seconds: float
    latest_model_version: int
    promise: PromiseGauges
    # Review-after checks (verify after output), at the promise's confidence level: the
    # evidence of partial and review-after routing, which audit nothing.
    review_after_bound: float
    review_after_checks: int


def _age(now: datetime, oldest: datetime | None) -> float:
    return 0.0 if oldest is None else max((now - oldest).total_seconds(), 0.0)


def loop_gauges(session: Session, now: datetime) -> LoopGauges:
    """Queue depth and oldest wait, learner lag, newest model and the override bound."""
    waiting = (TaskStatus.OPEN, TaskStatus.CLAIMED)
    depth, oldest = session.execute(
        select(func.count(), func.min(ReviewTask.created_at)).where(ReviewTask.status.in_(waiting))
    ).one()
    oldest_verdict = session.scalar(
        select(func.min(CuratorAction.created_at)).where(
            CuratorAction.learned_at.is_(None), CuratorAction.agreement_only.is_(False)
        )
    )
    oldest_reward = session.scalar(
        select(func.min(Outcome.created_at)).where(Outcome.learned_at.is_(None))
    )
    # Checks of slates that went out unreviewed: review-after tasks, not the review after an
    # undo of a review-before submit (also logged as a check of the delivered slate).
    verified = dict(
        session.execute(
            select(SlateVerification.outcome, func.count())
            .join(ReviewTask, ReviewTask.id == SlateVerification.task_id)
            .where(ReviewTask.route == Route.REVIEW_AFTER)
            .group_by(SlateVerification.outcome)
        ).all()
    )
    total = int(sum(verified.values()))
    overturned = int(verified.get(VerificationOutcome.CORRECTED, 0))
    promise = promise_gauges(session)
    return LoopGauges(
        queue_depth=int(depth or 0),
        oldest_wait_seconds=_age(now, oldest),
        verdict_lag_seconds=_age(now, oldest_verdict),
        reward_lag_seconds=_age(now, oldest_reward),
        latest_model_version=model_store.latest_version_number(session),
        promise=promise,
        review_after_bound=risk_control.upper_bound(overturned, total, promise.confidence_level),
        review_after_checks=total,
    )


def promise_gauges(session: Session) -> PromiseGauges:
    """The served approval state's threshold, bound and audits (`trust_status`), the numbers
    the settings page words."""
    status = trust_status.promise_status(session)
    return PromiseGauges(
        risk_controlled=status.active,
        target=status.target,
        confidence_level=status.confidence_level,
        threshold=status.threshold,
        bound=1.0 if status.bound is None else status.bound,
        bound_slates=status.bound_slates,
        bound_effective_sample=(
            float(status.bound_slates) if status.bound_effective is None else status.bound_effective
        ),
        audits=status.audits,
        audit_rate=status.audit_rate,
        audit_low=0.0 if status.audit_low is None else status.audit_low,
        audit_high=1.0 if status.audit_high is None else status.audit_high,
    )
